"""OpenAI's transcription/translation form fields → the shared ``TranscribeFileParams``, plus their schema.

Beyond OpenAI's fields, the engine's options may be sent as form fields (``beam_size``, ``vad_filter``,
``max_new_tokens``…, ``priority``, ``vocabulary``; the SDKs pass them with ``extra_body``), and
``temperature_fallback=false`` decodes at exactly ``temperature`` (OpenAI's ``0`` otherwise means "0,
raising it when decoding fails"). OpenAI fields with no meaning here (``chunking_strategy``,
``include[]``, speaker hints) are accepted and ignored; any other field is refused with 400, as OpenAI
does, so typos don't pass silently.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..services.transcription import TranscribeFileParams
from ..transcripts.types import Granularity, Priority, ResponseFormat, Task
from ..transcripts.vocabulary import Vocabulary
from .errors import HttpError
from .uploads import FILE_FIELD, UploadedForm

VOCABULARY_FIELD = "vocabulary"
IGNORED_FIELDS = ("chunking_strategy", "include", "known_speaker_names", "known_speaker_references")
LIST_FIELDS = frozenset({"timestamp_granularities"})
_FALLBACK_STEP = 0.2


class TranscriptionForm(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The form of ``/v1/audio/transcriptions``, ``/v1/audio/translations`` and ``/v1/srt``."""

    model: str | None = None
    """Model id; omitted, ``whisper-1`` or another alias (``model.aliases``) mean the selected model."""
    file_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    """Echoed in ``transcription_progress`` events and the ``x-file-id`` header (default: a fresh id)."""
    language: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]+)?$")] | None = None
    prompt: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    response_format: ResponseFormat = "json"
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0
    timestamp_granularities: list[Granularity] = []
    stream: bool = False
    temperature_fallback: bool = True
    beam_size: Annotated[int, msgspec.Meta(ge=1, le=20)] | None = None
    best_of: Annotated[int, msgspec.Meta(ge=1, le=20)] | None = None
    vad_filter: bool | None = None
    condition_on_previous_text: bool | None = None
    max_new_tokens: Annotated[int, msgspec.Meta(ge=1, le=448)] | None = None
    min_confidence: float | None = None
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=64)] | None = None
    priority: Priority | None = None
    vocabulary: Vocabulary | None = None

    def to_params(self, path: str, task: Task, file_id: str) -> TranscribeFileParams:
        """Always ``verbose_json`` from the service: the shim renders the format asked for."""
        engine = {
            name: getattr(self, name)
            for name in ("beam_size", "best_of", "vad_filter", "condition_on_previous_text", "batch_size")
            if getattr(self, name) is not None
        }
        return TranscribeFileParams(
            path=path,
            model=self.model,
            response_format="verbose_json",
            timestamp_granularities=self.timestamp_granularities or ["segment"],
            file_id=file_id,
            language=self.language.replace("_", "-").split("-")[0].lower() if self.language else None,
            task=task,
            prompt=self.prompt or None,
            temperature=self._temperatures(),
            max_new_tokens=self.max_new_tokens,
            min_confidence=self.min_confidence,
            priority=self.priority,
            vocabulary=self.vocabulary,
            **engine,
        )

    def _temperatures(self) -> float | list[float] | None:
        if not self.temperature_fallback:
            return self.temperature
        if self.temperature == 0.0:
            return None  # the engine's default ladder 0.0, 0.2, … 1.0
        ladder = [self.temperature]
        while ladder[-1] + _FALLBACK_STEP <= 1.0 + 1e-9:
            ladder.append(round(ladder[-1] + _FALLBACK_STEP, 4))
        return ladder


def upload_name(form: UploadedForm) -> str:
    """`` 'speech.wav'`` (with its leading space) for messages; empty when the client sent no name."""
    return f" {form.filename[:200]!r}" if form.filename else ""


def parse_form(form: UploadedForm, *, model_required: bool) -> TranscriptionForm:
    """Validate the text fields (400 for a missing, bad or unknown field, as OpenAI answers)."""
    if form.file_path is None:
        raise HttpError(
            400, "The `file` field (the audio) is missing.", code="invalid_form", param=FILE_FIELD
        )
    if form.size_bytes == 0:
        raise HttpError(
            400,
            f"The uploaded file{upload_name(form)} is empty (0 bytes).",
            code="empty_file",
            param=FILE_FIELD,
        )
    values: dict[str, Any] = {}
    for raw_name, raw_values in form.fields.items():
        name = raw_name.removesuffix("[]")
        if name.split("[", 1)[0] in IGNORED_FIELDS:
            continue
        if name.split("[", 1)[0] == VOCABULARY_FIELD:
            _add_vocabulary_field(values, raw_name, [value for value in raw_values if value != ""])
            continue
        if name not in TranscriptionForm.__struct_fields__:
            raise HttpError(
                400,
                f"Unrecognized request argument supplied: {raw_name}",
                code="unknown_parameter",
                param=name,
            )
        present = [value for value in raw_values if value != ""]
        if name in LIST_FIELDS:
            values[name] = [*values.get(name, []), *present]
        elif present:
            values[name] = present[-1]
    if model_required and "model" not in values:
        raise HttpError(
            400,
            "The `model` field is missing (use whisper-1 for the selected model).",
            code="invalid_form",
            param="model",
        )
    try:
        parsed = msgspec.convert(values, TranscriptionForm, strict=False)
    except msgspec.ValidationError as exc:
        detail = str(exc)
        param = detail.rsplit("$.", 1)[1].split("`", 1)[0].split("[", 1)[0] if "$." in detail else None
        raise HttpError(400, f"Invalid value: {detail}", code="invalid_value", param=param) from None
    if parsed.timestamp_granularities and parsed.response_format != "verbose_json":
        raise HttpError(
            400,
            "timestamp_granularities is only supported with response_format=verbose_json.",
            code="invalid_value",
            param="timestamp_granularities",
        )
    return parsed


def _add_vocabulary_field(values: dict[str, Any], raw_name: str, present: list[str]) -> None:
    """``vocabulary`` as a JSON object (``-F 'vocabulary={"words": ["Zorvath"]}'``), or its fields in the
    bracket notation the OpenAI SDKs give ``extra_body``: ``vocabulary[words][]``,
    ``vocabulary[replacements][gee pee tee four]``, ``vocabulary[remove_fillers]``."""
    vocabulary = values.setdefault(VOCABULARY_FIELD, {})
    if not present or not isinstance(vocabulary, dict):
        return
    if raw_name == VOCABULARY_FIELD:
        try:
            decoded = msgspec.json.decode(present[-1])
        except msgspec.DecodeError:
            raise HttpError(
                400, "vocabulary must be a JSON object.", code="invalid_value", param=VOCABULARY_FIELD
            ) from None
        if not isinstance(decoded, dict):
            raise HttpError(
                400, "vocabulary must be a JSON object.", code="invalid_value", param=VOCABULARY_FIELD
            )
        vocabulary.update(decoded)
        return
    keys = raw_name.removeprefix(VOCABULARY_FIELD).removesuffix("[]").strip("[]").split("][")
    if keys[0] == "words":
        vocabulary["words"] = [*vocabulary.get("words", []), *present]
    elif keys[0] == "replacements" and len(keys) == 2:
        vocabulary.setdefault("replacements", {})[keys[1]] = present[-1]
    else:
        vocabulary[keys[0]] = present[-1]


def form_schema(*, model_required: bool, openai_fields: tuple[str, ...]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` for a multipart transcription form."""
    string = {"type": "string"}
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": "The audio or video file."},
        "model": {**string, "description": "Model id; omitted or whisper-1 (an alias) = the selected model."},
        "file_id": {**string, "minLength": 1, "maxLength": 200, "description": "Echoed in progress events."},
        "language": {**string, "pattern": r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]+)?$", "description": "ISO-639-1"},
        "prompt": {**string, "maxLength": 4096},
        "response_format": {
            "type": "string",
            "enum": ["json", "text", "srt", "verbose_json", "vtt"],
            "default": "json",
        },
        "temperature": {"type": "number", "minimum": 0, "maximum": 1, "default": 0},
        "timestamp_granularities[]": {
            "type": "array",
            "items": {"type": "string", "enum": ["word", "segment"]},
        },
        "stream": {"type": "boolean", "default": False},
    }
    extensions: dict[str, Any] = {
        "temperature_fallback": {"type": "boolean", "default": True},
        "beam_size": {"type": "integer", "minimum": 1, "maximum": 20},
        "best_of": {"type": "integer", "minimum": 1, "maximum": 20},
        "vad_filter": {"type": "boolean"},
        "condition_on_previous_text": {"type": "boolean"},
        "max_new_tokens": {"type": "integer", "minimum": 1, "maximum": 448},
        "min_confidence": {"type": "number"},
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 64},
        "priority": {"type": "string", "enum": ["interactive", "background"]},
        VOCABULARY_FIELD: {
            "type": "string",
            "contentMediaType": "application/json",
            "description": 'A JSON object overriding the vocabulary.* settings: {"words": [...], '
            '"replacements": {...}, "remove_fillers": bool, "spoken_punctuation": bool}; the SDKs\' '
            "extra_body bracket fields (vocabulary[words][]) work too.",
        },
    }
    schema = {
        "type": "object",
        "required": ["file", "model"] if model_required else ["file"],
        "properties": {
            **{name: properties[name] for name in ("file", "model", "file_id", *openai_fields)},
            **extensions,
        },
        "additionalProperties": False,
    }
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


TRANSCRIBE_FIELDS = (
    "language",
    "prompt",
    "response_format",
    "temperature",
    "timestamp_granularities[]",
    "stream",
)
TRANSLATE_FIELDS = ("language", "prompt", "response_format", "temperature")
SRT_FIELDS = ("language", "prompt", "temperature")
