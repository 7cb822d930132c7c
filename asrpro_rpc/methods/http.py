"""``http.start`` / ``http.stop`` / ``http.status``: the optional OpenAI-compatible HTTP shim."""

from __future__ import annotations

from typing import Annotated

import msgspec

from .. import errors
from ..http.controller import STOP_GRACE_S, HttpController, HttpStartRequest, HttpStatus
from .base import RequestContext, rpc_method


def _shim(ctx: RequestContext) -> HttpController:
    if ctx.http is None:
        raise errors.InternalError("This session runs without the HTTP shim controller.")
    return ctx.http


class HttpStopParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    grace_s: Annotated[float, msgspec.Meta(ge=0, le=600)] = STOP_GRACE_S
    """In-flight requests get this long to finish (new ones get 503 meanwhile)."""


@rpc_method(
    "http.start",
    summary="Start the OpenAI-compatible HTTP server (127.0.0.1 by default); idempotent per address.",
    errors=("address_in_use", "invalid_params", "busy", "engine_unavailable"),
)
async def http_start(ctx: RequestContext, params: HttpStartRequest) -> HttpStatus:
    await _shim(ctx).launched()
    return await _shim(ctx).start(params)


@rpc_method("http.stop", summary="Stop the HTTP server gracefully (in-flight requests finish, bounded).")
async def http_stop(ctx: RequestContext, params: HttpStopParams) -> HttpStatus:
    await _shim(ctx).launched()
    return await _shim(ctx).stop(params.grace_s)


@rpc_method("http.status", summary="Whether the HTTP server runs, its URL, and request counts.")
async def http_status(ctx: RequestContext) -> HttpStatus:
    await _shim(ctx).launched()
    return _shim(ctx).status()


METHODS = [http_start, http_stop, http_status]
