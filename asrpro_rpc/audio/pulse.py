"""The PulseAudio/PipeWire server's input sources (through ``pulsectl``), when a server is reachable."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PulseSource:
    name: str
    description: str
    channels: int
    sample_rate_hz: int
    is_default: bool
    is_monitor: bool


def list_sources() -> list[PulseSource]:
    """The server's sources; empty when not on Linux, ``pulsectl`` is missing or no server answers."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        import pulsectl
    except ImportError:
        return []
    try:
        # connect(timeout=…) always waits the whole timeout; the plain connect fails at once without a server
        with pulsectl.Pulse("asrpro-rpc") as client:
            default = client.server_info().default_source_name
            return [
                PulseSource(
                    name=source.name,
                    description=source.description,
                    channels=source.channel_count,
                    sample_rate_hz=source.sample_spec.rate,
                    is_default=source.name == default,
                    is_monitor=source.monitor_of_sink_name is not None,
                )
                for source in client.source_list()
            ]
    except Exception as exc:  # pulsectl.PulseError and friends: no server, or it went away
        log.debug("no PulseAudio server: %s", exc)
        return []
