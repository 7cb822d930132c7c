"""The services container shared by the RPC methods (and, later, the HTTP shim)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class App:
    """Long-lived services of one sidecar process."""

    started_at_s: float = field(default_factory=time.time)
    started_monotonic_s: float = field(default_factory=time.monotonic)

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic_s

    async def aclose(self) -> None:
        """Release everything (end engine processes, flush state); idempotent."""
        log.info("services closed")
