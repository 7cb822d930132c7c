"""Where the sidecar keeps things: config, model cache, recordings (platformdirs, overridable by env)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "asrpro"


def config_dir() -> Path:
    """Settings directory: ``$ASRPRO_CONFIG_DIR`` or the platform config dir."""
    override = os.environ.get("ASRPRO_CONFIG_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False, roaming=True))


def cache_dir() -> Path:
    """Cache root: ``$ASRPRO_CACHE_DIR`` or the platform cache dir."""
    override = os.environ.get("ASRPRO_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    """Model cache: ``$ASRPRO_MODELS_DIR`` or ``<cache>/models``; one sub-directory per model id."""
    override = os.environ.get("ASRPRO_MODELS_DIR")
    return Path(override) if override else cache_dir() / "models"


def recordings_dir() -> Path:
    """Where auto-named recordings go: ``$ASRPRO_RECORDINGS_DIR`` or ``<user data dir>/recordings``."""
    override = os.environ.get("ASRPRO_RECORDINGS_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "recordings"


def recording_journal_dir(recordings_root: Path | None = None) -> Path:
    """Where running recordings are listed, so the next start repairs those a crash interrupted."""
    return (recordings_root or recordings_dir()) / ".in-progress"
