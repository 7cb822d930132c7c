"""File-system helpers: durable replacement, OS advisory locks and free-space checks.

Durable replacement is what config.json, the model registrations and verification stamps rely on: a crash
or power loss leaves either the old file or the new one, never a mix: write a temporary sibling
(``.<name>.<random>.tmp``), fsync it, rename it over the target, fsync the directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from asrpro_rpc import errors

TEMP_SUFFIX = ".tmp"
FREE_SPACE_MARGIN_BYTES = 64 << 20
"""Left free beyond what a write needs (logs, settings, other programs)."""


def special_file_kind(mode: int) -> str:
    """What a file that isn't a regular file or a directory is, for messages ("a FIFO (named pipe)")."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def temp_prefix(path: Path) -> str:
    """Temporary files for ``path`` start with this (so leftovers of a killed writer can be found)."""
    return f".{path.name}."


def write_atomic(path: Path, data: bytes) -> os.stat_result:
    """Replace ``path`` with ``data`` atomically and durably (creating its directory if needed); returns the
    new file's ``stat``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
            stat = os.fstat(temp.fileno())
        replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    fsync_directory(path.parent)
    return stat


def replace(source: str | Path, target: Path, *, attempts: int = 20, retry_s: float = 0.05) -> None:
    """``os.replace``; on Windows it is retried while another program has the target open."""
    for attempt in range(attempts):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if sys.platform != "win32" or attempt == attempts - 1:
                raise
            time.sleep(retry_s)


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; Windows has no directory handles for this)."""
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- OS locks -------------------------------------------------------------------------------------------
class OsFileLock:
    """An exclusive advisory OS lock on ``path``: ``flock`` on POSIX, ``msvcrt.locking`` of the byte at
    ``windows_byte`` on Windows. The OS drops it when the holder dies however it dies, so a killed holder
    never leaves the file locked. ``fd`` stays open (and may be written) while the lock is held.
    """

    def __init__(self, path: Path, *, windows_byte: int = 0) -> None:
        self.path = path
        self.fd: int | None = None
        self._windows_byte = windows_byte

    def try_acquire(self) -> bool:
        """Take the lock now if it is free; False if another process holds it.

        A holder may unlink the file as it releases: the lock is retaken until it is on the file ``path``
        names.
        """
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
            if not self._lock(fd):
                os.close(fd)
                return False
            try:
                same_file = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same_file = False
            if same_file:
                self.fd = fd
                return True
            os.close(fd)
        return False

    def acquire(
        self, timeout_s: float, *, poll_s: float = 0.01, clock: Callable[[], float] = time.monotonic
    ) -> bool:
        """Take the lock, waiting up to ``timeout_s`` for it; False if it stayed taken."""
        deadline_s = clock() + timeout_s
        while not self.try_acquire():
            if clock() >= deadline_s:
                return False
            time.sleep(poll_s)
        return True

    def release(self) -> None:
        """Drop the lock (closing the file); idempotent."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            if sys.platform == "win32":
                import msvcrt

                os.lseek(fd, self._windows_byte, os.SEEK_SET)
                with contextlib.suppress(OSError):
                    msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        finally:
            os.close(fd)  # on POSIX, closing drops the flock

    def _lock(self, fd: int) -> bool:
        if sys.platform == "win32":
            import msvcrt

            os.lseek(fd, self._windows_byte, os.SEEK_SET)
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            except OSError:
                return False
            return True
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True


# --- free space -----------------------------------------------------------------------------------------
def nearest_existing(path: Path) -> Path:
    """``path``, or its nearest parent that exists (what a directory not yet made will live on)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_space(path: Path) -> int:
    """Free bytes on the file system that holds (or will hold) ``path``."""
    return shutil.disk_usage(nearest_existing(path)).free


def ensure_free_space(
    directory: Path,
    needed_bytes: int,
    *,
    margin_bytes: int = FREE_SPACE_MARGIN_BYTES,
    advice: str = "Free some space.",
) -> None:
    """Check that ``needed_bytes`` plus ``margin_bytes`` are free where ``directory`` is.

    Raises:
        errors.DiskFull: they aren't; ``advice`` ends the message.
    """
    free_bytes = free_space(directory)
    required_bytes = needed_bytes + margin_bytes
    if free_bytes < required_bytes:
        raise errors.DiskFull(
            f"Not enough disk space in {directory}: {required_bytes / 1e6:,.0f} MB needed, "
            f"{free_bytes / 1e6:,.0f} MB free. {advice}",
            resource="disk",
            path=str(directory),
            needed_bytes=required_bytes,
            free_bytes=free_bytes,
        )
