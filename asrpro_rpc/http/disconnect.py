"""Noticing a client leave: one watcher for the transcription route, its SSE stream and ``/v1/events``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

_DISCONNECTS = frozenset({"http.disconnect", "websocket.disconnect"})


async def cancel_on_disconnect(
    receive: Callable[[], Awaitable[Mapping[str, Any]]], scope: anyio.CancelScope
) -> None:
    """Read ASGI messages from ``receive`` until the client disconnects, then cancel ``scope``.

    Start it in the task group whose work should end with the client (``scope`` its cancel scope).
    """
    while (await receive())["type"] not in _DISCONNECTS:
        pass
    scope.cancel()
