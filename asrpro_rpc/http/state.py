"""What the routes and the guard share for one running shim: the services, fixed options, live counters."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

import anyio
import msgspec

from ..catalog.specs import ModelSpec
from ..config.settings import ServerSettings
from ..system.hardware import DeviceReport, choose_device, probe_devices

if TYPE_CHECKING:
    from ..services.container import App


class ShimOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Fixed for the life of one server (restart to change them)."""

    host: str
    port: int
    cors_origins: tuple[str, ...] = ()
    """Browser origins allowed to call the shim; empty: any request with an ``Origin`` header is refused."""

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ShimState:
    """One running shim: settings come live from the config service (token and upload limit apply at once)."""

    def __init__(self, services: App, options: ShimOptions) -> None:
        self.services = services
        self.options = options
        self.draining = False
        """Stop was asked: new requests get 503 while the in-flight ones finish."""
        self.in_flight = 0
        self.served = 0
        self._idle = anyio.Event()
        self._idle.set()
        self._devices: DeviceReport | None = None

    @property
    def settings(self) -> ServerSettings:
        return self.services.config.settings.server

    @property
    def max_upload_bytes(self) -> int:
        return self.settings.max_upload_mb * 1024 * 1024

    async def planned_device(self, spec: ModelSpec) -> str:
        """The device ``spec`` would load on now (the ``device`` setting, what this machine has)."""
        if self._devices is None:
            self._devices = await anyio.to_thread.run_sync(probe_devices)
        supported = ("cpu", "cuda") if spec.engine == "whisper" else ("cpu", "cuda", "mps")
        device, _ = choose_device(self.services.models.options.device, self._devices, supported=supported)
        return device

    def enter(self) -> None:
        self.in_flight += 1
        if self._idle.is_set():
            self._idle = anyio.Event()

    def leave(self) -> None:
        self.in_flight -= 1
        self.served += 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request is in flight (at most ``timeout_s``); True if none is left."""
        with anyio.move_on_after(timeout_s):
            await self._idle.wait()
        return self.in_flight == 0
