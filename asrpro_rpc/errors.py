"""Error taxonomy: typed exceptions that services raise and fronts map to their wire.

Every error has a JSON-RPC ``code`` and a stable machine-readable ``kind`` (sent as ``data.kind``).
Services raise these; ``error_for`` maps any exception to one of them, for every front (stdio, HTTP).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

log = logging.getLogger(__name__)


class AsrproError(Exception):
    """Base of every error that reaches a client. ``message`` is meant for a person."""

    code: ClassVar[int] = -32603
    kind: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def wire_data(self) -> dict[str, Any]:
        """The ``data`` member of the JSON-RPC error object."""
        return {"kind": self.kind, **self.data}


# --- JSON-RPC 2.0 standard errors -------------------------------------------------------------
class ParseError(AsrproError):
    code = -32700
    kind = "parse_error"


class InvalidRequest(AsrproError):
    code = -32600
    kind = "invalid_request"


class MethodNotFound(AsrproError):
    code = -32601
    kind = "method_not_found"


class InvalidParams(AsrproError):
    code = -32602
    kind = "invalid_params"


class InternalError(AsrproError):
    code = -32603
    kind = "internal_error"


class RequestCancelled(AsrproError):
    code = -32800
    kind = "cancelled"


# --- application errors (-32000..-32099) -------------------------------------------------------
class ShuttingDown(AsrproError):
    code = -32000
    kind = "shutting_down"


class ModelNotFound(AsrproError):
    code = -32001
    kind = "model_not_found"


class ModelNotDownloaded(AsrproError):
    code = -32003
    kind = "model_not_downloaded"


class ModelLoadFailed(AsrproError):
    code = -32004
    kind = "model_load_failed"


class AudioUnreadable(AsrproError):
    code = -32005
    kind = "audio_unreadable"


class FileNotFound(AsrproError):
    code = -32006
    kind = "file_not_found"


class DeviceUnavailable(AsrproError):
    code = -32007
    kind = "device_unavailable"


class PermissionDenied(AsrproError):
    code = -32008
    kind = "permission_denied"


class OutOfMemory(AsrproError):
    code = -32009
    kind = "out_of_memory"


class InvalidConfig(AsrproError):
    code = -32010
    kind = "invalid_config"


class Busy(AsrproError):
    code = -32011
    kind = "busy"


class EngineCrashed(AsrproError):
    code = -32012
    kind = "engine_crashed"


class EngineUnavailable(AsrproError):
    """The engine's optional dependencies are not installed (e.g. the ``whisper`` extra)."""

    code = -32013
    kind = "engine_unavailable"


class NotFound(AsrproError):
    """An id (stream, recording, …) that does not exist or has ended."""

    code = -32014
    kind = "not_found"


class DownloadFailed(AsrproError):
    """A model download failed; ``data.reason``: offline, not_found, http or integrity."""

    code = -32015
    kind = "download_failed"


class AddressInUse(AsrproError):
    """The HTTP shim's port is taken; ``data.next_free_port`` names a free one when found."""

    code = -32016
    kind = "address_in_use"


class DiskFull(AsrproError):
    """Not enough free disk space: ``data.resource`` ("disk"), ``path``, ``needed_bytes``, ``free_bytes``."""

    code = -32017
    kind = "disk_full"


ERROR_TYPES: tuple[type[AsrproError], ...] = (
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    InternalError,
    RequestCancelled,
    ShuttingDown,
    ModelNotFound,
    ModelNotDownloaded,
    ModelLoadFailed,
    AudioUnreadable,
    FileNotFound,
    DeviceUnavailable,
    PermissionDenied,
    OutOfMemory,
    InvalidConfig,
    Busy,
    EngineCrashed,
    EngineUnavailable,
    NotFound,
    DownloadFailed,
    AddressInUse,
    DiskFull,
)
"""Every wire error, in code order; documented in the README and the OpenRPC document."""

BY_KIND: dict[str, type[AsrproError]] = {t.kind: t for t in ERROR_TYPES}
"""Rebuilds an error from its ``kind`` (used across the engine host pipe)."""


def error_for(exc: BaseException) -> AsrproError:
    """Map any exception to a wire error; unexpected ones are logged with their traceback."""
    if isinstance(exc, AsrproError):
        return exc
    if isinstance(exc, MemoryError):
        return OutOfMemory("Out of memory. Close other applications or use a smaller model.")
    if isinstance(exc, FileNotFoundError):
        return FileNotFound(f"File not found: {exc.filename or exc}")
    if isinstance(exc, PermissionError):
        return PermissionDenied(f"Permission denied: {exc.filename or exc}")
    log.error("unexpected error", exc_info=exc)
    return InternalError(f"Internal error ({type(exc).__name__}: {exc}); details are in the sidecar log.")
