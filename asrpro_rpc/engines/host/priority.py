"""Interactive work first: background transcriptions pause between segments while interactive ones run.

A dictation (a stream's decodes, a short file, a request marked ``priority: "interactive"``) shares the
engine's cores with any long file being transcribed. Engines call ``is_cancelled`` between segments (Whisper)
or windows (Parakeet); for a background request that call is ``PriorityGate.checkpoint``, which waits there
while interactive work is running and for ``LINGER_S`` after it, so the dictation gets the cores after at
most one window of sharing (for Whisper's batched pipeline, the default over 30 s, one batch of up to
``batch_size`` speech chunks). The linger spans a stream's gaps between re-decodes: without it the file
starts a batch in every gap, and the stream's final decode at stop shares the cores with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from asrpro_rpc.transcripts.types import Priority

INTERACTIVE_MAX_S = 30.0
"""Audio up to this long (one Whisper window) is interactive unless the request says otherwise."""
LINGER_S = 1.0
"""Background work resumes this long after the last interactive request ended: a stream re-decodes every
0.25 s of audio while the user speaks (a pause decode follows within 0.5 s of silence), so the file stays
paused from a dictation's first decode to its final, and goes on a second after."""
_POLL_S = 0.1
"""How often a paused request looks whether interactive work has ended."""


def priority_of(requested: Priority | None, audio_s: float | None) -> Priority:
    """The request's priority, or ``interactive`` for short audio and ``background`` for long (or of
    unknown length)."""
    if requested is not None:
        return requested
    return "interactive" if audio_s is not None and audio_s <= INTERACTIVE_MAX_S else "background"


class PriorityGate:
    """Counts running interactive requests; background ones wait at checkpoints while any run, and for
    ``linger_s`` after the last one ended."""

    def __init__(self, linger_s: float = LINGER_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._interactive = 0
        self._linger_s = linger_s
        self._clock = clock
        self._resume_at = float("-inf")

    @contextmanager
    def interactive(self) -> Iterator[None]:
        with self._lock:
            self._interactive += 1
        try:
            yield
        finally:
            with self._lock:
                self._interactive -= 1
                self._resume_at = self._clock() + self._linger_s

    def checkpoint(self, cancelled: threading.Event) -> bool:
        """Wait while interactive work runs or lingers (or until cancelled); True if the request was
        cancelled."""
        while True:
            with self._lock:
                wait_s = _POLL_S if self._interactive else self._resume_at - self._clock()
            if wait_s <= 0 or cancelled.wait(min(wait_s, _POLL_S)):
                return cancelled.is_set()
