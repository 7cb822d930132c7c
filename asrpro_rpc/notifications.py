"""Server → host notification payloads (documented in the OpenRPC document's ``x-notifications``)."""

from __future__ import annotations

from typing import Literal

import msgspec

from .protocol import RequestId


class ModelProgress(msgspec.Struct, frozen=True):
    model_id: str
    progress: float
    """0..1"""
    message: str
    request_id: RequestId = None


class TranscriptionProgress(msgspec.Struct, frozen=True):
    request_id: RequestId
    progress: float
    """0..1; reaches 1.0 exactly once, at the end."""
    stage: Literal["decoding", "loading_model", "transcribing", "done"]
    file_id: str | None = None


class NotificationMessage(msgspec.Struct, frozen=True):
    level: Literal["info", "warning", "error"]
    message: str
    kind: str | None = None
    """A stable machine-readable tag (e.g. ``model_unloaded``, ``device_fallback``)."""


NOTIFICATIONS: list[tuple[str, type[msgspec.Struct], str]] = [
    ("model.progress", ModelProgress, "Progress of a model load or download."),
    ("transcription.progress", TranscriptionProgress, "Progress of a transcription request."),
    ("notification", NotificationMessage, "Something the user may want to know (fallbacks, auto-unload)."),
]


class ConfigChanged(msgspec.Struct, frozen=True):
    keys: list[str]
    """Dotted paths of the changed settings (``model.auto_unload_timeout_s``); config.get has the values."""
