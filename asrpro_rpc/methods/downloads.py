"""Model download methods: models.download, models.check_updates, models.delete."""

from __future__ import annotations

import anyio
import msgspec

from ..events import ModelProgress
from ..services.downloads import DeleteResult, UpdateInfo
from ..services.models import ModelInfo
from .base import RequestContext, rpc_method


class DownloadParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str
    """A built-in model id (``models.list``)."""
    update: bool = False
    """Fetch the source's latest revision even if the model is present (the old files stay in use until
    the new ones have verified)."""


class CheckUpdatesParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str | None = None
    """One model; every downloaded built-in model when omitted."""


class DeleteParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str


@rpc_method(
    "models.download",
    summary="Download a model from its hub repo (or $ASRPRO_HUB_URL) with model.progress; resumable.",
    errors=("model_not_found", "download_failed", "disk_full", "invalid_params", "cancelled"),
)
async def download(ctx: RequestContext, params: DownloadParams) -> ModelInfo:
    app = ctx.app
    spec = app.models.resolve(params.model)
    await anyio.to_thread.run_sync(app.system.check_disk_for_download, spec)
    report = ctx.progress("model.progress", ModelProgress, model_id=spec.id)
    await app.downloads.download(spec, report, update=params.update)
    return app.models.info(spec)


@rpc_method(
    "models.check_updates",
    summary="Compare downloaded models' revisions with their source's (needs the network).",
    errors=("model_not_found", "download_failed"),
)
async def check_updates(ctx: RequestContext, params: CheckUpdatesParams) -> list[UpdateInfo]:
    models = ctx.app.models
    specs = [models.resolve(params.model)] if params.model else models.store.all_specs()
    return await ctx.app.downloads.check_updates(specs)


@rpc_method(
    "models.delete",
    summary="Delete a downloaded model's files (unloading it first if it is resident) to free disk.",
    errors=("model_not_found", "invalid_params"),
    state_changing=True,
)
async def delete(ctx: RequestContext, params: DeleteParams) -> DeleteResult:
    models = ctx.app.models
    spec = models.resolve(params.model)
    if models.status().model_id == spec.id:
        await models.unload("deleted")
    return await anyio.to_thread.run_sync(ctx.app.downloads.delete, spec)


METHODS = [download, check_updates, delete]
