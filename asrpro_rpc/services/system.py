"""System service: health, resource usage, and low-memory / low-disk warnings before a model load.

GPU memory comes from ``system.hardware.probe_gpu_memory``, an injected seam for tests.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec
import psutil

from .. import __version__
from ..catalog.specs import ModelSpec
from ..errors import clip
from ..events import NotificationMessage, Notify
from ..system import files
from ..system.hardware import GpuMemory, probe_gpu_memory
from .models import EngineStatus

log = logging.getLogger(__name__)

_LOAD_HEADROOM_BYTES = 256 << 20
_NEMO_IMPORT_BYTES = 900 << 20
"""``import nemo.collections.asr`` alone takes ~820 MB in the engine process."""
LOW_DISK_BYTES = 1 << 30


class LastError(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    message: str
    at_s: float
    """Unix time."""


class HealthResult(msgspec.Struct, frozen=True, kw_only=True):
    status: Literal["ok", "degraded"]
    """``degraded``: memory or disk is low, the settings can't be saved, or the engine has stopped
    responding, right now (see ``warnings``)."""
    version: str
    pid: int
    uptime_s: float
    model: EngineStatus
    """The engine process: state, resident model, device."""
    last_error: LastError | None
    warnings: list[str]


class ProcessUsage(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    rss_bytes: int
    cpu_percent: float
    """Since the previous system.resources call (100 = one core busy)."""
    threads: int
    open_files: int
    """Open file descriptors (handles on Windows)."""


class MemoryUsage(msgspec.Struct, frozen=True, kw_only=True):
    total_bytes: int
    available_bytes: int
    used_percent: float


class DiskUsage(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    """The model cache directory (or the nearest existing parent)."""
    total_bytes: int
    free_bytes: int


class ResourcesResult(msgspec.Struct, frozen=True, kw_only=True):
    process: ProcessUsage
    engine: ProcessUsage | None
    """The engine host process, when a model is loaded."""
    memory: MemoryUsage
    gpus: list[GpuMemory]
    disk: DiskUsage


GpuProbe = Callable[[], list[GpuMemory]]
LAST_ERROR_CHARS = 300
"""``last_error.message`` is cut to this: ``system.health`` stays small whatever a request echoed."""


class SystemService:
    """Health and resources of this sidecar; warns before a model load that would not fit."""

    def __init__(
        self,
        *,
        models_dir: Path,
        engine_status: Callable[[], EngineStatus],
        notify: Notify,
        gpu_probe: GpuProbe = probe_gpu_memory,
        memory_probe: Callable[[], MemoryUsage] | None = None,
        settings_unwritable: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.models_dir = models_dir
        self._settings_unwritable = settings_unwritable
        self._engine_status = engine_status
        self._notify = notify
        self._gpu_probe = gpu_probe
        self._memory_probe = memory_probe or _system_memory
        self._started_s = time.monotonic()
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # starts the CPU measurement window
        self._engine_process: psutil.Process | None = None
        self._last_error: LastError | None = None
        self._lock = threading.Lock()

    # --- last error ----------------------------------------------------------------------------------
    def record_error(self, kind: str, message: str) -> None:
        """Remember an error for ``system.health`` (thread-safe)."""
        with self._lock:
            self._last_error = LastError(kind=kind, message=clip(message, LAST_ERROR_CHARS), at_s=time.time())

    def observe(self, method: str, params: msgspec.Struct) -> None:
        """A notification listener: error-level notifications become the last error."""
        if isinstance(params, NotificationMessage) and params.level == "error":
            self.record_error(params.kind or "error", params.message)

    # --- queries -------------------------------------------------------------------------------------
    def health(self) -> HealthResult:
        warnings = self._pressure_warnings()
        unwritable = self._settings_unwritable()
        if unwritable is not None:
            warnings.append(f"Settings can't be saved ({clip(unwritable, LAST_ERROR_CHARS)}).")
        engine = self._engine_status()
        if engine.stalled_s is not None:
            warnings.append(
                f"The engine process (pid {engine.pid}) has not responded for {engine.stalled_s:g} s; "
                "the watchdog replaces it if it stays silent."
            )
        return HealthResult(
            status="degraded" if warnings else "ok",
            version=__version__,
            pid=os.getpid(),
            uptime_s=round(time.monotonic() - self._started_s, 3),
            model=engine,
            last_error=self._last_error,
            warnings=warnings,
        )

    def resources(self) -> ResourcesResult:
        """A snapshot (blocking: run it in a worker thread; nvidia-smi may take ~100 ms)."""
        disk_path = files.nearest_existing(self.models_dir)
        disk = shutil.disk_usage(disk_path)
        engine_pid = self._engine_status().pid
        return ResourcesResult(
            process=_usage(self._process),
            engine=self._engine_usage(engine_pid),
            memory=self._memory_probe(),
            gpus=self._gpu_probe(),
            disk=DiskUsage(path=str(disk_path), total_bytes=disk.total, free_bytes=disk.free),
        )

    def check_before_load(self, spec: ModelSpec, device: str = "cpu") -> None:
        """Warn (a ``notification``, kind ``low_memory``) when the model likely won't fit in free memory.

        The estimate is the registry's download size plus headroom (plus NeMo's import for .nemo models),
        set against free GPU memory when the load targets CUDA and a probe sees it, else free RAM. A warning
        only: the load still runs (estimates are rough; the OS may free caches).
        """
        needed = estimate_load_bytes(spec)
        gpus = self._gpu_probe() if device.startswith("cuda") else []
        free, where = (
            (gpus[0].free_bytes, f"GPU {gpus[0].name}")
            if gpus
            else (self._memory_probe().available_bytes, "RAM")
        )
        if free >= needed:
            return
        message = (
            f"Loading {spec.display_name} needs about {needed / 1e9:.1f} GB but only {free / 1e9:.1f} GB of "
            f"{where} is free: it may fail or make the system swap. Close other applications or pick a "
            "smaller model."
        )
        log.warning("low memory before load", extra={"model_id": spec.id, "needed": needed, "free": free})
        self._notify("notification", NotificationMessage(level="warning", message=message, kind="low_memory"))

    def check_disk_for_download(self, spec: ModelSpec) -> None:
        """Warn (kind ``low_disk``) when a download would leave less than 1 GB free in the model cache."""
        free = files.free_space(self.models_dir)
        if free - 2 * spec.size_bytes >= LOW_DISK_BYTES:
            return
        message = (
            f"Downloading {spec.display_name} ({spec.size_bytes / 1e9:.1f} GB) leaves little disk space in "
            f"{self.models_dir} ({free / 1e9:.1f} GB free now). Delete unused models (models.delete)."
        )
        self._notify("notification", NotificationMessage(level="warning", message=message, kind="low_disk"))

    # --- internals -----------------------------------------------------------------------------------
    def _pressure_warnings(self) -> list[str]:
        warnings = []
        memory = self._memory_probe()
        if memory.available_bytes < _LOAD_HEADROOM_BYTES * 2:
            warnings.append(f"Low memory: {memory.available_bytes / 1e6:,.0f} MB available.")
        free = files.free_space(self.models_dir)
        if free < LOW_DISK_BYTES:
            warnings.append(f"Low disk space in the model cache: {free / 1e6:,.0f} MB free.")
        return warnings

    def _engine_usage(self, pid: int | None) -> ProcessUsage | None:
        if pid is None:
            self._engine_process = None
            return None
        if self._engine_process is None or self._engine_process.pid != pid:
            self._engine_process = psutil.Process(pid)
            self._engine_process.cpu_percent(None)
        try:
            return _usage(self._engine_process)
        except psutil.Error:
            return None


def estimate_load_bytes(spec: ModelSpec) -> int:
    """Rough resident size of a loaded model: its files plus headroom (plus NeMo for .nemo)."""
    extra = _NEMO_IMPORT_BYTES if spec.engine == "nemo" else 0
    return int(spec.size_bytes * 1.2) + _LOAD_HEADROOM_BYTES + extra


def _usage(process: psutil.Process) -> ProcessUsage:
    with process.oneshot():
        files = process.num_handles() if sys.platform == "win32" else process.num_fds()
        return ProcessUsage(
            pid=process.pid,
            rss_bytes=process.memory_info().rss,
            cpu_percent=process.cpu_percent(None),
            threads=process.num_threads(),
            open_files=files,
        )


def _system_memory() -> MemoryUsage:
    memory = psutil.virtual_memory()
    return MemoryUsage(
        total_bytes=memory.total, available_bytes=memory.available, used_percent=memory.percent
    )
