"""The services container shared by the RPC methods (and the HTTP shim)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio

from .model_store import ModelStore
from .registry import DEFAULT_MODEL_ID, ModelSpec
from .services.audio import AudioService
from .services.models import ManagerOptions, ModelManager
from .services.streaming import StreamingService
from .services.transcription import TranscriptionService

log = logging.getLogger(__name__)
Listener = Callable[[str, Any], None]


class App:
    """Long-lived services of one sidecar process. Notifications fan out to every listener (stdio, HTTP)."""

    def __init__(
        self,
        *,
        store: ModelStore | None = None,
        options: ManagerOptions | None = None,
        selected_model: str = DEFAULT_MODEL_ID,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.started_monotonic_s = time.monotonic()
        self.listeners: list[Listener] = []
        self.store = store or ModelStore.default()
        self.models = ModelManager(
            self.store,
            options or ManagerOptions(),
            selected_id=selected_model,
            notify=self.notify,
            clock=clock,
        )
        self.transcription = TranscriptionService(self.models)
        self.audio = AudioService(self.notify)
        self.streaming = StreamingService(self.models, self.notify)
        self._closed = False

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic_s

    def notify(self, method: str, params: Any) -> None:
        """Send a notification to every connected host (thread-safe)."""
        for listener in list(self.listeners):
            listener(method, params)

    def select_model(self, model_id: str) -> ModelSpec:
        """Make ``model_id`` the default model."""
        return self.models.select(model_id)

    async def run_background(self) -> None:
        """Background duties (idle unload, stream workers); run in the server's task group."""
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(self.models.watch_idle)
            task_group.start_soon(self.streaming.run)

    async def aclose(self) -> None:
        """Release everything (end the engine process); idempotent."""
        if self._closed:
            return
        self._closed = True
        await self.streaming.aclose()
        await self.models.aclose()
        await anyio.to_thread.run_sync(self.audio.close)
        log.info("services closed")
