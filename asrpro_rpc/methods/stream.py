"""``stream.start|push|stop|cancel``: live transcription with ``stream.partial`` / ``stream.final``."""

from __future__ import annotations

from ..services.streaming import (
    StreamCancelResult,
    StreamIdParams,
    StreamPushParams,
    StreamPushResult,
    StreamStartParams,
    StreamStartResult,
)
from ..streaming.session import StreamSummary
from .base import RequestContext, rpc_method

_MODEL_ERRORS = ("model_not_found", "model_not_downloaded", "model_load_failed", "engine_crashed")


@rpc_method(
    "stream.start",
    summary="Open a live transcription stream (push or microphone); emits stream.partial and stream.final.",
    errors=("busy", "invalid_params", "device_unavailable", "permission_denied", *_MODEL_ERRORS),
)
async def stream_start(ctx: RequestContext, params: StreamStartParams) -> StreamStartResult:
    return await ctx.app.streaming.start(params)


@rpc_method(
    "stream.push",
    summary="Queue audio (base64 PCM16 or float32, 16 kHz mono, any length) on a stream; returns at once.",
    errors=("not_found", "busy", "invalid_params"),
)
async def stream_push(ctx: RequestContext, params: StreamPushParams) -> StreamPushResult:
    return ctx.app.streaming.push(params)


@rpc_method(
    "stream.stop",
    summary="Finish a stream: decode what was pushed, send the last stream.final, return every segment.",
    errors=("not_found", "engine_crashed", "device_unavailable"),
)
async def stream_stop(ctx: RequestContext, params: StreamIdParams) -> StreamSummary:
    return await ctx.app.streaming.stop(params.stream_id)


@rpc_method(
    "stream.cancel",
    summary="Drop a stream at once (no final decode) and release its hold on the model.",
    errors=("not_found",),
)
async def stream_cancel(ctx: RequestContext, params: StreamIdParams) -> StreamCancelResult:
    return await ctx.app.streaming.cancel(params.stream_id)


METHODS = [stream_start, stream_push, stream_stop, stream_cancel]
