"""Lifecycle methods: initialize, ping, shutdown, exit, rpc.discover."""

from __future__ import annotations

import logging
import os
import time
from typing import Annotated, Any

import anyio
import msgspec

from .. import PROTOCOL_VERSION, __version__
from ..system.capabilities import Capabilities, probe_capabilities
from .base import RequestContext, rpc_method

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 30.0
"""How long ``shutdown`` lets requests already received finish, unless ``grace_s`` says otherwise."""


class ClientInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    version: str | None = None


class InitializeParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    client: ClientInfo | None = None
    """Who is talking (logged, for support)."""


class InitializeResult(msgspec.Struct, frozen=True):
    name: str
    version: str
    protocol_version: str
    pid: int
    capabilities: Capabilities
    methods: list[str]


class PingParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    delay_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 0.0
    """Answer after this many seconds (cancellable): handy to test timeouts and cancellation."""


class PingResult(msgspec.Struct, frozen=True):
    pong: bool
    time_s: float
    """Server wall-clock time (Unix seconds)."""


class ShutdownParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    grace_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = SHUTDOWN_GRACE_S
    """How long requests already received may still run; then the cancellable ones answer -32800.
    State-changing requests (``config.set``, ``models.select``, ...) always finish."""


@rpc_method("initialize", summary="Handshake: server name, version, protocol version and capabilities.")
async def initialize(ctx: RequestContext, params: InitializeParams) -> InitializeResult:
    if params.client is not None:
        log.info(
            "client connected", extra={"client": params.client.name, "client_version": params.client.version}
        )
    return InitializeResult(
        name="asrpro-rpc",
        version=__version__,
        protocol_version=PROTOCOL_VERSION,
        pid=os.getpid(),
        capabilities=probe_capabilities(),
        methods=sorted(ctx.session.methods),
    )


@rpc_method("ping", summary="Liveness check; optionally waits delay_s seconds before answering.")
async def ping(ctx: RequestContext, params: PingParams) -> PingResult:
    if params.delay_s:
        await anyio.sleep(params.delay_s)
    return PingResult(pong=True, time_s=time.time())


@rpc_method(
    "shutdown",
    summary="Stop accepting work, let received requests finish within grace_s (cancel what still runs then, "
    "never a state-changing request), release models; answers null. Then send exit.",
)
async def shutdown(ctx: RequestContext, params: ShutdownParams) -> None:
    await ctx.session.shut_down(params.grace_s)
    return None


@rpc_method("exit", summary="Notification: end the process (exit code 0 after shutdown, 1 otherwise).")
async def exit_(ctx: RequestContext) -> None:
    ctx.session.request_exit(0 if ctx.session.shutdown_requested else 1)
    return None


@rpc_method("rpc.discover", summary="The OpenRPC document describing every method, error and notification.")
async def discover(ctx: RequestContext) -> dict[str, Any]:
    from .openrpc import build_document

    return build_document(list(ctx.session.methods.values()))


METHODS = [initialize, ping, shutdown, exit_, discover]
