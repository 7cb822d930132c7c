"""Server → host notifications: the payloads (documented in the OpenRPC document's ``x-notifications``)
and the progress reporter every long operation uses, whichever front started it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, Literal, TypeVar

import anyio
import msgspec

from . import errors
from .transcripts.types import Segment

RequestId = int | str | None
"""A JSON-RPC request id (``None`` for work no request started)."""
Notify = Callable[[str, msgspec.Struct], None]
"""Sends one notification: its method and its payload Struct."""
FinalStage = Literal["done", "failed", "cancelled"]
"""How a started operation ended: its progress stream's last frame says so."""


class ModelProgress(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Fields left at None are not sent (a load has no byte counts; the HTTP shim's loads no request id)."""

    request_id: RequestId = None
    model_id: str
    progress: float
    """0..1"""
    message: str
    downloaded_bytes: int | None = None
    """Downloads only: bytes on disk so far (resumed bytes included)."""
    total_bytes: int | None = None
    """Downloads only: size of all the model's files."""
    rate_bytes_per_s: int | None = None
    """Downloads only: recent transfer rate."""
    stage: FinalStage | None = None
    """Only on the last frame of a load or download: ``done``, ``failed`` (see ``error``) or ``cancelled``."""
    error: str | None = None
    """With ``failed``: the error's kind (``model_load_failed``, ``out_of_memory``…)."""


class TranscriptionProgress(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    request_id: RequestId
    file_id: str | None = None
    progress: float
    """0..1; reaches 1.0 exactly once, when the transcription is ``done``."""
    stage: Literal["decoding", "loading_model", "transcribing", "done", "failed", "cancelled"]
    """The last frame of every transcription is ``done``, ``failed`` or ``cancelled``."""
    error: str | None = None
    """With ``failed``: the error's kind (``audio_unreadable``, ``engine_crashed``…)."""


class TranscriptionSegment(msgspec.Struct, frozen=True):
    """One finished segment of a running ``transcribe.file`` (asked for with ``segment_notifications``)."""

    request_id: RequestId
    segment: Segment
    """As the result will have it: absolute times, final id."""
    file_id: str | None = None


class NotificationMessage(msgspec.Struct, frozen=True):
    level: Literal["info", "warning", "error"]
    message: str
    kind: str | None = None
    """A stable machine-readable tag (e.g. ``model_unloaded``, ``device_fallback``)."""


class ConfigChanged(msgspec.Struct, frozen=True):
    keys: list[str]
    """Dotted paths of the changed settings (``model.auto_unload_timeout_s``); config.get has the values."""


NOTIFICATIONS: list[tuple[str, type[msgspec.Struct], str]] = [
    ("model.progress", ModelProgress, "Progress of a model load or download."),
    ("transcription.progress", TranscriptionProgress, "Progress of a transcription request."),
    (
        "transcription.segment",
        TranscriptionSegment,
        "A segment of a running transcription, as soon as decoded.",
    ),
    ("notification", NotificationMessage, "Something the user may want to know (fallbacks, auto-unload)."),
    ("config.changed", ConfigChanged, "Settings changed (dotted keys); config.get has the values."),
]


class StreamPartial(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    segment_id: int
    """The ``stream.final`` segment these words will belong to."""
    stable: str
    """Words two consecutive decodes agreed on: within a segment it only grows, never changes (policy
    ``dictation``: the segment's ``stream.final`` may still revise them, and says so)."""
    unstable: str
    """The latest guess after the stable words; may change with the next decode."""
    start: float
    """Seconds from the stream's start where the open utterance begins."""
    audio_end: float
    """Seconds from the stream's start up to which audio was decoded."""


class StreamFinal(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    segment: Segment
    """Times in seconds from the stream's start. Its text starts with the last partial's stable text,
    unless ``revised``."""
    reason: Literal["silence", "sentence", "max_length", "stop"]
    """What ended it: a pause (``silence_s``); a sentence that ended at a shorter pause, finalized while the
    utterance goes on (dictation: the decode at the pause and a later one agree on it); a long utterance
    trimmed at a sentence end; or ``stream.stop``."""
    revised: bool = False
    """Policy ``dictation``: the final decode, which heard the whole utterance, differs from the stable
    words the partials showed, and its words replace them (show this segment's text in their place)."""


NOTIFICATIONS += [
    ("stream.partial", StreamPartial, "Live text of a stream's open utterance (stable + unstable)."),
    ("stream.final", StreamFinal, "A finished utterance of a stream (after a pause, or at stop)."),
]


Progress = TypeVar("Progress", ModelProgress, TranscriptionProgress)


@contextmanager
def final_frame(send: Callable[[FinalStage, str | None], None]) -> Iterator[None]:
    """Run the block, then ``send`` the operation's last frame: ``("done", None)``, or on the way out
    ``("failed", error kind)`` / ``("cancelled", None)`` (not for KeyboardInterrupt, SystemExit)."""
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, anyio.get_cancelled_exc_class()):
            send("cancelled", None)
        elif isinstance(exc, Exception):
            kind = errors.error_for(exc).kind
            send(*(("cancelled", None) if kind == "cancelled" else ("failed", kind)))
        raise
    send("done", None)


class ProgressReporter(Generic[Progress]):
    """Emits progress payloads for one request: throttled, monotonic, always sending 100 %.

    Each payload is a ``payload`` Struct built from ``fields``, ``progress`` and the call's fields.
    Thread-safe: engines call it from worker threads.
    """

    def __init__(
        self,
        emit: Callable[[Progress], None],
        payload: type[Progress],
        fields: dict[str, Any],
        *,
        min_interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._payload = payload
        self._fields = fields
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_sent_at = -float("inf")
        self._last_progress = 0.0
        self._last_stage: object = None

    def __call__(self, progress: float, **extra: Any) -> None:
        """Report ``progress`` in 0..1 plus fields such as ``stage`` or ``message``."""
        with self._lock:
            progress = min(1.0, max(progress, self._last_progress))
            now = self._clock()
            stage = extra.get("stage")
            due = now - self._last_sent_at >= self._min_interval_s
            if not (due or progress >= 1.0 or stage != self._last_stage):
                return
            if progress >= 1.0 and self._last_progress >= 1.0 and stage == self._last_stage:
                return
            self._last_sent_at, self._last_progress, self._last_stage = now, progress, stage
        self._emit(self._payload(**self._fields, progress=round(progress, 4), **extra))
