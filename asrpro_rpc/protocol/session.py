"""The JSON-RPC session: validates envelopes, routes to the method table, runs requests concurrently.

Every exception becomes a wire error here and only here (``errors.error_for``). A request is accepted or
refused when its line is read (params decoded then too), and runs in its own cancel scope inside the session's
task group, so ``$/cancelRequest`` and the end of a shutdown's grace can cancel it (it answers -32800);
state-changing methods are never cancelled. ``shut_down`` is the one graceful shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from .. import errors
from ..methods.base import RequestContext, RpcMethod
from .messages import (
    JSONRPC_VERSION,
    CancelParams,
    ErrorObject,
    ErrorResponse,
    Notification,
    RequestId,
    Response,
    batch_decoder,
    encoder,
    envelope_decoder,
    top_level_id,
)
from .transport import MAX_LINE_BYTES, LineTooLong

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..http.controller import HttpController
    from ..services.container import App

Batch = list[bytes | LineTooLong] | None

log = logging.getLogger(__name__)
CANCEL_METHOD = "$/cancelRequest"
SERVER_FAULTS = frozenset(
    {"internal_error", "engine_crashed", "model_load_failed", "out_of_memory", "disk_full"}
)
"""Error kinds that say something is wrong with the sidecar, not the request (``system.health`` shows the
last one)."""
ABRUPT_GRACE_S = 1.0
"""The grace when the host is gone or in a hurry: stdin EOF, ``exit`` without ``shutdown``, SIGINT/SIGTERM,
the parent's death."""
LIFECYCLE_METHODS = frozenset({"shutdown", "exit"})
"""Accepted while shutting down; never cancelled."""
_NOT_SET = msgspec.UNSET
_cancel_decoder = msgspec.json.Decoder(CancelParams)


def _error_response(request_id: RequestId, exc: errors.AsrproError) -> ErrorResponse:
    return ErrorResponse(id=request_id, error=ErrorObject(exc.code, exc.message, exc.wire_data()))


def _too_deep(raw: bytes) -> ErrorResponse:
    """The answer to JSON nested deeper than the decoder's recursion limit (about 1,000 levels), with the
    request's id when a scan of its top level finds one (else null)."""
    return _error_response(
        top_level_id(raw),
        errors.ParseError(
            "Parse error: JSON nested too deeply (the limit is about 1,000 levels).", reason="too_deep"
        ),
    )


def _params_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> errors.InvalidParams:
    detail = str(exc)
    data: dict[str, Any] = {"detail": detail}
    if " - at `" in detail:
        data["path"] = detail.rsplit(" - at `", 1)[1].rstrip("`")
    if "unknown field `" in detail:
        data["field"] = detail.split("unknown field `", 1)[1].split("`", 1)[0]
    return errors.InvalidParams(f"Invalid params: {detail}", **data)


@dataclass(eq=False)
class _Call:
    """One accepted request or notification, from the moment its line was read until it has answered."""

    method: RpcMethod
    request_id: Any
    """``msgspec.UNSET`` for a notification."""
    params: Any
    """The decoded params Struct (``None`` for a method without params)."""
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    @property
    def cancellable(self) -> bool:
        return not (self.method.state_changing or self.method.name in LIFECYCLE_METHODS)


class Session:
    """One host connection: the method table, in-flight requests, lifecycle state."""

    def __init__(
        self,
        methods: Sequence[RpcMethod] | Mapping[str, RpcMethod],
        app: App,
        send: Callable[[bytes], None],
        *,
        http: HttpController | None = None,
    ) -> None:
        self.methods = methods if isinstance(methods, Mapping) else {m.name: m for m in methods}
        """By name; a ``methods.MethodTable`` imports each area's module on first use."""
        self.app = app
        self.http = http
        self._send = send
        self._calls: set[_Call] = set()
        self._inflight: dict[int | str, _Call] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._running = 0  # tasks started for calls and batches
        self._changed = anyio.Event()  # set (and replaced) whenever a call or task ends
        self.accepting = True
        """False once shutdown, exit or EOF began: new requests are refused with shutting_down."""
        self.shutdown_requested = False
        """A graceful shutdown was asked for (``shutdown``, a signal, the host's death): exit code 0."""
        self._grace: anyio.CancelScope | None = None
        self._drained = anyio.Event()
        self.exit_code: int | None = None
        self._exit = anyio.Event()

    # --- output ------------------------------------------------------------------------------
    def notify(self, method: str, params: msgspec.Struct) -> None:
        """Send a notification to the host; safe from any thread."""
        self._send(encoder.encode(Notification(method=method, params=params)) + b"\n")

    def _reply(self, message: Response | ErrorResponse | list[Any]) -> None:
        try:
            data = encoder.encode(message)
        except (TypeError, msgspec.EncodeError) as exc:
            log.error("result not encodable", exc_info=exc)
            request_id = message.id if isinstance(message, (Response, ErrorResponse)) else None
            data = encoder.encode(_error_response(request_id, errors.error_for(exc)))
        self._send(data + b"\n")

    # --- lifecycle -----------------------------------------------------------------------------
    def request_exit(self, code: int) -> None:
        """End the session: ``serve`` returns ``code`` once what was received has been handled."""
        self.accepting = False
        if self.exit_code is None:
            self.exit_code = code
        self._exit.set()

    async def shut_down(self, grace_s: float) -> None:
        """The graceful shutdown (``shutdown``, SIGINT/SIGTERM, the host's death): stop accepting work on
        stdio and HTTP, drain (see ``drain``), then release the services (the engine process ends)."""
        self.shutdown_requested = True
        async with anyio.create_task_group() as task_group:
            if self.http is not None:
                task_group.start_soon(self.http.stop, grace_s)
            await self.drain(grace_s)
        with anyio.CancelScope(shield=True):
            await self.app.aclose()

    async def drain(self, grace_s: float) -> None:
        """Refuse new requests; let those already received finish within ``grace_s``, then cancel the ones
        still running, except state-changing requests, which always finish. A drain already under way
        keeps going, with the earlier of the two deadlines."""
        self.accepting = False
        deadline = anyio.current_time() + grace_s
        if self._grace is not None:
            self._grace.deadline = min(self._grace.deadline, deadline)
            await self._drained.wait()
            return
        self._grace = anyio.CancelScope(deadline=deadline)
        with self._grace:
            await self._wait_until(self._only_lifecycle_left)
        late = [call for call in self._calls if call.cancellable]
        if late:
            log.warning(
                "cancelling requests still running after the grace period", extra={"count": len(late)}
            )
        for call in late:
            call.scope.cancel()
        await self._wait_until(self._only_lifecycle_left)
        self._drained.set()

    def _only_lifecycle_left(self) -> bool:
        return all(call.method.name in LIFECYCLE_METHODS for call in self._calls)

    async def _wait_until(self, done: Callable[[], bool]) -> None:
        while not done():
            await self._changed.wait()

    def _changed_now(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def serve(self, batches: anyio.abc.ObjectReceiveStream[Batch]) -> int:
        """Handle incoming lines until exit or EOF, then until every request received has answered; return
        the process exit code. Without a shutdown under way, they are drained with ``ABRUPT_GRACE_S``."""
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            task_group.start_soon(self._read, batches)
            await self._exit.wait()
            if not self.shutdown_requested:  # else the shutdown under way drains, with its own grace
                await self.drain(ABRUPT_GRACE_S)
            await self._wait_until(lambda: self._running == 0)
            task_group.cancel_scope.cancel()
        return self.exit_code if self.exit_code is not None else 1

    async def _read(self, batches: anyio.abc.ObjectReceiveStream[Batch]) -> None:
        async for batch in batches:
            if batch is None:
                break
            for line in batch:
                self.handle_line(line)
        log.info("stdin closed")
        self.request_exit(0 if self.shutdown_requested else 1)

    # --- input ---------------------------------------------------------------------------------
    def handle_line(self, line: bytes | LineTooLong) -> None:
        """Parse one line and start whatever it asks for (never raises)."""
        try:
            self._handle_line(line)
        except Exception as exc:  # a bug here must not take the session down
            self._reply(_error_response(None, errors.error_for(exc)))

    def _handle_line(self, line: bytes | LineTooLong) -> None:
        if isinstance(line, LineTooLong):
            self._reply(
                _error_response(
                    None,
                    errors.InvalidRequest(
                        f"Message too large ({line.size_bytes} bytes; the limit is {MAX_LINE_BYTES} bytes). "
                        "Send audio as a file path or in smaller stream.push chunks.",
                        size_bytes=line.size_bytes,
                    ),
                )
            )
            return
        stripped = line.strip()
        if not stripped:
            return
        if stripped[:1] == b"[":
            self._start_batch(stripped)
            return
        outcome = self._accept(stripped)
        if isinstance(outcome, (Response, ErrorResponse)):
            self._reply(outcome)
        elif outcome is not None:
            self._start(self._run_and_reply, outcome)

    def _start(self, function: Callable[..., Any], *args: Any) -> None:
        assert self._task_group is not None
        self._running += 1

        async def run() -> None:
            try:
                await function(*args)
            finally:
                self._running -= 1
                self._changed_now()

        self._task_group.start_soon(run)

    def _start_batch(self, line: bytes) -> None:
        try:
            items = batch_decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            self._reply(_error_response(None, errors.ParseError(f"Parse error: {exc}")))
            return
        except RecursionError:
            self._reply(_too_deep(b""))  # a batch has no id
            return
        if not items:
            self._reply(_error_response(None, errors.InvalidRequest("Invalid request: empty batch")))
            return
        outcomes = [self._accept(bytes(item)) for item in items]  # accepted or refused in order, now
        self._start(self._run_batch, [outcome for outcome in outcomes if outcome is not None])

    async def _run_batch(self, outcomes: list[Response | ErrorResponse | _Call]) -> None:
        replies: list[Response | ErrorResponse] = [
            outcome for outcome in outcomes if not isinstance(outcome, _Call)
        ]

        async def run_one(call: _Call) -> None:
            reply = await self._run(call)
            if reply is not None:
                replies.append(reply)

        async with anyio.create_task_group() as task_group:
            for outcome in outcomes:
                if isinstance(outcome, _Call):
                    task_group.start_soon(run_one, outcome)
        if replies:
            self._send(encoder.encode(replies) + b"\n")

    def _accept(self, raw: bytes) -> Response | ErrorResponse | _Call | None:
        """Validate an envelope and its params: a reply now, a call to run, or None (handled)."""
        try:
            envelope = envelope_decoder.decode(raw)
        except RecursionError:
            return _too_deep(raw)
        except msgspec.ValidationError as exc:
            return _error_response(None, errors.InvalidRequest(f"Invalid request: {exc}"))
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            return _error_response(None, errors.ParseError(f"Parse error: {exc}"))
        request_id = envelope.id
        is_notification = request_id is _NOT_SET
        id_ok = (
            is_notification
            or request_id is None
            or (isinstance(request_id, (int, str)) and not isinstance(request_id, bool))
        )
        reply_id = request_id if id_ok and not is_notification else None
        params = bytes(envelope.params)
        problem = None
        if envelope.jsonrpc != JSONRPC_VERSION:
            problem = 'Invalid request: "jsonrpc" must be "2.0"'
        elif not isinstance(envelope.method, str):
            problem = 'Invalid request: "method" must be a string'
        elif not id_ok:
            problem = 'Invalid request: "id" must be a string, an integer or null'
        elif params[:1] not in (b"", b"{", b"[") and params != b"null":
            problem = 'Invalid request: "params" must be an object or an array'
        if problem:
            return _error_response(reply_id, errors.InvalidRequest(problem))
        if envelope.method == CANCEL_METHOD:  # a notification; sent as a request, it is answered null
            self._cancel(params)
            return None if is_notification else Response(id=reply_id, result=None)
        method = self.methods.get(envelope.method)
        if method is None:
            if is_notification:
                log.info("unknown notification ignored", extra={"method": errors.shown(envelope.method)})
                return None
            return _error_response(
                reply_id,
                errors.MethodNotFound(
                    f"Method not found: {errors.shown(envelope.method)}. "
                    "Call rpc.discover for the list of methods.",
                    method=envelope.method,
                ),
            )
        if not is_notification and request_id is not None and request_id in self._inflight:
            return _error_response(
                None,
                errors.InvalidRequest(f"Invalid request: id {errors.shown(request_id)} is already in use"),
            )
        try:
            if not self.accepting and method.name not in LIFECYCLE_METHODS:
                raise errors.ShuttingDown("The sidecar is shutting down; no new requests are accepted.")
            call = _Call(method, request_id, _decode_params(method, params))
        except errors.AsrproError as exc:
            if is_notification:
                log.warning("notification refused", extra={"method": method.name, "error": exc.message})
                return None
            return _error_response(reply_id, exc)
        if method.name == "shutdown":  # what follows it on the wire is refused; EOF won't hurry it
            self.accepting = False
            self.shutdown_requested = True
        self._calls.add(call)
        if not is_notification and request_id is not None:
            self._inflight[request_id] = call
        return call

    def _cancel(self, params: bytes) -> None:
        try:
            target = _cancel_decoder.decode(params).id
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            log.info("malformed $/cancelRequest ignored")
            return
        call = self._inflight.get(target)
        if call is None:
            return
        if call.cancellable:
            call.scope.cancel()
        else:
            log.info(
                "$/cancelRequest ignored: the request runs to completion", extra={"method": call.method.name}
            )

    async def _run_and_reply(self, call: _Call) -> None:
        reply = await self._run(call)
        if reply is not None:
            self._reply(reply)

    async def _run(self, call: _Call) -> Response | ErrorResponse | None:
        """Run one call in its scope; return its reply (None for notifications)."""
        is_notification = call.request_id is _NOT_SET
        reply_id = None if is_notification else call.request_id
        try:
            with call.scope:
                ctx = RequestContext(reply_id, call.method.name, self.app, self, self.http)
                handler = call.method.handler
                result = await (handler(ctx) if call.method.decoder is None else handler(ctx, call.params))
            if call.scope.cancelled_caught:
                raise errors.RequestCancelled("Request cancelled.")
        except Exception as exc:  # every failure becomes a wire error here
            if is_notification:
                log.warning("notification failed", extra={"method": call.method.name, "error": str(exc)})
                return None
            error = errors.error_for(exc)
            if error.kind in SERVER_FAULTS:
                self.app.record_fault(error)
            return _error_response(reply_id, error)
        finally:
            self._calls.discard(call)
            if reply_id is not None:
                self._inflight.pop(reply_id, None)
            self._changed_now()
        return None if is_notification else Response(id=reply_id, result=result)


def _decode_params(method: RpcMethod, params: bytes) -> Any:
    """The params Struct for ``method`` (``None`` when it takes none); raises InvalidParams."""
    if method.decoder is None:
        if params.replace(b" ", b"") not in (b"", b"{}", b"[]", b"null"):
            raise errors.InvalidParams(f"Invalid params: {method.name} takes no parameters")
        return None
    body = params if params and params != b"null" else b"{}"
    if body[:1] == b"[":
        if body.replace(b" ", b"") != b"[]":
            raise errors.InvalidParams("Invalid params: pass parameters by name (a JSON object)")
        body = b"{}"
    try:
        return method.decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _params_error(exc) from None
    except RecursionError:
        raise errors.InvalidParams("Invalid params: nested too deeply.", reason="too_deep") from None
