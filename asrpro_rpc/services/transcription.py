"""File transcription: validate the path, run it on the resident model, post-process, shape the result."""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import anyio
import msgspec

from .. import errors
from ..audio.decode import probe_duration_s
from ..engines.base import SegmentSink
from ..engines.host.priority import priority_of
from ..events import FinalStage, Notify, final_frame
from ..system.files import special_file_kind
from ..transcripts.cleanup import postprocess
from ..transcripts.formats import render
from ..transcripts.types import (
    Granularity,
    ResponseFormat,
    Segment,
    Task,
    TranscribeOptions,
    Transcript,
    Word,
)
from ..transcripts.vocabulary import Vocabulary
from .models import LoadProgress, ModelManager, broadcast_load_progress

MAX_FILE_ID_CHARS = 4096
"""A ``file_id`` (or the path standing in for one) is echoed in every notification: at most PATH_MAX."""


class TranscribeFileParams(TranscribeOptions, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``transcribe.file``: a path on this machine plus the shared transcription options."""

    path: str
    model: str | None = None
    """Model id; omitted or ``whisper-1`` means the selected model."""
    response_format: ResponseFormat = "verbose_json"
    timestamp_granularities: list[Granularity] = msgspec.field(default_factory=lambda: ["segment"])
    """Add ``"word"`` for word timestamps (same as ``word_timestamps: true``)."""
    file_id: Annotated[str, msgspec.Meta(max_length=MAX_FILE_ID_CHARS)] | None = None
    """Echoed in ``transcription.progress`` so a host can tell files apart (default: the path)."""
    segment_notifications: bool = False
    """Also send each segment as a ``transcription.segment`` notification as soon as it is decoded (show a
    long file's transcript while it grows)."""

    def options(self) -> TranscribeOptions:
        fields = {f: getattr(self, f) for f in TranscribeOptions.__struct_fields__}
        fields["word_timestamps"] = self.word_timestamps or "word" in self.timestamp_granularities
        return TranscribeOptions(**fields)


class TranscriptionResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The answer to ``transcribe.file``.

    ``json`` gives ``text`` and the metadata; ``verbose_json`` adds ``segments`` (and ``words`` when word
    timestamps were asked); ``text``, ``srt`` and ``vtt`` put the rendered document in ``content``.
    """

    text: str
    language: str
    duration: float
    model: str
    task: Task
    format: ResponseFormat
    language_probability: float | None = None
    segments: list[Segment] | None = None
    words: list[Word] | None = None
    content: str | None = None


def check_audio_path(path: str) -> Path:
    """Fail early (before any model loads) on paths that can't be audio."""
    if not path.strip():
        raise errors.InvalidParams("Invalid params: path is empty; pass an audio file's path.", field="path")
    file = Path(os.path.expanduser(path))
    try:
        info = file.stat()
    except FileNotFoundError:
        raise errors.FileNotFound(
            f"File not found: {file}. Check the path (it is read on this machine).", path=path
        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise errors.AudioUnreadable(
            f"{file} is a directory, not an audio file.", path=path, reason="is_directory"
        )
    if not stat.S_ISREG(info.st_mode):
        raise errors.AudioUnreadable(
            f"{file} is {special_file_kind(info.st_mode)}, not a regular file; save the audio to a file.",
            path=path,
            reason="not_a_regular_file",
        )
    if not os.access(file, os.R_OK):
        raise errors.PermissionDenied(f"Cannot read {file}: permission denied.", path=path)
    if info.st_size == 0:
        raise errors.AudioUnreadable(f"{file} is empty (0 bytes).", path=path, reason="empty_file")
    return file


def shape_result(
    transcript: Transcript, response_format: ResponseFormat, word_timestamps: bool, model_id: str
) -> TranscriptionResult:
    content = render(transcript, response_format) if response_format in ("text", "srt", "vtt") else None
    verbose = response_format == "verbose_json"
    words = transcript.words
    if words is None and word_timestamps:
        words = [word for segment in transcript.segments for word in segment.words or ()]
    return TranscriptionResult(
        text=transcript.text,
        language=transcript.language,
        language_probability=transcript.language_probability,
        duration=transcript.duration,
        model=model_id,
        task=transcript.task,
        format=response_format,
        segments=transcript.segments if verbose else None,
        words=words if verbose and word_timestamps else None,
        content=content if isinstance(content, str) else None,
    )


class TranscriptionService:
    """Transcribes files on the model manager's resident model; a model it has to load first reports
    ``model.progress`` to every listener (``notify``), whichever front asked. ``vocabulary()`` gives the
    user's dictionary in force (the ``vocabulary`` settings, read at each request)."""

    def __init__(
        self,
        models: ModelManager,
        notify: Notify | None = None,
        *,
        vocabulary: Callable[[], Vocabulary] = Vocabulary,
    ) -> None:
        self.models = models
        self._notify = notify
        self._vocabulary = vocabulary

    async def transcribe_file(
        self, params: TranscribeFileParams, progress: Any, on_segment: SegmentSink | None = None
    ) -> TranscriptionResult:
        """``progress(fraction, stage=...)`` receives stage changes and per-segment progress, and last
        ``done``, ``failed`` (with ``error``, the error kind) or ``cancelled``; ``on_segment`` (from a
        worker thread) each segment of the result as soon as it is decoded, as the result has it."""

        def end(stage: FinalStage, kind: str | None) -> None:
            progress(1.0 if stage == "done" else 0.0, stage=stage, error=kind)

        with final_frame(end):
            return await self._transcribe(params, progress, on_segment)

    async def _transcribe(
        self, params: TranscribeFileParams, progress: Any, on_segment: SegmentSink | None
    ) -> TranscriptionResult:
        file = check_audio_path(params.path)
        options = with_vocabulary(params.options(), self._vocabulary())
        if options.priority is None:  # known up front, so a short file never queues behind long ones
            duration_s = await anyio.to_thread.run_sync(probe_duration_s, file)
            options = msgspec.structs.replace(options, priority=priority_of(None, duration_s))
        spec = self.models.resolve(params.model)
        if not self.models.status().model_id == spec.id:
            progress(0.0, stage="loading_model")
        transcript = await self.models.transcribe(
            spec.id,
            str(file),
            options,
            on_progress=lambda fraction: progress(fraction * 0.999, stage="transcribing"),
            on_loading=self._load_reporter(spec.id),
            on_segment=_kept_segments(on_segment, options.min_confidence) if on_segment else None,
        )
        transcript = postprocess(transcript, options)
        transcript = msgspec.structs.replace(transcript, model=spec.id)
        return shape_result(transcript, params.response_format, options.word_timestamps, spec.id)

    def _load_reporter(self, model_id: str) -> LoadProgress | None:
        return None if self._notify is None else broadcast_load_progress(self._notify, model_id)


def with_vocabulary(options: TranscribeOptions, defaults: Vocabulary) -> TranscribeOptions:
    """``options`` with its vocabulary resolved over ``defaults`` (what engines and post-processing use)."""
    return msgspec.structs.replace(options, vocabulary=(options.vocabulary or Vocabulary()).over(defaults))


def _kept_segments(sink: SegmentSink, min_confidence: float | None) -> SegmentSink:
    """Passes on the segments ``postprocess`` will keep, numbered as it numbers them."""
    kept = itertools.count()

    def forward(segment: Segment) -> None:
        if min_confidence is None or segment.avg_logprob >= min_confidence:
            sink(msgspec.structs.replace(segment, id=next(kept)))

    return forward
