"""The services container: every long-lived service of one sidecar, shared by the RPC methods and the HTTP
shim (which the composition root, ``protocol.server``, builds beside it). Those nothing needs at start-up
(transcription, downloads, audio, streaming) are built, and their modules imported, on first use."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.abc
import msgspec

from ..catalog.specs import ModelSpec
from ..catalog.store import ModelStore
from ..config.service import ConfigService, announce_changes, default_legacy_dirs
from ..config.settings import Settings
from ..errors import AsrproError
from ..events import Notify
from ..system import paths
from ..system.instance import InstanceLock
from ..transcripts.vocabulary import Vocabulary
from .models import LoadProgress, ManagerOptions, ModelInfo, ModelManager
from .system import SystemService

if TYPE_CHECKING:
    from .audio import AudioService
    from .downloads import DownloadService
    from .streaming import StreamingService
    from .transcription import TranscriptionService

log = logging.getLogger(__name__)
_Service = TypeVar("_Service")


class App:
    """Long-lived services of one sidecar process. Notifications fan out to every listener (stdio, HTTP)."""

    def __init__(
        self,
        *,
        config: ConfigService | None = None,
        store: ModelStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.started_monotonic_s = time.monotonic()
        self.listeners: list[Notify] = []
        """Hosts: every broadcast notification (the stdio session)."""
        self.observers: list[Notify] = []
        """Every notification of the process, whichever front sent it (``/v1/events`` sockets)."""
        self.config = config or open_config()
        settings = self.config.settings
        self.store = store or ModelStore.for_settings(settings)
        self.models = ModelManager(
            self.store,
            manager_options(settings),
            selected_id=settings.model.selected_id,
            notify=self.notify,
            clock=clock,
        )
        self.config.subscribe(self._apply_settings)
        self.config.subscribe(announce_changes(self.notify))
        self.config.subscribe_warnings(lambda warning: self.notify("notification", warning))
        self._built: dict[str, Any] = {}
        self._building = threading.RLock()
        self.models.fetch = self._fetch_for_load  # whisper-*/parakeet-* download on first use
        self.system = SystemService(
            models_dir=self.store.models_dir,
            engine_status=self.models.status,
            notify=self.notify,
            settings_unwritable=lambda: self.config.unwritable,
        )
        self.models.before_load = self.system.check_before_load
        self.listeners.append(self.system.observe)
        self.instance_lock: InstanceLock | None = None
        """Set by the stdio server when it holds the single-instance lock (the HTTP shim records its port)."""
        self._background: anyio.abc.TaskGroup | None = None
        """``run_background``'s task group while it runs: stream workers run there."""
        if _lists_recordings(paths.recording_journal_dir()):
            self.audio  # noqa: B018 - built now: it repairs the recordings a crash interrupted
        self._closed = False

    def _vocabulary(self) -> Vocabulary:
        """The user's dictionary, read at each use: an edit applies to the next request."""
        return self.config.settings.vocabulary.as_vocabulary()

    @property
    def transcription(self) -> TranscriptionService:
        from .transcription import TranscriptionService

        return self._lazy(
            "transcription",
            lambda: TranscriptionService(self.models, self.notify, vocabulary=self._vocabulary),
        )

    @property
    def downloads(self) -> DownloadService:
        from .downloads import DownloadService

        return self._lazy("downloads", lambda: DownloadService(self.store))

    # the audio settings are read at each use: a recording or stream starts with those in force
    @property
    def audio(self) -> AudioService:
        from .audio import AudioService

        return self._lazy(
            "audio", lambda: AudioService(self.notify, settings=lambda: self.config.settings.audio)
        )

    @property
    def streaming(self) -> StreamingService:
        from .streaming import StreamingService

        def build() -> StreamingService:
            service = StreamingService(
                self.models,
                self.notify,
                settings=lambda: self.config.settings.audio,
                vocabulary=self._vocabulary,
            )
            service.serve_in(self._background)
            return service

        return self._lazy("streaming", build)

    def _lazy(self, name: str, build: Callable[[], _Service]) -> _Service:
        """The service ``name``, built on its first use (once, whichever thread asks first)."""
        with self._building:
            if name not in self._built:
                self._built[name] = build()
            return self._built[name]

    async def _fetch_for_load(self, spec: ModelSpec, progress: LoadProgress | None) -> Path:
        """``models.fetch``: the download service is built when a first model needs downloading."""
        return await self.downloads.fetch_for_load(spec, progress)

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic_s

    def notify(self, method: str, params: msgspec.Struct) -> None:
        """Send a notification to every connected host and observer (thread-safe)."""
        for listener in list(self.listeners):
            listener(method, params)
        self.observe(method, params)

    def observe(self, method: str, params: msgspec.Struct) -> None:
        """Show observers a notification a front sent its own host only (a stdio request's progress)."""
        for observer in list(self.observers):
            observer(method, params)

    def record_fault(self, error: AsrproError) -> None:
        """A request failed through no fault of its own: ``system.health`` reports it as the last error."""
        self.system.record_error(error.kind, error.message)

    async def select_model(
        self, model_id: str, *, load: bool = False, progress: LoadProgress | None = None
    ) -> ModelInfo:
        """Make ``model_id`` the default model and remember it in the settings; with ``load``, only once it
        has loaded. A failure (unknown id, a load or download that fails, cancellation before the save)
        leaves the previous selection in place, in memory and on disk."""
        spec = self.models.resolve(model_id)
        if load:
            await self.models.load(spec.id, progress)
        with anyio.CancelScope(shield=True):  # saved and in effect, or neither
            await self.config.aset({"model": {"selected_id": spec.id}})
            self.models.selected_id = spec.id
        return self.models.info(spec)

    def _apply_settings(self, changed_keys: list[str], settings: Settings) -> None:
        """Settings changed (over RPC, HTTP or by another program): running services follow."""
        self.models.configure(manager_options(settings))
        if "model.selected_id" in changed_keys:
            self.models.selected_id = settings.model.selected_id

    async def run_background(self) -> None:
        """Background duties (idle unload, settings hot reload) and the stream workers, until cancelled
        (which cancels every stream); run in the server's task group."""
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(self.models.watch_idle)
            task_group.start_soon(self.config.watch)
            self._serve_streams_in(task_group)
            try:
                await anyio.sleep_forever()
            finally:
                self._serve_streams_in(None)

    def _serve_streams_in(self, task_group: anyio.abc.TaskGroup | None) -> None:
        with self._building:
            self._background = task_group
            if "streaming" in self._built:
                self.streaming.serve_in(task_group)

    async def aclose(self) -> None:
        """Release everything (end the engine process); idempotent."""
        if self._closed:
            return
        self._closed = True
        if "streaming" in self._built:
            await self.streaming.aclose()
        await self.models.aclose()
        if "audio" in self._built:
            await anyio.to_thread.run_sync(self.audio.close)
        log.info("services closed")


def _lists_recordings(journal_dir: Path) -> bool:
    """Whether the recordings journal names any recording (one a crash interrupted, at start-up)."""
    try:
        with os.scandir(journal_dir) as entries:
            return any(entries)
    except OSError:  # no journal yet
        return False


def open_config() -> ConfigService:
    """The settings at the platform (or overridden) location; legacy dirs only for the real location."""
    overridden = "ASRPRO_CONFIG_DIR" in os.environ
    return ConfigService.open(paths.config_dir(), legacy_dirs=() if overridden else default_legacy_dirs())


def manager_options(settings: Settings) -> ManagerOptions:
    """The model manager's options from the ``device`` and ``model`` settings."""
    device, model = settings.device, settings.model
    return ManagerOptions(
        device=device.preferred if model.prefer_gpu else "cpu",
        device_index=device.cuda_index,
        compute_type=device.compute_type,
        cpu_threads=device.cpu_threads,
        max_concurrency=device.max_concurrent_transcriptions,
        idle_unload_s=model.auto_unload_timeout_s if model.auto_unload else None,
        max_audio_duration_s=model.max_audio_duration_s,
        aliases=dict(model.aliases),
    )
