"""Response bodies as msgspec Structs, and their OpenAPI description (one source for both)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

REF = "#/components/schemas/{name}"


class ErrorObject(msgspec.Struct, frozen=True):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(msgspec.Struct, frozen=True):
    error: ErrorObject


class ModelObject(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """OpenAI's model object plus this server's state of the model."""

    id: str
    object: Literal["model"]
    created: int
    """Unix time the model's files were written (0 when they are not on this machine)."""
    owned_by: str
    ready: bool
    """Loaded and resident now."""
    available: bool
    """Its files are on this machine."""
    selected: bool
    display_name: str
    engine: str
    languages: list[str]
    translate: bool
    size_bytes: int
    alias_of: str | None = None
    """``whisper-1`` names the selected model."""


class ModelList(msgspec.Struct, frozen=True):
    data: list[ModelObject]
    object: Literal["list"] = "list"


class SelectModelRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model_id: str
    load: bool = True
    """Also load it now (model_progress events on /v1/events), else it loads on first use."""


class SelectModelResult(msgspec.Struct, frozen=True):
    status: Literal["success"]
    model: str
    ready: bool


class Memory(msgspec.Struct, frozen=True):
    rss_bytes: int
    """This process."""
    engine_rss_bytes: int
    """The engine process holding the model (0 when none is loaded)."""


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """Always 200 while the server answers: ``status`` says what is happening."""

    status: Literal["healthy", "loading", "degraded", "shutting_down"]
    """``loading``: a model is loading; ``degraded``: memory or disk is low (``warnings``);
    ``shutting_down``: new requests are refused."""
    current_model: str
    """The model requests without one run on: the loaded (or loading) model, else the selected one."""
    ready: bool
    """``current_model`` is loaded and resident."""
    selected_model: str
    device: str
    """Where ``current_model`` runs (or will run once loaded): ``cpu``, ``cuda`` or ``mps``."""
    compute_type: str | None
    """Known once loaded."""
    warnings: list[str]
    uptime_s: float
    memory: Memory
    in_flight_requests: int
    version: str


def components() -> dict[str, Any]:
    """JSON Schemas of every response Struct, for ``components.schemas``."""
    _, schemas = msgspec.json.schema_components(
        [ErrorResponse, ModelList, ModelObject, SelectModelRequest, SelectModelResult, Health],
        ref_template=REF,
    )
    return schemas


def json_content(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(name=name)}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"description": "Error", "content": json_content("ErrorResponse")} for status in statuses}


_TRANSCRIPTION = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string"}},
    "description": "json: {text, usage}; verbose_json adds task, language, duration, segments (and words).",
}
_COMMON_ERRORS = (400, 401, 403, 404, 413, 415, 421, 500, 501, 502, 503)
AUDIO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The transcript in the requested response_format (or an SSE stream with stream=true).",
        "content": {
            "application/json": {"schema": _TRANSCRIPTION},
            "text/plain": {"schema": {"type": "string"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    },
    **error_responses(*_COMMON_ERRORS),
}
SRT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "SubRip subtitles.", "content": {"text/plain": {"schema": {"type": "string"}}}},
    **error_responses(*_COMMON_ERRORS),
}
