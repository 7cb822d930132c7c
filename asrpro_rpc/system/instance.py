"""Single instance: one ``asrpro serve`` per settings directory, announced by a lock file.

The lock file (``instance-<key>.lock`` in the platform runtime dir, ``$ASRPRO_RUNTIME_DIR`` to override)
holds JSON: pid, process start time, start time and HTTP port, so a host app can find the running sidecar.
The file is also locked by the OS (``flock``; ``msvcrt.locking`` on Windows) for the life of the process:
the kernel frees that lock when the process dies however it dies, so a lock file left by a crash (kill -9)
is stale by construction and the next start takes it over. When the lock is held, the recorded pid is
checked with psutil (alive, same start time, an asrpro command line) to name the running sidecar, or, with
``--replace``, to ask it to shut down (SIGTERM: its graceful shutdown) and take over.

The key is derived from the settings directory, so test runs with their own ``ASRPRO_CONFIG_DIR`` are
separate instances; ``--allow-multiple`` skips the lock entirely.

Also here, the rest of the process's lifecycle: a private temp dir removed at exit, and the parent watch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import msgspec
import platformdirs
import psutil

from . import files, paths

log = logging.getLogger(__name__)


class InstanceInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What the lock file says about the sidecar holding it."""

    pid: int
    process_started_at_s: float
    """psutil's create time of the process (Unix s): tells a live sidecar from a recycled pid."""
    started_at_s: float
    """When it took the lock (Unix s)."""
    http_port: int | None = None
    config_dir: str = ""


class AlreadyRunning(RuntimeError):
    """Another sidecar for the same settings holds the instance lock (a start-up error, not on the wire)."""

    def __init__(self, message: str, holder: InstanceInfo | None) -> None:
        super().__init__(message)
        self.message = message
        self.holder = holder


def runtime_dir() -> Path:
    """``$ASRPRO_RUNTIME_DIR``, else the platform runtime dir, else the state dir."""
    override = os.environ.get("ASRPRO_RUNTIME_DIR")
    if override:
        return Path(override)
    with warnings.catch_warnings():  # no $XDG_RUNTIME_DIR: platformdirs warns and falls back to /tmp
        warnings.simplefilter("ignore")
        runtime = platformdirs.user_runtime_dir(paths.APP_NAME, appauthor=False)
    for candidate in (runtime, platformdirs.user_state_dir(paths.APP_NAME, appauthor=False)):
        try:
            Path(candidate).mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        return Path(candidate)
    return Path(paths.cache_dir())


def lock_path(config_dir: Path | None = None) -> Path:
    """The lock file for the sidecar serving ``config_dir`` (default: the current settings directory)."""
    resolved = str(Path(config_dir or paths.config_dir()).expanduser().resolve())
    key = hashlib.sha256(resolved.encode()).hexdigest()[:12]
    return runtime_dir() / f"instance-{key}.lock"


def read_info(path: Path | None = None) -> InstanceInfo | None:
    """The lock file's record, or None (absent or unreadable)."""
    try:
        return msgspec.json.decode((path or lock_path()).read_bytes(), type=InstanceInfo)
    except (OSError, msgspec.DecodeError):
        return None


def is_live_sidecar(info: InstanceInfo) -> bool:
    """Whether ``info.pid`` is the very process that wrote ``info`` (not a recycled pid) and is asrpro."""
    try:
        process = psutil.Process(info.pid)
        if abs(process.create_time() - info.process_started_at_s) > 1.0:
            return False
        command = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return "asrpro" in command


class InstanceLock:
    """The lock held by this process; ``acquire`` then ``release`` (or use it as a context manager)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or lock_path()
        # On Windows, a byte far past the record is locked, so readers can still read the record.
        self._lock = files.OsFileLock(self.path, windows_byte=1 << 30)
        self._info: InstanceInfo | None = None

    def acquire(self, *, replace: bool = False, replace_timeout_s: float = 10.0) -> InstanceInfo:
        """Take the lock; with ``replace``, first ask a running sidecar to shut down (then kill it).

        Raises:
            AlreadyRunning: another live sidecar holds it (and ``replace`` is False, or it wouldn't end).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._lock.try_acquire():
            return self._write_info()
        holder = read_info(self.path)
        if replace and holder is not None and is_live_sidecar(holder):
            log.warning("asking the running sidecar to shut down", extra={"old_pid": holder.pid})
            _signal(holder.pid, kill=False)
            if self._lock.acquire(replace_timeout_s, poll_s=0.05):
                return self._write_info()
            log.warning("the old sidecar did not exit; killing it", extra={"old_pid": holder.pid})
            _signal(holder.pid, kill=True)
        if self._lock.acquire(1.0, poll_s=0.05):  # the holder may have been exiting already
            return self._write_info()
        holder = read_info(self.path)
        if holder is None:
            who = "a process that has not written its record"
        else:
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.started_at_s))
            who = f"pid {holder.pid}, started {started}"
        raise AlreadyRunning(
            f"Another asrpro sidecar is already running for these settings ({who}; lock {self.path}). "
            "Use it, stop it, start this one with --replace to take over, or --allow-multiple (tests, dev).",
            holder,
        )

    def update(self, *, http_port: int | None) -> None:
        """Record the HTTP shim's port (or None when it stops)."""
        if self._info is not None:
            self._info = msgspec.structs.replace(self._info, http_port=http_port)
            self._rewrite()

    def release(self) -> None:
        """Remove the lock file and drop the OS lock; idempotent."""
        if self._lock.fd is None:
            return
        try:
            if read_info(self.path) == self._info:
                self.path.unlink(missing_ok=True)
        finally:
            self._lock.release()
            self._info = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # --- internals -----------------------------------------------------------------------------------
    def _write_info(self) -> InstanceInfo:
        process = psutil.Process()
        self._info = InstanceInfo(
            pid=process.pid,
            process_started_at_s=process.create_time(),
            started_at_s=time.time(),
            config_dir=str(paths.config_dir()),
        )
        self._rewrite()
        log.info("instance lock taken", extra={"lock": str(self.path)})
        return self._info

    def _rewrite(self) -> None:
        fd = self._lock.fd
        assert fd is not None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, msgspec.json.encode(self._info))
        os.fsync(fd)


def _signal(pid: int, *, kill: bool) -> None:
    """SIGTERM (the sidecar's graceful shutdown) or, with ``kill``, SIGKILL."""
    try:
        process = psutil.Process(pid)
        if kill:
            process.kill()
        else:
            process.terminate()
    except psutil.NoSuchProcess:
        pass


# --- the process's private temp dir ---------------------------------------------------------------
_SCRATCH_PREFIX = "asrpro-"


def make_scratch_dir() -> Path:
    """A private temp dir for this process (``tempfile`` and child processes use it); sweeps dead ones.

    Everything the sidecar or its engine processes put in temp files lands here, so one ``rmtree`` at
    exit (``remove_scratch_dir``) leaves nothing behind; a crashed run's dir is removed at the next start.
    """
    base = Path(tempfile.gettempdir())
    for stale in base.glob(f"{_SCRATCH_PREFIX}*"):
        pid = stale.name.removeprefix(_SCRATCH_PREFIX).split("-", 1)[0]
        if pid.isdigit() and stale.is_dir() and not psutil.pid_exists(int(pid)):  # no stat for others
            shutil.rmtree(stale, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{_SCRATCH_PREFIX}{os.getpid()}-", dir=base))
    tempfile.tempdir = str(scratch)
    os.environ["TMPDIR"] = str(scratch)
    return scratch


def remove_scratch_dir(scratch: Path) -> None:
    shutil.rmtree(scratch, ignore_errors=True)


_PARENT_PID_AT_START = os.getppid()


def parent_pid() -> int:
    """The host to outlive: ``$ASRPRO_PARENT_PID`` (a host that starts us through a wrapper), else the
    parent at start-up."""
    named = os.environ.get("ASRPRO_PARENT_PID", "")
    return int(named) if named.isdigit() else _PARENT_PID_AT_START


async def watch_parent(on_gone: Callable[[], Awaitable[None]], interval_s: float = 1.0) -> None:
    """Call ``on_gone`` once the host process has ended (so a crashed host leaves no sidecar behind).

    Stdin EOF usually says so first; this also covers a host that dies while something else keeps the
    pipe open (a grandchild that inherited it).
    """
    watched = parent_pid()
    if watched <= 1:
        return
    while True:
        await anyio.sleep(interval_s)
        if not psutil.pid_exists(watched) or psutil.Process(watched).status() == psutil.STATUS_ZOMBIE:
            log.warning("parent process ended: shutting down", extra={"parent_pid": watched})
            await on_gone()
            return
