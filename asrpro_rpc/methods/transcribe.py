"""``transcribe.file``: a file on this machine → transcript, with ``transcription.progress``."""

from __future__ import annotations

from ..errors import clip
from ..events import TranscriptionProgress, TranscriptionSegment
from ..services.transcription import MAX_FILE_ID_CHARS, TranscribeFileParams, TranscriptionResult
from ..transcripts.types import Segment
from .base import RequestContext, rpc_method


@rpc_method(
    "transcribe.file",
    summary="Transcribe (or translate) an audio or video file; reports transcription.progress.",
    errors=(
        "file_not_found",
        "audio_unreadable",
        "model_not_found",
        "model_not_downloaded",
        "model_load_failed",
        "engine_crashed",
        "cancelled",
    ),
)
async def transcribe_file(ctx: RequestContext, params: TranscribeFileParams) -> TranscriptionResult:
    file_id = clip(params.file_id or params.path, MAX_FILE_ID_CHARS)  # echoed in every notification
    progress = ctx.progress("transcription.progress", TranscriptionProgress, file_id=file_id)

    def send_segment(segment: Segment) -> None:
        ctx.notify("transcription.segment", TranscriptionSegment(ctx.id, segment, file_id))

    on_segment = send_segment if params.segment_notifications else None
    return await ctx.app.transcription.transcribe_file(params, progress, on_segment)


METHODS = [transcribe_file]
