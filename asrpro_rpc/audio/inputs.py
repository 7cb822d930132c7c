"""Input devices: PortAudio's list plus the Linux sound server's sources, under stable ids.

PortAudio indexes change when devices come and go, so a device is named by ``"<host api>:<name>"``
(``ALSA:pulse``, ``Core Audio:MacBook Pro Microphone``). Through PulseAudio/PipeWire, PortAudio shows only
the ``pulse`` and ``default`` PCMs, so the server's sources are listed too as ``pulse:<source name>``;
recording from one opens PortAudio's ``pulse`` device with ``PULSE_SOURCE`` naming it.
``sounddevice`` is imported inside the functions: importing it initialises PortAudio.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from ..errors import DeviceUnavailable
from . import pulse

log = logging.getLogger(__name__)

STANDARD_RATES_HZ = (8000, 16000, 22050, 44100, 48000)
PORTAUDIO_LOCK = threading.RLock()
"""Held while PortAudio is re-initialised or a stream opens/closes (re-init under an open stream crashes)."""
_open_streams = 0


class AudioDevice(msgspec.Struct, frozen=True, kw_only=True):
    """One input device as ``audio.devices`` lists it."""

    id: str
    """Stable id: ``"<host api>:<name>"``; pass it (or the name) as ``device``."""
    name: str
    host_api: str
    max_input_channels: int
    default_sample_rate_hz: float
    supported_sample_rates_hz: list[int]
    """Which of 8k/16k/22.05k/44.1k/48k the device accepts (probed); other rates are resampled."""
    is_default: bool
    backend: Literal["portaudio", "pulse"]
    is_monitor: bool = False
    """A sound server's monitor source (what the speakers play), not a microphone."""


@dataclass(frozen=True)
class OpenTarget:
    """How to open a chosen device: the PortAudio device index, and the sound-server source if any."""

    device: AudioDevice
    portaudio_index: int
    pulse_source: str | None


def stream_opened() -> None:
    global _open_streams
    with PORTAUDIO_LOCK:
        _open_streams += 1


def stream_closed() -> None:
    global _open_streams
    with PORTAUDIO_LOCK:
        _open_streams = max(0, _open_streams - 1)


def reinitialize_portaudio() -> bool:
    """Re-read PortAudio's device list; skipped (returns False) while any stream is open."""
    import sounddevice as sd

    with PORTAUDIO_LOCK:
        if _open_streams:
            return False
        sd._terminate()
        sd._initialize()
        return True


def _supported_rates(sd: Any, index: int) -> list[int]:
    rates = []
    for rate in STANDARD_RATES_HZ:
        try:
            sd.check_input_settings(device=index, samplerate=rate, channels=1)
        except Exception:  # PortAudioError or ValueError: the rate is not accepted
            continue
        rates.append(rate)
    return rates


def _portaudio_inputs(sd: Any, probe_rates: bool) -> list[tuple[int, AudioDevice]]:
    host_apis = sd.query_hostapis()
    try:
        default_index = int(sd.default.device[0])
    except (TypeError, ValueError):
        default_index = -1
    if default_index < 0:
        try:
            default_index = int(sd.query_devices(kind="input")["index"])
        except Exception:  # no default input device at all
            default_index = -1
    found = []
    for info in sd.query_devices():
        if info["max_input_channels"] <= 0:
            continue
        host_api = host_apis[info["hostapi"]]["name"]
        found.append(
            (
                info["index"],
                AudioDevice(
                    id=f"{host_api}:{info['name']}",
                    name=info["name"],
                    host_api=host_api,
                    max_input_channels=info["max_input_channels"],
                    default_sample_rate_hz=float(info["default_samplerate"]),
                    supported_sample_rates_hz=_supported_rates(sd, info["index"]) if probe_rates else [],
                    is_default=info["index"] == default_index,
                    backend="portaudio",
                ),
            )
        )
    return found


def _pulse_inputs(pulse_index: int | None, rates: list[int]) -> list[AudioDevice]:
    if pulse_index is None:
        return []
    return [
        AudioDevice(
            id=f"pulse:{source.name}",
            name=source.description or source.name,
            host_api="PulseAudio",
            max_input_channels=source.channels,
            default_sample_rate_hz=float(source.sample_rate_hz),
            supported_sample_rates_hz=rates,
            is_default=source.is_default,
            backend="pulse",
            is_monitor=source.is_monitor,
        )
        for source in pulse.list_sources()
    ]


def _scan(probe_rates: bool = True) -> tuple[list[AudioDevice], dict[str, OpenTarget]]:
    """The devices and how to open each; ``probe_rates`` opens each device once per standard rate."""
    import sounddevice as sd

    with PORTAUDIO_LOCK:
        portaudio = _portaudio_inputs(sd, probe_rates)
    pulse_pcm = next((i for i, d in portaudio if d.name == "pulse"), None)
    pulse_rates = next((d.supported_sample_rates_hz for _, d in portaudio if d.name == "pulse"), [])
    sources = _pulse_inputs(pulse_pcm, pulse_rates)
    if any(s.is_default for s in sources):  # the server's default source is what "default" records
        portaudio = [(i, msgspec.structs.replace(d, is_default=False)) for i, d in portaudio]
    targets = {d.id: OpenTarget(d, i, None) for i, d in portaudio}
    for source in sources:
        assert pulse_pcm is not None
        targets[source.id] = OpenTarget(source, pulse_pcm, source.id.removeprefix("pulse:"))
    return [t.device for t in targets.values()], targets


def list_input_devices() -> list[AudioDevice]:
    """Every input device, PortAudio's first, then the sound server's sources."""
    return _scan()[0]


def resolve_device(selector: str | None) -> OpenTarget:
    """The device named by ``selector`` (an id, a name, or a unique part of a name; None: the default).

    Raises:
        DeviceUnavailable: nothing (or more than one device) matches; ``data.available`` lists the ids.
    """
    devices, targets = _scan(probe_rates=False)
    available = [d.id for d in devices]
    if selector is None:
        default = next((t for t in targets.values() if t.device.is_default), None)
        if default is None:
            raise DeviceUnavailable(
                "No default input device: connect a microphone or pick one from audio.devices.",
                available=available,
            )
        # the default PortAudio device follows the sound server's default, even when it changes later
        if default.pulse_source is not None:
            return OpenTarget(default.device, default.portaudio_index, None)
        return default
    if selector in targets:
        return targets[selector]
    wanted = selector.casefold()
    for rule in (lambda d: d.name.casefold() == wanted, lambda d: wanted in d.name.casefold()):
        matches = [t for t in targets.values() if rule(t.device)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(t.device.id for t in matches)
            raise DeviceUnavailable(
                f"{selector!r} matches several input devices ({names}); pass one of their ids.",
                device=selector,
                available=available,
            )
    raise DeviceUnavailable(
        f"No input device {selector!r}. Available: {', '.join(available) or 'none'}.",
        device=selector,
        available=available,
    )
