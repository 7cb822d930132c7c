"""``WS /v1/events``: every notification of the process, pushed as JSON with the seed's ``type`` names.

Every: the socket is an observer of the services container (``App.observers``), so it also sees what a
stdio request sent its own host only (a ``transcribe.file``'s progress, a ``models.load``'s), and each
operation's final frame (``stage`` ``done``, ``failed`` with ``error``, or ``cancelled``).

``model.progress`` → ``model_progress``, ``transcription.progress`` → ``transcription_progress``,
``notification`` → ``notification`` (others: dots become underscores, e.g. ``config_changed``); the payload's
fields sit beside ``type``. The first message is ``{"type": "connected"}``. Each client has a bounded queue:
a client that falls behind loses the oldest events, never slows the sidecar.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import anyio
import msgspec
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from .disconnect import cancel_on_disconnect
from .state import ShimState

log = logging.getLogger(__name__)
router = APIRouter()
QUEUE_SIZE = 256
EVENT_TYPES = {
    "model.progress": "model_progress",
    "transcription.progress": "transcription_progress",
    "notification": "notification",
}


def to_event(method: str, params: Any) -> dict[str, Any]:
    payload = msgspec.to_builtins(params)
    fields = payload if isinstance(payload, dict) else {"data": payload}
    return {"type": EVENT_TYPES.get(method, method.replace(".", "_")), **fields}


def _offer(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(event)


@router.websocket("/v1/events")
async def events(websocket: WebSocket) -> None:
    state: ShimState = websocket.app.state.shim
    await websocket.accept()
    # uvicorn runs on asyncio; call_soon_threadsafe is the one hand-off safe from any thread, loop included.
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)

    def listener(method: str, params: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(_offer, queue, to_event(method, params))

    state.services.observers.append(listener)
    try:
        await websocket.send_json({"type": "connected"})
        async with anyio.create_task_group() as task_group:
            # clients don't speak; this notices them leave
            task_group.start_soon(cancel_on_disconnect, websocket.receive, task_group.cancel_scope)
            while True:
                event = await queue.get()
                try:
                    await websocket.send_text(msgspec.json.encode(event).decode())
                except (WebSocketDisconnect, OSError, RuntimeError):
                    task_group.cancel_scope.cancel()
                    break
    except (WebSocketDisconnect, OSError):
        pass
    finally:
        state.services.observers.remove(listener)
