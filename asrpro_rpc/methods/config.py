"""Config methods: config.get, config.set, config.reset, config.path (thin fronts over ConfigService).

``config.changed`` is sent by one ConfigService subscriber (``config.service.announce_changes``, wired by
the services container) for every change, made here, through the HTTP shim or by another program editing
the file, so no change is announced twice.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from ..config.settings import (
    AudioSettings,
    Category,
    DeviceSettings,
    HotkeySettings,
    ModelSettings,
    ServerSettings,
    Settings,
    UiSettings,
    VocabularySettings,
)
from .base import RequestContext, rpc_method


class ConfigGetParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    category: Category | None = None
    """One category; all of them when omitted."""


class SettingsView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Settings by category; ``config.get`` with a category fills only that one."""

    device: DeviceSettings | UnsetType = UNSET
    server: ServerSettings | UnsetType = UNSET
    ui: UiSettings | UnsetType = UNSET
    audio: AudioSettings | UnsetType = UNSET
    model: ModelSettings | UnsetType = UNSET
    hotkey: HotkeySettings | UnsetType = UNSET
    vocabulary: VocabularySettings | UnsetType = UNSET


class ConfigSetParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    values: dict[str, dict[str, Any]]
    """``{category: {key: value}}``, e.g. ``{"model": {"auto_unload_timeout_s": 60}}``; unnamed keys keep
    their values. Validated all or nothing: an ``invalid_config`` error lists every bad ``path``."""


class ConfigResetParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    category: Category | None = None
    """The category to restore to defaults; every category when omitted."""


class ConfigPathResult(msgspec.Struct, frozen=True):
    path: str
    """The settings file (JSON)."""
    directory: str


@rpc_method("config.get", summary="Current settings: every category, or the one named.")
async def config_get(ctx: RequestContext, params: ConfigGetParams) -> SettingsView:
    settings: Settings = ctx.app.config.settings
    if params.category is None:
        return SettingsView(**msgspec.structs.asdict(settings))
    return SettingsView(**{params.category: getattr(settings, params.category)})


@rpc_method(
    "config.set",
    summary="Change some settings (validated all or nothing, saved atomically); returns every setting.",
    errors=("invalid_config", "model_not_found", "busy"),
    state_changing=True,
)
async def config_set(ctx: RequestContext, params: ConfigSetParams) -> Settings:
    selected = params.values.get("model", {}).get("selected_id")
    if isinstance(selected, str):
        ctx.app.store.get(selected)  # an unknown model is never saved as the selection (model_not_found)
    return await ctx.app.config.aset(params.values)


@rpc_method(
    "config.reset",
    summary="Restore a category (or all settings) to defaults; returns every setting.",
    errors=("busy",),
    state_changing=True,
)
async def config_reset(ctx: RequestContext, params: ConfigResetParams) -> Settings:
    return await ctx.app.config.areset(params.category)


@rpc_method("config.path", summary="Where the settings file is.")
async def config_path(ctx: RequestContext) -> ConfigPathResult:
    path = ctx.app.config.path
    return ConfigPathResult(path=str(path), directory=str(path.parent))


METHODS = [config_get, config_set, config_reset, config_path]
