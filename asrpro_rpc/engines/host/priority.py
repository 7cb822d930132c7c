"""Interactive work first: background transcriptions pause between segments while interactive ones run.

A dictation (a stream's decodes, a short file, a request marked ``priority: "interactive"``) shares the
engine's cores with any long file being transcribed. Engines call ``is_cancelled`` between segments (Whisper)
or windows (Parakeet); for a background request that call is ``PriorityGate.checkpoint``, which waits there
while interactive work is running, so the dictation gets the cores after at most one window of sharing
(for Whisper's batched pipeline, the default over 30 s, one batch of up to ``batch_size`` speech chunks).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from asrpro_rpc.transcripts.types import Priority

INTERACTIVE_MAX_S = 30.0
"""Audio up to this long (one Whisper window) is interactive unless the request says otherwise."""
_WAKE_S = 0.1
"""How often a paused request looks at its cancel event."""


def priority_of(requested: Priority | None, audio_s: float | None) -> Priority:
    """The request's priority, or ``interactive`` for short audio and ``background`` for long (or of
    unknown length)."""
    if requested is not None:
        return requested
    return "interactive" if audio_s is not None and audio_s <= INTERACTIVE_MAX_S else "background"


class PriorityGate:
    """Counts running interactive requests; background ones wait at checkpoints while any run."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._interactive = 0

    @contextmanager
    def interactive(self) -> Iterator[None]:
        with self._changed:
            self._interactive += 1
        try:
            yield
        finally:
            with self._changed:
                self._interactive -= 1
                self._changed.notify_all()

    def checkpoint(self, cancelled: threading.Event) -> bool:
        """Wait while interactive work runs (or until cancelled); True if the request was cancelled."""
        with self._changed:
            while self._interactive and not cancelled.is_set():
                self._changed.wait(_WAKE_S)
        return cancelled.is_set()
