"""Thin RPC fronts over the services, one module per area.

``MANIFEST`` names every method and the area module that defines it, so the table the session serves
(``MethodTable``) imports an area's module, with its Structs and the services behind them, only when one of
its methods is first called: start-up pays for ``lifecycle`` alone. ``all_methods`` imports every area (the
schema, ``rpc.discover``); a test checks that the manifest matches what the modules define.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from .base import RpcMethod

MANIFEST: dict[str, tuple[str, ...]] = {
    "lifecycle": ("initialize", "ping", "shutdown", "exit", "rpc.discover"),
    "models": (
        "models.list",
        "models.get",
        "models.load",
        "models.unload",
        "models.select",
        "models.register",
        "models.unregister",
        "models.import",
        "models.status",
    ),
    "downloads": ("models.download", "models.check_updates", "models.delete"),
    "transcribe": ("transcribe.file",),
    "stream": ("stream.start", "stream.push", "stream.stop", "stream.cancel"),
    "audio": ("audio.devices", "audio.record.start", "audio.record.stop", "audio.permission"),
    "config": ("config.get", "config.set", "config.reset", "config.path"),
    "system": ("system.devices", "system.health", "system.resources"),
    "http": ("http.start", "http.stop", "http.status"),
}
"""Area module (in this package) → the names of the methods its ``METHODS`` declares, in documentation
order."""


def area_methods(area: str) -> list[RpcMethod]:
    """The ``METHODS`` of one area's module (imported now if it was not yet)."""
    return importlib.import_module(f"{__name__}.{area}").METHODS


def all_methods() -> list[RpcMethod]:
    """Every method, in documentation order (imports every area)."""
    return [method for area in MANIFEST for method in area_methods(area)]


class MethodTable(Mapping[str, RpcMethod]):
    """The method table by name, every name known up front; an area's module is imported on first lookup
    of one of its methods. Iterating names, ``len`` and ``in`` import nothing."""

    def __init__(self) -> None:
        self._areas = {name: area for area, names in MANIFEST.items() for name in names}
        self._loaded: dict[str, RpcMethod] = {}

    def __getitem__(self, name: str) -> RpcMethod:
        method = self._loaded.get(name)
        if method is None:
            self._loaded.update((m.name, m) for m in area_methods(self._areas[name]))
            method = self._loaded[name]
        return method

    def __contains__(self, name: object) -> bool:
        return name in self._areas

    def __iter__(self) -> Iterator[str]:
        return iter(self._areas)

    def __len__(self) -> int:
        return len(self._areas)
