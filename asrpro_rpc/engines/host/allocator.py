"""The engine process's malloc policy (glibc; elsewhere a no-op): by workload, which blocks are mapped
straight from the OS, and when free pages go back to it.

A file transcription holds big, long-lived blocks (a five-minute window's samples and features, 10-50 MB):
mapped, they are returned whole on free and the engine's peak does not drift with its allocation history
(``FILE_MMAP_THRESHOLD``, also the child's start-up value: ``client.CHILD_ENV_DEFAULTS``). A stream's decodes
are short and several a second, each with 24-48 MB of encoder attention buffers: mapped, they would be
faulted in afresh every decode, so while only such decodes run the threshold is ``STREAM_MMAP_THRESHOLD``
and their blocks stay in the heap (18 stream decodes of whisper-base: 10-12.5 s with 8 MiB and a trim after
each, 6.3 s this way). A threshold set by the user's environment is left alone.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

FILE_MMAP_THRESHOLD = 8 << 20
STREAM_MMAP_THRESHOLD = 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
"""glibc's ``mallopt`` parameter numbers."""
_DEFAULT_TRIM_THRESHOLD = 128 << 10


@functools.cache
def _libc() -> Any:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - glibc only (not macOS, Windows, musl)
    except (OSError, AttributeError):
        return None
    return libc


def release_free_memory() -> None:
    """Hand the allocator's free pages back to the OS (``malloc_trim``).

    Freed blocks under the mmap threshold otherwise stay resident, fragmented across the per-thread arenas
    of past requests. Twelve hour-long transcriptions cancelled in a row (with a short one after each):
    idle RSS 218 -> 335 MB and peak 360 -> 529 MB before (a reference cycle through the cancel's traceback
    also held each window until a full collection); 178 -> 184 MB and 360 -> 395 MB without the cycle;
    141 -> 143 MB and a flat 356 MB peak with this as well.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


class AllocatorPolicy:
    """Counts running file transcriptions: the stream threshold applies only while there are none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files = 0
        self._threshold: int | None = None
        ours = os.environ.get("MALLOC_MMAP_THRESHOLD_") == str(FILE_MMAP_THRESHOLD)
        self._enabled = ours and _libc() is not None

    def started(self, *, file: bool) -> None:
        """Before a transcription: of a file, or of a stream's in-memory audio."""
        with self._lock:
            if file:
                self._files += 1
                self._set(FILE_MMAP_THRESHOLD)
            elif self._files == 0:
                self._set(STREAM_MMAP_THRESHOLD)

    def finished(self, *, file: bool) -> None:
        """After it, once nothing holds its memory: a file's free pages go back to the OS (before the
        answer, so the next request finds them returned)."""
        if not file:
            return
        with self._lock:
            self._files -= 1
        release_free_memory()

    def _set(self, threshold: int) -> None:
        if self._enabled and threshold != self._threshold:
            libc = _libc()
            libc.mallopt(_M_MMAP_THRESHOLD, threshold)
            # a stream's freed buffers at the heap's top stay there for the next decode
            trim = 2 * threshold if threshold == STREAM_MMAP_THRESHOLD else _DEFAULT_TRIM_THRESHOLD
            libc.mallopt(_M_TRIM_THRESHOLD, trim)
            self._threshold = threshold
