"""The settings file on disk: its JSON encoding, an inter-process lock, atomic writes, signatures, backups.

Writers (this process, another sidecar, the host app) take an exclusive lock on ``<file>.lock`` and
replace the file atomically: temp file in the same directory, fsync, ``os.replace``, fsync the directory.
A reader therefore sees the old file or the new one, never a torn one, even after a ``kill -9``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from .. import errors
from ..system import files as durable
from ..system import paths
from . import settings
from .settings import Settings

CONFIG_FILE = "config.json"
TEMP_PREFIX = durable.temp_prefix(Path(CONFIG_FILE))
TEMP_SUFFIX = durable.TEMP_SUFFIX


class FileSignature(NamedTuple):
    """Cheap identity of one version of the file (what the watcher polls)."""

    inode: int
    size_bytes: int
    mtime_ns: int


def signature_of(stat: os.stat_result) -> FileSignature:
    return FileSignature(stat.st_ino, stat.st_size, stat.st_mtime_ns)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def exclusive_lock(
    lock_path: Path,
    *,
    timeout_s: float = 10.0,
    poll_s: float = 0.01,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[None]:
    """Hold the writers' lock on ``lock_path`` (``durable.OsFileLock``; byte 0 on Windows).

    Raises ``errors.Busy`` after ``timeout_s``.
    """
    lock = durable.OsFileLock(lock_path)
    if not lock.acquire(timeout_s, poll_s=poll_s, clock=clock):
        raise errors.Busy(
            f"The settings file is locked by another program ({lock_path}); try again.",
            lock_path=str(lock_path),
        )
    try:
        yield
    finally:
        lock.release()


def atomic_write(path: Path, data: bytes) -> FileSignature:
    """Replace ``path`` with ``data`` atomically and durably; return the new file's signature."""
    return signature_of(durable.write_atomic(path, data))


def read(path: Path) -> tuple[bytes, FileSignature] | None:
    """The file's bytes and signature, or None if it doesn't exist."""
    try:
        with open(path, "rb") as file:
            return file.read(), signature_of(os.fstat(file.fileno()))
    except FileNotFoundError:
        return None


def current_signature(path: Path) -> FileSignature | None:
    try:
        return signature_of(path.stat())
    except FileNotFoundError:
        return None


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Delete temp files left by writers that died mid-write (call with the lock held)."""
    removed = []
    for temp in directory.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            temp.unlink()
            removed.append(temp)
    return removed


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}-{n}"), n + 1
    return candidate


def timestamp() -> str:
    """UTC time for backup names, e.g. ``20250102T030405Z``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def move_aside(path: Path, suffix: str) -> Path:
    """Rename ``path`` to ``<name>.<suffix>`` (never overwriting a backup); return the new path."""
    target = _free_name(path.with_name(f"{path.name}.{suffix}"))
    os.replace(path, target)
    durable.fsync_directory(path.parent)
    return target


def back_up(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` unless an identical backup is there already; return the backup."""
    data = source.read_bytes()
    if target.exists() and target.read_bytes() == data:
        return target
    target = _free_name(target)
    atomic_write(target, data)
    return target


def encode(document: Mapping[str, Any]) -> bytes:
    """The file's bytes for ``document``: indented for people, a trailing newline."""
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"


def decode(data: bytes) -> dict[str, Any]:
    """The file's JSON object; ValueError says why it isn't one."""
    try:
        document = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(_located(str(exc), data) if data.strip() else "the file is empty") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply (the limit is about 1,000 levels)") from None
    if not isinstance(document, dict):
        raise ValueError(f"expected a JSON object, found {type(document).__name__}")
    return document


def _located(message: str, data: bytes) -> str:
    """msgspec's ``… (byte 120)`` as ``… at line 7, column 3``, for people editing the file by hand."""
    match = re.search(r"\s*\(byte (\d+)\)$", message)
    if match is None:
        return message
    offset = int(match[1])
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"{message[: match.start()]} at line {line}, column {column}"


def read_settings(config_dir: Path | None = None) -> Settings:
    """The settings in force, read without writing or locking anything (for one-shot CLI commands):
    defaults where the file is missing, unreadable or holds invalid values (the sidecar reports those)."""
    try:
        document = decode(((config_dir or paths.config_dir()) / CONFIG_FILE).read_bytes())
    except (OSError, ValueError):
        return Settings()
    return settings.parse_document(settings.migrate(document))[0]
