"""File transcription: validate the path, run it on the resident model, post-process, shape the result."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import msgspec

from .. import errors
from ..engines.base import SegmentSink
from ..events import FinalStage, Notify, final_frame
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
from .models import LoadProgress, ModelManager, broadcast_load_progress


class TranscribeFileParams(TranscribeOptions, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``transcribe.file``: a path on this machine plus the shared transcription options."""

    path: str
    model: str | None = None
    """Model id; omitted or ``whisper-1`` means the selected model."""
    response_format: ResponseFormat = "verbose_json"
    timestamp_granularities: list[Granularity] = msgspec.field(default_factory=lambda: ["segment"])
    """Add ``"word"`` for word timestamps (same as ``word_timestamps: true``)."""
    file_id: str | None = None
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
    file = Path(os.path.expanduser(path))
    if not file.exists():
        raise errors.FileNotFound(
            f"File not found: {file}. Check the path (it is read on this machine).", path=path
        )
    if file.is_dir():
        raise errors.AudioUnreadable(
            f"{file} is a directory, not an audio file.", path=path, reason="is_directory"
        )
    if not os.access(file, os.R_OK):
        raise errors.PermissionDenied(f"Cannot read {file}: permission denied.", path=path)
    if file.stat().st_size == 0:
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
    ``model.progress`` to every listener (``notify``), whichever front asked."""

    def __init__(self, models: ModelManager, notify: Notify | None = None) -> None:
        self.models = models
        self._notify = notify

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
        options = params.options()
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


def _kept_segments(sink: SegmentSink, min_confidence: float | None) -> SegmentSink:
    """Passes on the segments ``postprocess`` will keep, numbered as it numbers them."""
    kept = itertools.count()

    def forward(segment: Segment) -> None:
        if min_confidence is None or segment.avg_logprob >= min_confidence:
            sink(msgspec.structs.replace(segment, id=next(kept)))

    return forward
