"""Method declarations and the per-request context handed to every handler.

A handler is ``async def handler(ctx: RequestContext, params: SomeParams) -> SomeResult`` (``params``
optional). ``@rpc_method`` reads the annotations once, so the dispatcher can decode params into the frozen
Struct and the OpenRPC document can describe both sides without a second source of truth.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ..events import Progress, ProgressReporter, RequestId

if TYPE_CHECKING:
    from ..http.controller import HttpController
    from ..services.container import App

Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class RpcMethod:
    """One entry of the method table."""

    name: str
    handler: Handler
    summary: str
    params_type: type[msgspec.Struct] | None
    result_type: Any
    errors: tuple[str, ...] = ()
    decoder: msgspec.json.Decoder[Any] | None = field(default=None, compare=False)
    state_changing: bool = False
    """Runs to completion once received: neither shutdown nor ``$/cancelRequest`` cancels it halfway."""


def rpc_method(
    name: str, *, summary: str, errors: tuple[str, ...] = (), state_changing: bool = False
) -> Callable[[Handler], RpcMethod]:
    """Declare a handler as the JSON-RPC method ``name``; ``errors`` lists the error kinds it may raise;
    ``state_changing`` methods (settings, the model registry) are never cancelled halfway."""

    def declare(handler: Handler) -> RpcMethod:
        hints = typing.get_type_hints(handler)
        parameters = list(inspect.signature(handler).parameters)
        params_type = hints[parameters[1]] if len(parameters) > 1 else None
        return RpcMethod(
            name=name,
            handler=handler,
            summary=summary,
            params_type=params_type,
            result_type=hints.get("return", Any),
            errors=errors,
            decoder=msgspec.json.Decoder(params_type) if params_type else None,
            state_changing=state_changing,
        )

    return declare


class SessionControl(typing.Protocol):
    """What handlers may ask of the session running them (``protocol.session.Session`` provides it)."""

    methods: Mapping[str, RpcMethod]
    shutdown_requested: bool

    def notify(self, method: str, params: msgspec.Struct) -> None: ...

    async def shut_down(self, grace_s: float) -> None: ...

    def request_exit(self, code: int) -> None: ...


@dataclass
class RequestContext:
    """What a handler may use: the app's services, notifications, progress tied to this request."""

    id: RequestId
    method: str
    app: App
    session: SessionControl
    http: HttpController | None = None
    """The HTTP shim's controller (built by the composition root; absent in bare sessions)."""

    def notify(self, method: str, params: msgspec.Struct) -> None:
        """Send a server → host notification (thread-safe); observers (``/v1/events``) see it too."""
        self.session.notify(method, params)
        self.app.observe(method, params)

    def progress(self, method: str, payload: type[Progress], **fields: Any) -> ProgressReporter[Progress]:
        """A reporter of ``method`` notifications: ``payload`` Structs with ``request_id`` and ``fields``."""
        return ProgressReporter(
            lambda progress: self.notify(method, progress), payload, {"request_id": self.id, **fields}
        )
