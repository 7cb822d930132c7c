"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``, mapped in one table.

Service errors (:mod:`asrpro_rpc.errors`) map by ``kind`` to an HTTP status, an OpenAI error ``type`` and
whether the OpenAI SDKs should retry (sent as ``x-should-retry``, which they honour). ``code`` is the
kind. Errors only HTTP has (auth, size, media type, form) are :class:`HttpError`.
"""

from __future__ import annotations

import logging
import re
import tempfile
from typing import Any, NamedTuple

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import errors

log = logging.getLogger(__name__)

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"


class Mapping(NamedTuple):
    status: int
    type: str
    retry: bool | None = None
    """``x-should-retry``; None leaves the SDK's default (retry 408/409/429/5xx)."""


BY_KIND: dict[str, Mapping] = {
    "parse_error": Mapping(400, INVALID_REQUEST),
    "invalid_request": Mapping(400, INVALID_REQUEST),
    "invalid_params": Mapping(400, INVALID_REQUEST),
    "invalid_config": Mapping(400, INVALID_REQUEST),
    "file_not_found": Mapping(400, INVALID_REQUEST),
    "method_not_found": Mapping(404, INVALID_REQUEST),
    "not_found": Mapping(404, INVALID_REQUEST),
    "model_not_found": Mapping(404, INVALID_REQUEST),
    "model_not_downloaded": Mapping(404, INVALID_REQUEST),
    "audio_unreadable": Mapping(415, INVALID_REQUEST),
    "cancelled": Mapping(499, INVALID_REQUEST, retry=False),
    "internal_error": Mapping(500, SERVER_ERROR, retry=False),
    "permission_denied": Mapping(500, SERVER_ERROR, retry=False),
    "model_load_failed": Mapping(500, SERVER_ERROR, retry=False),
    "engine_crashed": Mapping(500, SERVER_ERROR, retry=True),
    "engine_unavailable": Mapping(501, SERVER_ERROR, retry=False),
    "address_in_use": Mapping(500, SERVER_ERROR, retry=False),
    "download_failed": Mapping(502, SERVER_ERROR, retry=False),
    "busy": Mapping(503, SERVER_ERROR, retry=True),
    "device_unavailable": Mapping(503, SERVER_ERROR, retry=False),
    "out_of_memory": Mapping(503, SERVER_ERROR, retry=False),
    "shutting_down": Mapping(503, SERVER_ERROR, retry=False),
    "disk_full": Mapping(507, SERVER_ERROR, retry=False),
}
"""Every error kind a service can raise → HTTP. Unknown kinds answer 500 (tests check the table is whole)."""

_FALLBACK = Mapping(500, SERVER_ERROR, retry=False)


class HttpError(Exception):
    """An error only the HTTP front has: auth, upload size, media type, form fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        type: str = INVALID_REQUEST,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type
        self.headers = headers or {}


def error_body(message: str, type: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def http_error_of(exc: BaseException) -> HttpError:
    """Any exception as an :class:`HttpError` (service errors through ``BY_KIND``)."""
    if isinstance(exc, HttpError):
        return exc
    error = errors.error_for(exc)
    mapping = BY_KIND.get(error.kind, _FALLBACK)
    headers = {} if mapping.retry is None else {"x-should-retry": "true" if mapping.retry else "false"}
    if mapping.retry:
        headers["retry-after"] = "1"
    param = error.data.get("param") or error.data.get("field")
    return HttpError(
        mapping.status,
        _without_scratch_paths(error.message),
        code=error.kind,
        param=param if isinstance(param, str) else None,
        type=mapping.type,
        headers=headers,
    )


def _without_scratch_paths(message: str) -> str:
    """``message`` with paths in the sidecar's private temp dir (uploads) named as what they are."""
    return re.sub(re.escape(tempfile.gettempdir()) + r"/[^\s:,;'\"]*", "the uploaded file", message)


def error_response(exc: BaseException) -> JSONResponse:
    error = http_error_of(exc)
    if error.status >= 500:
        log.warning("http request failed", extra={"status": error.status, "code": error.code})
    return JSONResponse(
        error_body(error.message, error.type, error.param, error.code),
        status_code=error.status,
        headers=error.headers,
    )


def install_handlers(app: FastAPI) -> None:
    """Answer every error in OpenAI's shape: ours, services', FastAPI's validation and routing errors."""

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = exc.errors()
        first = problems[0] if problems else {}
        location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
        message = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in problems
        )
        return error_response(
            HttpError(
                400, f"Invalid request: {message}", code="invalid_form", param=".".join(location) or None
            )
        )

    async def on_starlette(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return error_response(HttpError(exc.status_code, message, code=code, headers=dict(exc.headers or {})))

    app.add_exception_handler(HttpError, on_error)
    app.add_exception_handler(errors.AsrproError, on_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_starlette)
    app.add_exception_handler(Exception, on_error)
