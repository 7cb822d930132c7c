"""Error taxonomy: typed exceptions that services raise and fronts map to their wire.

Every error has a JSON-RPC ``code`` and a stable machine-readable ``kind`` (sent as ``data.kind``).
Services raise these; ``error_for`` maps any exception to one of them, for every front (stdio, HTTP).
Messages and ``data`` are clipped on construction, so no input echoed into an error can make it large.
"""

from __future__ import annotations

import errno
import logging
from typing import Any, ClassVar

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4_000
"""An error message longer than this is cut in the middle: echoed input (a path, an id) must not make a
reply, the log or ``system.health`` large."""
MAX_DATA_CHARS = 2_000
"""The same for each string in ``data`` (top level and one level into lists and objects; such lists keep
their first 100 items)."""
MAX_SHOWN_CHARS = 120
"""How much of an echoed value ``shown`` keeps."""


def clip(text: str, limit: int) -> str:
    """``text`` itself, or its head and tail around a note of how much was left out."""
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 2)
    return f"{text[: keep // 2]}…[{len(text) - keep:,} characters left out]…{text[-(keep // 2) :]}"


def shown(value: object) -> str:
    """``repr(value)`` for a message, cut to ``MAX_SHOWN_CHARS``."""
    return clip(repr(value), MAX_SHOWN_CHARS)


def _clip_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return clip(value, MAX_DATA_CHARS)
    if depth < 2 and isinstance(value, list):
        return [_clip_value(item, depth + 1) for item in value[:100]]
    if depth < 2 and isinstance(value, dict):
        return {key: _clip_value(item, depth + 1) for key, item in value.items()}
    return value


class AsrproError(Exception):
    """Base of every error that reaches a client. ``message`` is meant for a person."""

    code: ClassVar[int] = -32603
    kind: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **data: Any) -> None:
        message = clip(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.data = {key: _clip_value(value) for key, value in data.items()}

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
    if isinstance(exc, OSError):
        mapped = _os_error(exc)
        if mapped is not None:
            return mapped
    log.error("unexpected error", exc_info=exc)
    return InternalError(f"Internal error ({type(exc).__name__}: {exc}); details are in the sidecar log.")


def _os_error(exc: OSError) -> AsrproError | None:
    """The wire error for an OS refusal that says something about the request or the machine, if any."""
    path = str(exc.filename) if exc.filename is not None else None
    where = f" ({clip(path, MAX_SHOWN_CHARS)})" if path else ""
    if isinstance(exc, FileNotFoundError):
        return FileNotFound(f"File not found: {clip(path or str(exc), MAX_SHOWN_CHARS)}")
    if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
        why = "the file system is read-only" if exc.errno == errno.EROFS else "permission denied"
        return PermissionDenied(f"The OS refused access{where}: {why}.", path=path)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return DiskFull(
            f"Not enough disk space{where}: {exc.strerror}. Free some space and try again.",
            resource="disk",
            path=path,
        )
    if exc.errno == errno.ENAMETOOLONG:
        return InvalidParams(
            f"Path too long ({len(path or '')} characters): the OS refuses names this long.",
            reason="name_too_long",
        )
    return None
