"""Private mounts for fault tests: the real sidecar in its own mount namespace, where a directory is a
small tmpfs (a disk that fills) or a read-only bind mount. They exist only for that process and vanish
with it; the test reaches them through ``/proc/<pid>/root``. Needs ``unshare -m`` (root or
CAP_SYS_ADMIN); tests skip where it is unavailable."""

from __future__ import annotations

import functools
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest


@functools.cache
def can_mount() -> bool:
    with tempfile.TemporaryDirectory() as directory:
        probe = ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(directory)}"]
        try:
            return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


needs_mounts = pytest.mark.skipif(not can_mount(), reason="needs `unshare -m` (root) for private mounts")


def namespaced(
    *args: str,
    tmpfs: Sequence[tuple[Path, int]] = (),
    read_only: Sequence[Path] = (),
    command: Sequence[str] | None = None,
) -> list[str]:
    """``asrpro serve ARGS`` (or ``command``) in a new mount namespace where each ``(dir, size_bytes)`` of
    ``tmpfs`` is a tmpfs of that size and each of ``read_only`` is bound read-only over itself."""
    steps = [f"mount -t tmpfs -o size={size},mode=0700 tmpfs {shlex.quote(str(d))}" for d, size in tmpfs]
    for directory in read_only:
        quoted = shlex.quote(str(directory))
        steps.append(f"mount --bind {quoted} {quoted} && mount -o remount,bind,ro {quoted}")
    argv = list(command or [sys.executable, "-m", "asrpro_rpc", "serve", *args])
    return ["unshare", "-m", "sh", "-c", " && ".join([*steps, 'exec "$@"']), "sh", *argv]


def inside(pid: int, path: Path) -> Path:
    """``path`` as the process ``pid`` sees it (its mount namespace)."""
    return Path(f"/proc/{pid}/root") / path.resolve().relative_to("/")


def fill(directory: Path) -> int:
    """Write a file into ``directory`` until its file system is full; return the bytes written."""
    written = 0
    with open(directory / "filler", "wb", buffering=0) as file:
        try:
            while True:
                written += file.write(b"\0" * 4096)
        except OSError:
            return written
