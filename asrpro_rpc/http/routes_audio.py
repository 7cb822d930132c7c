"""``/v1/audio/transcriptions``, ``/v1/audio/translations`` and ``/v1/srt``: upload → service → OpenAI body.

The upload is streamed to a temp file, probed, and handed to ``TranscriptionService.transcribe_file`` as a
path, like ``transcribe.file``; progress goes out as ``transcription.progress`` (``request_id`` the
response's ``x-request-id``, ``file_id`` the form's ``file_id`` or a fresh ``file-…``, sent back as
``x-file-id``) to every listener: the stdio host and ``/v1/events``. A client that disconnects cancels its
transcription. ``usage.seconds`` is the audio's duration rounded up to a whole second, as OpenAI bills.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from .. import errors
from ..engines.base import SegmentSink
from ..events import ProgressReporter, TranscriptionProgress
from ..services.transcription import TranscriptionResult
from ..transcripts.formats import render
from ..transcripts.types import ResponseFormat, Task, Transcript
from .disconnect import cancel_on_disconnect
from .forms import SRT_FIELDS, TRANSCRIBE_FIELDS, TRANSLATE_FIELDS, TranscriptionForm, form_schema, parse_form
from .guard import request_id_of
from .languages import language_name
from .schemas import AUDIO_RESPONSES, SRT_RESPONSES
from .sse import Progress, TranscriptionEventStream
from .state import ShimState
from .uploads import probe_media, read_upload

router = APIRouter()
T = TypeVar("T")
TEXT_MEDIA_TYPE = "text/plain; charset=utf-8"
FALLBACK_HEADER = "x-asrpro-fallback"
"""``transcription``: the model can't translate, so the audio was transcribed in its own language."""


@router.post(
    "/v1/audio/transcriptions",
    summary="Transcribe audio (OpenAI's createTranscription; model optional: the selected model).",
    openapi_extra={"requestBody": form_schema(model_required=False, openai_fields=TRANSCRIBE_FIELDS)},
    responses=AUDIO_RESPONSES,
)
async def transcriptions(request: Request) -> Response:
    return await _transcribe(request, task="transcribe", model_required=False)


@router.post(
    "/v1/audio/translations",
    summary="Translate audio to English text (OpenAI's createTranslation); a model that can't translate "
    "transcribes instead (x-asrpro-fallback: transcription).",
    openapi_extra={"requestBody": form_schema(model_required=True, openai_fields=TRANSLATE_FIELDS)},
    responses=AUDIO_RESPONSES,
)
async def translations(request: Request) -> Response:
    return await _transcribe(request, task="translate", model_required=True)


@router.post(
    "/v1/srt",
    summary="Transcribe audio straight to SubRip subtitles (model optional).",
    openapi_extra={"requestBody": form_schema(model_required=False, openai_fields=SRT_FIELDS)},
    responses=SRT_RESPONSES,
)
async def srt(request: Request) -> Response:
    return await _transcribe(request, task="transcribe", model_required=False, response_format="srt")


async def _transcribe(
    request: Request, *, task: Task, model_required: bool, response_format: ResponseFormat | None = None
) -> Response:
    state: ShimState = request.app.state.shim
    upload = await read_upload(request, state.max_upload_bytes)
    form = parse_form(upload, model_required=model_required)
    assert upload.file_path is not None
    services = state.services
    spec = services.models.resolve(form.model)
    if form.language and spec.languages and form.language.split("-")[0].lower() not in spec.languages:
        raise errors.InvalidParams(
            f"Language {form.language!r} is not one {spec.id} knows; use an ISO-639-1 code it lists "
            "(GET /v1/models/{id}) or leave `language` out to detect it.",
            param="language",
        )
    await anyio.to_thread.run_sync(probe_media, upload.file_path, upload.filename)
    headers = {"x-file-id": form.file_id or f"file-{uuid.uuid4().hex[:16]}"}
    if task == "translate" and not spec.translate:  # English-only Whisper, Parakeet: transcribe instead
        task = "transcribe"
        headers[FALLBACK_HEADER] = "transcription"
    params = form.to_params(str(upload.file_path), task, file_id=headers["x-file-id"])
    request_id = request_id_of(request.scope)

    async def run(on_fraction: Progress | None = None, on_segment: SegmentSink | None = None) -> Transcript:
        def emit(payload: TranscriptionProgress) -> None:
            services.notify("transcription.progress", payload)
            if on_fraction is not None:
                on_fraction(payload.progress)

        reporter = ProgressReporter(
            emit, TranscriptionProgress, {"request_id": request_id, "file_id": params.file_id}
        )
        result = await services.transcription.transcribe_file(
            msgspec.structs.replace(params, model=spec.id), reporter, on_segment
        )
        return _transcript(result)

    if form.stream:
        return TranscriptionEventStream(run, headers)
    transcript = await _cancel_on_disconnect(request, run)
    return _render(transcript, response_format or form.response_format, form, headers)


def _transcript(result: TranscriptionResult) -> Transcript:
    return Transcript(
        text=result.text,
        language=result.language,
        duration=result.duration,
        segments=result.segments or [],
        task=result.task,
        language_probability=result.language_probability,
        words=result.words,
        model=result.model,
    )


def _render(
    transcript: Transcript, response_format: ResponseFormat, form: TranscriptionForm, headers: dict[str, str]
) -> Response:
    """OpenAI's bodies: ``json`` adds ``segments`` (start, end, text), ``verbose_json`` names the language
    (``english``; a translation's is English), both say ``fallback`` when a translation transcribed."""
    words = "word" in form.timestamp_granularities
    body = render(transcript, response_format, word_timestamps=words)
    if isinstance(body, str):
        return Response(body, media_type=TEXT_MEDIA_TYPE, headers=headers)
    if response_format == "json":
        body["segments"] = [
            {"start": segment.start, "end": segment.end, "text": segment.text}
            for segment in transcript.segments
        ]
    elif "language" in body:
        body["language"] = "english" if transcript.task == "translate" else language_name(transcript.language)
    if FALLBACK_HEADER in headers:
        body["fallback"] = headers[FALLBACK_HEADER]
    if transcript.task == "transcribe":
        body["usage"] = {"type": "duration", "seconds": math.ceil(transcript.duration)}
    return Response(msgspec.json.encode(body), media_type="application/json", headers=headers)


async def _cancel_on_disconnect(request: Request, run: Callable[[], Awaitable[T]]) -> T:
    """Run ``run()``; a client disconnecting meanwhile cancels it."""
    outcome: list[T] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(cancel_on_disconnect, request.receive, task_group.cancel_scope)
        try:
            outcome.append(await run())
        except Exception as exc:  # re-raised below, outside the task group (not as an ExceptionGroup)
            failure.append(exc)
        finally:
            task_group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    if not outcome:
        raise errors.RequestCancelled("The client disconnected; the transcription was cancelled.")
    return outcome[0]
