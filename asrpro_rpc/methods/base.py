"""Method declarations and the per-request context handed to every handler.

A handler is ``async def handler(ctx: RequestContext, params: SomeParams) -> SomeResult`` (``params``
optional). ``@rpc_method`` reads the annotations once, so the dispatcher can decode params into the frozen
Struct and the OpenRPC document can describe both sides without a second source of truth.
"""

from __future__ import annotations

import inspect
import threading
import time
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ..protocol.messages import RequestId

if TYPE_CHECKING:
    from ..protocol.session import Session
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


def rpc_method(name: str, *, summary: str, errors: tuple[str, ...] = ()) -> Callable[[Handler], RpcMethod]:
    """Declare a handler as the JSON-RPC method ``name``; ``errors`` lists the error kinds it may raise."""

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
        )

    return declare


class ProgressReporter:
    """Emits progress notifications for one request: throttled, monotonic, always sending 100 %.

    Thread-safe: engines call it from worker threads.
    """

    def __init__(
        self,
        emit: Callable[[dict[str, Any]], None],
        fields: dict[str, Any],
        *,
        min_interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._fields = fields
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_sent_at = -float("inf")
        self._last_progress = 0.0
        self._last_stage: object = None

    def __call__(self, progress: float, **extra: Any) -> None:
        """Report ``progress`` in 0..1 plus fields such as ``stage`` or ``message``."""
        with self._lock:
            progress = min(1.0, max(progress, self._last_progress))
            now = self._clock()
            stage = extra.get("stage")
            due = now - self._last_sent_at >= self._min_interval_s
            if not (due or progress >= 1.0 or stage != self._last_stage):
                return
            if progress >= 1.0 and self._last_progress >= 1.0 and stage == self._last_stage:
                return
            self._last_sent_at, self._last_progress, self._last_stage = now, progress, stage
        self._emit({**self._fields, "progress": round(progress, 4), **extra})


@dataclass
class RequestContext:
    """What a handler may use: the app's services, notifications, progress tied to this request."""

    id: RequestId
    method: str
    app: App
    session: Session

    def notify(self, method: str, params: Any) -> None:
        """Send a server → host notification (thread-safe)."""
        self.session.notify(method, params)

    def progress(self, method: str, **fields: Any) -> ProgressReporter:
        """A reporter whose notifications carry ``request_id`` and ``fields``."""
        return ProgressReporter(
            lambda payload: self.notify(method, payload), {"request_id": self.id, **fields}
        )
