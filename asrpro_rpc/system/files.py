"""File-system helpers: durable replacement and free-space checks.

Durable replacement is what config.json, the model registrations and verification stamps rely on: a crash
or power loss leaves either the old file or the new one, never a mix: write a temporary sibling
(``.<name>.<random>.tmp``), fsync it, rename it over the target, fsync the directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from asrpro_rpc import errors

TEMP_SUFFIX = ".tmp"
FREE_SPACE_MARGIN_BYTES = 64 << 20
"""Left free beyond what a write needs (logs, settings, other programs)."""


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
