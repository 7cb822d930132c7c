"""The model manager: exactly one resident model, in an engine host child process.

Loads are lazy and serialised; switching ends the old engine process before starting the new one and
waits for transcriptions still running on the old model; several transcriptions may share the resident
model up to ``max_concurrency``; an idle model is unloaded after ``idle_unload_s`` (checked against an
injected clock) and never while in use. An engine crash costs the requests in flight, not the sidecar:
the next request starts a fresh engine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal, TypeVar

import anyio
import msgspec

from .. import errors
from ..catalog.packs import available_packs
from ..catalog.specs import ModelSpec, resolve_alias
from ..catalog.store import ModelStore
from ..config.settings import DEFAULT_ALIASES
from ..engines.base import LoadInfo, LoadSpec, SegmentSink
from ..engines.host.client import EngineHost, EngineLost
from ..events import FinalStage, ModelProgress, NotificationMessage, Notify, ProgressReporter, final_frame
from ..transcripts.types import TranscribeOptions, Transcript

log = logging.getLogger(__name__)
T = TypeVar("T")
LoadProgress = Callable[..., None]
"""``progress(fraction, message)``; a load's last call adds ``stage`` (``done``/``failed``/``cancelled``)
and, when failed, ``error`` (the error kind)."""


def broadcast_load_progress(notify: Notify, model_id: str) -> LoadProgress:
    """A load as ``model.progress`` to every listener: for the loads a transcription or a stream starts
    on its own (no request asked for them, yet progress bars want them)."""
    report = ProgressReporter(
        lambda payload: notify("model.progress", payload), ModelProgress, {"model_id": model_id}
    )
    return lambda fraction, message, **extra: report(fraction, message=message, **extra)


class ManagerOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How models are loaded and kept (from the ``device`` and ``model`` settings)."""

    device: str = "auto"
    device_index: int = 0
    compute_type: str | None = None
    cpu_threads: int = 0
    max_concurrency: int = 2
    idle_unload_s: float | None = 300.0
    """Unload after this long unused; ``None`` keeps the model loaded."""
    max_audio_duration_s: float | None = None
    """Longest audio one file transcription may hold (``model.max_audio_duration_s``); ``None``: no cap."""
    aliases: dict[str, str] = msgspec.field(default_factory=lambda: dict(DEFAULT_ALIASES))
    """``model.aliases``: OpenAI model names → ``selected`` or a model id."""


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A registry entry plus its state on this machine (``models.list`` / ``models.get``)."""

    id: str
    display_name: str
    family: str
    engine: str
    parameters: str
    size_bytes: int
    languages: list[str]
    description: str
    source: str
    revision: str | None
    translate: bool
    word_timestamps: str
    """``aligned`` (word times from the audio) or ``estimated`` (a segment's time spread over its words)."""
    user: bool
    available: bool
    """Its files are on this machine."""
    ready: bool
    """Loaded and resident now."""
    selected: bool
    """The default model (what ``whisper-1`` and an omitted ``model`` mean)."""
    device: str | None = None
    """Where it runs now (``None``: not loaded)."""
    requested_device: str | None = None
    """What its load asked for: ``models.load``'s ``device``, else the ``device.preferred`` setting."""
    provider: str | None = None
    """The ONNX Runtime execution provider it runs on (ONNX routes only)."""
    compute_type: str | None = None


class EngineStatus(msgspec.Struct, frozen=True, kw_only=True):
    state: Literal["unloaded", "loading", "loaded"]
    model_id: str | None = None
    engine: str | None = None
    """The route the resident model runs on (``whisper``, ``nemo``, ``onnx``, ``whisper-onnx``)."""
    device: str | None = None
    """Where the model runs; it differs from ``requested_device`` after a ``device_fallback``."""
    requested_device: str | None = None
    provider: str | None = None
    """The ONNX Runtime execution provider it runs on (ONNX routes only)."""
    compute_type: str | None = None
    pid: int | None = None
    active_transcriptions: int = 0
    load_time_s: float | None = None
    stalled_s: float | None = None
    """Seconds the engine process has been silent (no heartbeat) when over 3 s; it is killed at the
    watchdog's limit (30 s by default). ``None``: responding."""


class _Resident:
    """The loaded model and the process it lives in."""

    def __init__(self, spec: ModelSpec, host: EngineHost, info: LoadInfo, requested_device: str) -> None:
        self.spec = spec
        self.host = host
        self.info = info
        self.requested_device = requested_device


async def run_blocking(
    function: Callable[[threading.Event], T], limiter: anyio.CapacityLimiter | None = None
) -> T:
    """Run ``function(cancel_event)`` in a worker thread; cancelling the caller sets the event.

    The caller is released at once on cancellation (the thread is abandoned and winds down on its own,
    seeing the event), so a cancelled request answers promptly.
    """
    cancel = threading.Event()
    try:
        return await anyio.to_thread.run_sync(function, cancel, abandon_on_cancel=True, limiter=limiter)
    except anyio.get_cancelled_exc_class():
        cancel.set()
        raise


class ModelManager:
    """Owns the engine host process and the resident model."""

    def __init__(
        self,
        store: ModelStore,
        options: ManagerOptions,
        *,
        selected_id: str,
        notify: Notify,
        host_factory: Callable[[], EngineHost] = EngineHost,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.options = options
        self.selected_id = selected_id
        self._notify = notify
        self._host_factory = host_factory
        self._clock = clock
        self._resident: _Resident | None = None
        self._loading_id: str | None = None
        self._load_lock = anyio.Lock()
        self._users = 0
        self._drained = anyio.Condition()
        self._last_used_s = clock()
        self._limiter = anyio.CapacityLimiter(max(1, options.max_concurrency))
        self._interactive_limiter = anyio.CapacityLimiter(max(1, options.max_concurrency))
        """Interactive requests have slots of their own: they never queue behind background files."""
        self.fetch: Callable[[ModelSpec, LoadProgress | None], Awaitable[Path]] | None = None
        """Downloads a missing built-in model on first use (set by the app; see services/downloads.py)."""
        self.before_load: Callable[[ModelSpec, str], None] | None = None
        """Called (in a worker thread) with the spec and device before a load: low-memory warnings."""

    # --- queries -----------------------------------------------------------------------------------
    def resolve(self, model_id: str | None) -> ModelSpec:
        """The spec for ``model_id``; ``None`` and ``whisper-1`` (an alias) mean the selected model."""
        return self.store.get(
            resolve_alias(model_id or self.selected_id, self.selected_id, self.options.aliases)
        )

    def info(self, spec: ModelSpec) -> ModelInfo:
        resident = self._resident if self._resident and self._resident.spec.id == spec.id else None
        return ModelInfo(
            id=spec.id,
            display_name=spec.display_name,
            family=spec.family,
            engine=spec.engine,
            parameters=spec.parameters,
            size_bytes=spec.size_bytes,
            languages=list(spec.languages),
            description=spec.description,
            source=spec.source,
            revision=spec.revision,
            translate=spec.translate,
            word_timestamps=spec.word_timestamps,
            user=spec.user,
            available=self.store.is_available(spec),
            ready=resident is not None and resident.host.alive,
            selected=spec.id == self.selected_id,
            device=resident.info.device if resident else None,
            requested_device=resident.requested_device if resident else None,
            provider=resident.info.provider if resident else None,
            compute_type=resident.info.compute_type if resident else None,
        )

    def list(self) -> list[ModelInfo]:
        return [self.info(spec) for spec in self.store.all_specs()]

    def status(self) -> EngineStatus:
        resident = self._resident
        if self._loading_id is not None:
            return EngineStatus(state="loading", model_id=self._loading_id, active_transcriptions=self._users)
        if resident is None or not resident.host.alive:
            return EngineStatus(state="unloaded")
        return EngineStatus(
            state="loaded",
            model_id=resident.spec.id,
            engine=resident.spec.engine,
            device=resident.info.device,
            requested_device=resident.requested_device,
            provider=resident.info.provider,
            compute_type=resident.info.compute_type,
            pid=resident.host.pid,
            active_transcriptions=self._users,
            load_time_s=resident.info.load_time_s,
            stalled_s=resident.host.stalled_s,
        )

    def engine_rss_bytes(self) -> int:
        """Resident memory of the engine process (0 when no model is loaded)."""
        return self._resident.host.rss_bytes() if self._resident else 0

    # --- commands ------------------------------------------------------------------------------------
    def configure(self, options: ManagerOptions) -> None:
        """New options: concurrency and idle timeout apply now, device choices at the next load."""
        self.options = options
        self._limiter.total_tokens = max(1, options.max_concurrency)
        self._interactive_limiter.total_tokens = max(1, options.max_concurrency)

    async def load(
        self, model_id: str | None, progress: LoadProgress | None = None, device: str | None = None
    ) -> ModelInfo:
        """Make ``model_id`` resident (switching if another model is), and return its info.

        ``device`` overrides the ``device.preferred`` setting for this load; the model is reloaded when it is
        resident after a load that asked for another device. It holds until the model is unloaded.
        """
        spec = self.resolve(model_id)
        async with self._load_lock:
            await self._ensure_resident(spec, progress, device)
        self._last_used_s = self._clock()
        return self.info(spec)

    async def unload(self, reason: str = "requested") -> bool:
        """End the engine process once no transcription uses it; False if nothing was loaded."""
        async with self._load_lock:
            await self._wait_until_unused()
            return await self._unload(reason)

    @asynccontextmanager
    async def use(
        self, model_id: str | None, progress: LoadProgress | None = None
    ) -> AsyncIterator[_Resident]:
        """Hold the resident model (loading it first if needed) for one transcription."""
        spec = self.resolve(model_id)
        async with self._load_lock:
            await self._ensure_resident(spec, progress)
            resident = self._resident
            assert resident is not None
            self._users += 1
        try:
            yield resident
        finally:
            self._users -= 1
            self._last_used_s = self._clock()
            with anyio.CancelScope(shield=True):  # a cancelled user must still wake a waiting switch
                async with self._drained:
                    self._drained.notify_all()

    async def transcribe(
        self,
        model_id: str | None,
        path: str,
        options: TranscribeOptions,
        on_progress: Callable[[float], None],
        on_loading: LoadProgress | None = None,
        on_segment: SegmentSink | None = None,
    ) -> Transcript:
        """Transcribe the file at ``path`` on ``model_id`` (loaded on demand); ``on_segment`` (called from a
        worker thread) receives segments as the engine finishes them."""
        retried = False  # a request the engine died under without its doing runs once more, on a fresh one
        limiter = self._interactive_limiter if options.priority == "interactive" else self._limiter
        self._check_supports(self.resolve(model_id), options)  # before a load (or a download) for nothing
        while True:
            async with self.use(model_id, on_loading) as resident:
                try:
                    return await run_blocking(
                        lambda cancel: resident.host.transcribe(
                            path, options, on_progress, cancel, on_segment, self.options.max_audio_duration_s
                        ),
                        limiter,
                    )
                except EngineLost as exc:
                    if retried:
                        self._report_crash(exc)
                        raise
                    retried = True
                    log.warning(
                        "engine ended under a request it wasn't running; retrying", extra={"why": exc.message}
                    )
                except errors.EngineCrashed as exc:
                    self._report_crash(exc)
                    raise

    def _report_crash(self, exc: errors.EngineCrashed) -> None:
        self._notify("notification", NotificationMessage(level="error", message=exc.message, kind=exc.kind))

    async def check_idle(self) -> bool:
        """Unload the model if it has been unused for ``idle_unload_s``; True if it did."""
        timeout_s = self.options.idle_unload_s
        if timeout_s is None or self._resident is None or self._users or self._load_lock.locked():
            return False
        if self._clock() - self._last_used_s < timeout_s:
            return False
        async with self._load_lock:
            if self._users or self._resident is None:
                return False
            model_id = self._resident.spec.id
            await self._unload("idle")
        self._notify(
            "notification",
            NotificationMessage(
                level="info",
                message=f"Model unloaded due to inactivity ({model_id}, idle for {timeout_s:g} s).",
                kind="model_unloaded",
            ),
        )
        return True

    async def watch_idle(self, interval_s: float = 5.0) -> None:
        """Run ``check_idle`` every ``interval_s`` (a task in the app's task group)."""
        while True:
            await anyio.sleep(interval_s)
            await self.check_idle()

    async def aclose(self) -> None:
        """End the engine process now (shutdown: in-flight work has already been cancelled)."""
        with anyio.CancelScope(shield=True):
            await self._unload("shutdown")

    # --- internals -----------------------------------------------------------------------------------
    def _check_supports(self, spec: ModelSpec, options: TranscribeOptions) -> None:
        if options.task == "translate" and not spec.translate:
            why = "it was not trained to translate" if spec.multilingual else "it is English-only"
            raise errors.InvalidParams(
                f"Model {spec.id!r} cannot translate ({why}). "
                "Use a multilingual model such as whisper-base or whisper-small for task=translate.",
                model_id=spec.id,
            )

    async def _wait_until_unused(self) -> None:
        async with self._drained:
            while self._users:
                await self._drained.wait()

    async def _ensure_resident(
        self, spec: ModelSpec, progress: LoadProgress | None, device: str | None = None
    ) -> None:
        """Called with the load lock held; a load started here ends ``progress`` with a final stage.

        ``device`` None keeps the resident model wherever it runs, and loads on ``device.preferred``.
        """
        resident = self._resident
        if (
            resident is not None
            and resident.spec.id == spec.id
            and resident.host.alive
            and device in (None, resident.requested_device)
        ):
            return
        report = progress or (lambda fraction, message, **extra: None)

        def end(stage: FinalStage, kind: str | None) -> None:
            message = {"done": "ready", "failed": "load failed", "cancelled": "load cancelled"}[stage]
            report(1.0 if stage == "done" else 0.0, message, stage=stage, error=kind)

        with final_frame(end):
            await self._load(spec, resident, report, device or self.options.device)

    async def _load(
        self, spec: ModelSpec, resident: _Resident | None, report: LoadProgress, device: str
    ) -> None:
        model_path = await self._model_path(spec, report)  # a download keeps the resident model meanwhile
        if resident is not None:
            await self._wait_until_unused()
            await self._unload("switch" if resident.host.alive else "engine ended")
        if self.before_load is not None:
            await anyio.to_thread.run_sync(self.before_load, spec, device)
        load_spec = LoadSpec(
            model_id=spec.id,
            model_path=str(model_path),
            engine=spec.engine,
            device=device,
            device_index=self.options.device_index,
            compute_type=self.options.compute_type,
            cpu_threads=self.options.cpu_threads,
            max_concurrency=self.options.max_concurrency,
            languages=spec.languages,
        )
        self._loading_id = spec.id
        started_s = time.monotonic()
        host = self._host_factory()
        try:
            report(0.0, "starting engine process")
            await anyio.to_thread.run_sync(host.start)
            info = await run_blocking(lambda cancel: self._load_in_host(host, load_spec, report, cancel))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(host.close)
            raise
        finally:
            self._loading_id = None
        self._resident = _Resident(spec, host, info, device)
        log.info(
            "model loaded",
            extra={
                "model_id": spec.id,
                "device": info.device,
                "requested_device": device,
                "provider": info.provider,
                "compute_type": info.compute_type,
                "load_s": round(time.monotonic() - started_s, 3),
                "engine_pid": host.pid,
            },
        )
        for warning in info.warnings:
            self._notify(
                "notification", NotificationMessage(level="warning", message=warning, kind="device_fallback")
            )

    async def _model_path(self, spec: ModelSpec, progress: LoadProgress | None) -> Path:
        """The model's files, assembling an installed offline weight pack into the cache if needed."""
        try:
            return self.store.resolve_path(spec)
        except errors.ModelNotDownloaded:
            if spec.id not in available_packs():
                if self.fetch is None or spec.user:
                    raise
                return await self.fetch(spec, progress)
        if progress is not None:
            progress(0.0, "installing the offline weight pack into the model cache")
        await anyio.to_thread.run_sync(self.store.install_pack, spec.id)
        return self.store.resolve_path(spec)

    @staticmethod
    def _load_in_host(
        host: EngineHost, spec: LoadSpec, report: LoadProgress, cancel: threading.Event
    ) -> LoadInfo:
        """Load in the child; a cancelled load ends the child (a load can't be interrupted otherwise)."""
        done = threading.Event()

        def end_child_if_cancelled() -> None:
            while not done.wait(0.1):
                if cancel.is_set():
                    host.close(0.5)
                    return

        threading.Thread(target=end_child_if_cancelled, daemon=True).start()
        try:
            return host.load(spec, lambda fraction, message: report(min(fraction, 0.99), message))
        finally:
            done.set()

    async def _unload(self, reason: str) -> bool:
        resident, self._resident = self._resident, None
        if resident is None:
            return False
        await anyio.to_thread.run_sync(resident.host.close)
        log.info("model unloaded", extra={"model_id": resident.spec.id, "reason": reason})
        return True
