"""Model methods: list, get, load, unload, select, register, unregister, import, status."""

from __future__ import annotations

import anyio
import msgspec

from ..catalog.packs import PACKS
from ..config.settings import DeviceName
from ..events import ModelProgress
from ..services.models import EngineStatus, ModelInfo
from .base import RequestContext, rpc_method

_MODEL_ERRORS = ("model_not_found", "model_not_downloaded", "model_load_failed", "out_of_memory")


class ModelRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str | None = None
    """Model id; omitted or ``whisper-1`` means the selected model."""


class LoadParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str | None = None
    """Model id; omitted or ``whisper-1`` means the selected model."""
    device: DeviceName | None = None
    """Run it here for this load instead of on ``device.preferred``; what is unavailable falls back to the
    CPU with a ``device_fallback`` notification saying why."""


class SelectParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str
    load: bool = False
    """Also load it now (otherwise it loads on first use)."""


class RegisterParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    """The id to use for it (letters, digits, ``.``, ``_``, ``-``)."""
    path: str
    """A local CTranslate2 Whisper directory, ONNX model directory or ``.nemo`` file."""
    engine: str | None = None
    display_name: str | None = None


class UnregisterParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str


class ImportParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str | None = None
    """A model directory to copy into the cache (verified by SHA-256 when the model is known)."""
    pack: str | None = None
    """Or a model id whose offline weight pack (a pip package) is installed, e.g. ``whisper-base``."""
    model: str | None = None
    """With ``path``: the id it is; by default it is identified by its ``model.bin`` digest."""


class UnloadResult(msgspec.Struct, frozen=True):
    unloaded: bool
    """False when no model was loaded."""


@rpc_method("models.list", summary="Every known model with availability, readiness and selection.")
async def list_models(ctx: RequestContext) -> list[ModelInfo]:
    return ctx.app.models.list()


@rpc_method("models.get", summary="One model's details and state.", errors=("model_not_found",))
async def get_model(ctx: RequestContext, params: ModelRef) -> ModelInfo:
    return ctx.app.models.info(ctx.app.models.resolve(params.model))


@rpc_method(
    "models.load",
    summary="Load a model (switching from the resident one), optionally on a device of its own; reports "
    "model.progress.",
    errors=(*_MODEL_ERRORS, "disk_full"),
)
async def load_model(ctx: RequestContext, params: LoadParams) -> ModelInfo:
    spec = ctx.app.models.resolve(params.model)
    report = ctx.progress("model.progress", ModelProgress, model_id=spec.id)
    return await ctx.app.models.load(
        spec.id, lambda fraction, message, **extra: report(fraction, message=message, **extra), params.device
    )


@rpc_method("models.unload", summary="End the engine process, returning its memory.")
async def unload_model(ctx: RequestContext) -> UnloadResult:
    return UnloadResult(await ctx.app.models.unload())


@rpc_method(
    "models.select",
    summary="Make a model the default (what whisper-1 means), remembered; a failed select changes nothing.",
    errors=_MODEL_ERRORS,
    state_changing=True,
)
async def select_model(ctx: RequestContext, params: SelectParams) -> ModelInfo:
    spec = ctx.app.models.resolve(params.model)
    report = ctx.progress("model.progress", ModelProgress, model_id=spec.id)
    return await ctx.app.select_model(
        spec.id,
        load=params.load,
        progress=lambda fraction, message, **extra: report(fraction, message=message, **extra),
    )


@rpc_method(
    "models.register",
    summary="Register a local model directory or .nemo file under an id of your choosing (persisted).",
    errors=("invalid_params", "file_not_found"),
    state_changing=True,
)
async def register_model(ctx: RequestContext, params: RegisterParams) -> ModelInfo:
    spec = await anyio.to_thread.run_sync(
        lambda: ctx.app.store.register(
            params.id,
            params.path,
            params.engine,
            display_name=params.display_name,  # type: ignore[arg-type]
        )
    )
    return ctx.app.models.info(spec)


@rpc_method(
    "models.unregister", summary="Forget a registered model (its files are left alone).", state_changing=True
)
async def unregister_model(ctx: RequestContext, params: UnregisterParams) -> ModelInfo:
    spec = await anyio.to_thread.run_sync(ctx.app.store.unregister, params.id)
    return ctx.app.models.info(spec)


@rpc_method(
    "models.import",
    summary="Copy a model directory, or an installed offline weight pack, into the cache (SHA-256 checked).",
    errors=("invalid_params", "file_not_found", "model_not_downloaded", "disk_full"),
    state_changing=True,
)
async def import_model(ctx: RequestContext, params: ImportParams) -> ModelInfo:
    from .. import errors

    if (params.path is None) == (params.pack is None):
        raise errors.InvalidParams(
            f"Give either `path` (a model directory) or `pack` (one of {', '.join(PACKS)}).",
        )
    store = ctx.app.store
    if params.pack is not None:
        await anyio.to_thread.run_sync(store.install_pack, params.pack)
        spec = store.get(params.pack)
    else:
        spec = await anyio.to_thread.run_sync(store.import_dir, params.path, params.model)
    return ctx.app.models.info(spec)


@rpc_method("models.status", summary="The engine process: state, resident model, device, pid.")
async def model_status(ctx: RequestContext) -> EngineStatus:
    return ctx.app.models.status()


METHODS = [
    list_models,
    get_model,
    load_model,
    unload_model,
    select_model,
    register_model,
    unregister_model,
    import_model,
    model_status,
]
