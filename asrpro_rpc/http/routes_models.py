"""``/v1/models``, ``/v1/models/{id}``, ``/v1/settings/model`` and ``/health``."""

from __future__ import annotations

import os

import msgspec
import psutil
from fastapi import APIRouter, Request
from starlette.responses import Response

from .. import __version__, errors
from ..events import ModelProgress, ProgressReporter
from ..services.models import ModelInfo
from .errors import HttpError
from .schemas import (
    Health,
    Memory,
    ModelList,
    ModelObject,
    SelectModelRequest,
    SelectModelResult,
    error_responses,
    json_content,
)
from .state import ShimState

router = APIRouter()
_select_decoder = msgspec.json.Decoder(SelectModelRequest)


def _json(body: msgspec.Struct, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(body), status_code, headers, media_type="application/json")


def _state(request: Request) -> ShimState:
    shim: ShimState = request.app.state.shim
    return shim


def _model_object(state: ShimState, info: ModelInfo, alias: str | None = None) -> ModelObject:
    created = 0
    spec = state.services.store.get(info.id)
    if info.available:
        try:
            created = int(os.stat(state.services.store.resolve_path(spec)).st_mtime)
        except Exception:  # noqa: BLE001 - ``created`` is informative only
            created = 0
    return ModelObject(
        id=alias or info.id,
        object="model",
        created=created,
        owned_by="user" if info.user else "asrpro",
        ready=info.ready,
        available=info.available,
        selected=info.selected,
        display_name=info.display_name,
        engine=info.engine,
        languages=info.languages,
        translate=info.translate,
        size_bytes=info.size_bytes,
        alias_of=info.id if alias else None,
    )


@router.get(
    "/v1/models",
    summary="Every model in OpenAI's list shape, those on this machine first, plus the aliases "
    "(whisper-1, gpt-4o-transcribe…: model.aliases); ?available=true lists only what can run now.",
    responses={
        200: {"description": "The models.", "content": json_content("ModelList")},
        **error_responses(400, 401),
    },
)
async def list_models(request: Request, available: bool = False) -> Response:
    state = _state(request)
    models = state.services.models
    infos = sorted(models.list(), key=lambda info: not info.available)  # stable: catalogue order within
    objects = [_model_object(state, info) for info in infos if info.available or not available]
    for alias in sorted(models.options.aliases):
        try:
            target = models.info(models.resolve(alias))
        except errors.AsrproError:  # an alias naming a model that is gone: not listed
            continue
        if target.available or not available:
            objects.append(_model_object(state, target, alias))
    return _json(ModelList(data=objects))


@router.get(
    "/v1/models/{model_id}",
    summary="One model (OpenAI's retrieve model).",
    responses={
        200: {"description": "The model.", "content": json_content("ModelObject")},
        **error_responses(401, 404),
    },
)
async def get_model(request: Request, model_id: str) -> Response:
    state = _state(request)
    models = state.services.models
    info = models.info(models.resolve(model_id))
    return _json(_model_object(state, info, model_id if model_id in models.options.aliases else None))


@router.post(
    "/v1/settings/model",
    summary="Select the default model (remembered), loading it first; a failed select changes nothing.",
    openapi_extra={"requestBody": {"required": True, "content": json_content("SelectModelRequest")}},
    responses={
        200: {"description": "Selected.", "content": json_content("SelectModelResult")},
        **error_responses(400, 401, 404, 415, 500, 502, 503),
    },
)
async def select_model(request: Request) -> Response:
    state = _state(request)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HttpError(415, 'Send a JSON body: {"model_id": "…"}.', code="unsupported_content_type")
    try:
        body = _select_decoder.decode(await request.body())
    except msgspec.ValidationError as exc:
        raise HttpError(400, f"Invalid request: {exc}", code="invalid_form", param="model_id") from None
    except msgspec.DecodeError as exc:
        raise HttpError(400, f"The body is not valid JSON: {exc}", code="invalid_json") from None
    services = state.services
    spec = services.models.resolve(body.model_id)
    report = ProgressReporter(
        lambda payload: services.notify("model.progress", payload), ModelProgress, {"model_id": spec.id}
    )
    info = await services.select_model(
        spec.id,
        load=body.load,
        progress=lambda fraction, message, **extra: report(fraction, message=message, **extra),
    )
    return _json(SelectModelResult(status="success", model=info.id, ready=info.ready))


@router.api_route(
    "/health",
    methods=["GET", "HEAD"],
    summary="Status, the current model and its device, uptime and memory (no token needed; always 200).",
    responses={200: {"description": "Answering; `status` says how.", "content": json_content("Health")}},
)
async def health(request: Request) -> Response:
    state = _state(request)
    models = state.services.models
    engine = models.status()
    spec = models.resolve(engine.model_id if engine.state != "unloaded" else None)
    system = state.services.system.health()
    status = (
        "shutting_down"
        if state.draining
        else "loading"
        if engine.state == "loading"
        else "degraded"
        if system.status == "degraded"
        else "healthy"
    )
    device = engine.device if engine.state == "loaded" and engine.device else await state.planned_device(spec)
    body = Health(
        status=status,
        current_model=spec.id,
        ready=engine.state == "loaded",
        selected_model=models.selected_id,
        device=device,
        compute_type=engine.compute_type,
        warnings=system.warnings,
        uptime_s=round(state.services.uptime_s, 3),
        memory=Memory(
            rss_bytes=psutil.Process().memory_info().rss, engine_rss_bytes=models.engine_rss_bytes()
        ),
        in_flight_requests=max(0, state.in_flight - 1),
        version=__version__,
    )
    return _json(body)
