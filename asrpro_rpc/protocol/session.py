"""The JSON-RPC session: validates envelopes, routes to the method table, runs requests concurrently.

Every exception becomes a wire error here and only here (``errors.error_for``). Each request runs in its own
cancel scope inside the session's task group, so ``$/cancelRequest`` (and shutdown) can cancel it; a
cancelled request answers -32800.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
)
from .transport import MAX_LINE_BYTES, LineTooLong

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..http.controller import HttpController
    from ..services.container import App

log = logging.getLogger(__name__)
CANCEL_METHOD = "$/cancelRequest"
SERVER_FAULTS = frozenset(
    {"internal_error", "engine_crashed", "model_load_failed", "out_of_memory", "disk_full"}
)
"""Error kinds that say something is wrong with the sidecar, not the request (``system.health`` shows the
last one)."""
DRAIN_S = 1.0
"""On exit or EOF, requests already running get this long to finish before they are cancelled."""
_NOT_SET = msgspec.UNSET
_cancel_decoder = msgspec.json.Decoder(CancelParams)


def _error_response(request_id: RequestId, exc: errors.AsrproError) -> ErrorResponse:
    return ErrorResponse(id=request_id, error=ErrorObject(exc.code, exc.message, exc.wire_data()))


def _params_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> errors.InvalidParams:
    detail = str(exc)
    data: dict[str, Any] = {"detail": detail}
    if " - at `" in detail:
        data["path"] = detail.rsplit(" - at `", 1)[1].rstrip("`")
    if "unknown field `" in detail:
        data["field"] = detail.split("unknown field `", 1)[1].split("`", 1)[0]
    return errors.InvalidParams(f"Invalid params: {detail}", **data)


class Session:
    """One host connection: the method table, in-flight requests, lifecycle state."""

    def __init__(
        self,
        methods: Sequence[RpcMethod],
        app: App,
        send: Callable[[bytes], None],
        *,
        http: HttpController | None = None,
    ) -> None:
        self.methods = {m.name: m for m in methods}
        self.app = app
        self.http = http
        self._send = send
        self._inflight: dict[int | str, anyio.CancelScope] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._running = 0  # tasks started for requests, notifications and batches
        self.shutdown_requested = False
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
        """End the session: ``serve`` returns ``code`` after cancelling what still runs."""
        if self.exit_code is None:
            self.exit_code = code
        self._exit.set()

    def cancel_all(self, *, keep: RequestId = None) -> None:
        """Cancel every in-flight request except ``keep``."""
        for request_id, scope in list(self._inflight.items()):
            if request_id != keep:
                scope.cancel()

    async def serve(self, batches: anyio.abc.ObjectReceiveStream[list[bytes | LineTooLong] | None]) -> int:
        """Handle incoming lines until exit or EOF; return the process exit code."""
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            task_group.start_soon(self._read, batches)
            await self._exit.wait()
            with anyio.move_on_after(DRAIN_S):
                while self._running:
                    await anyio.sleep(0.01)
            task_group.cancel_scope.cancel()
        return self.exit_code if self.exit_code is not None else 1

    async def _read(self, batches: anyio.abc.ObjectReceiveStream[list[bytes | LineTooLong] | None]) -> None:
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
        outcome = self._parse(stripped)
        if isinstance(outcome, ErrorResponse):
            self._reply(outcome)
        elif outcome is not None:
            assert self._task_group is not None
            self._task_group.start_soon(self._run_and_reply, *outcome, self._track(outcome[1]))

    def _start_batch(self, line: bytes) -> None:
        try:
            items = batch_decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            self._reply(_error_response(None, errors.ParseError(f"Parse error: {exc}")))
            return
        if not items:
            self._reply(_error_response(None, errors.InvalidRequest("Invalid request: empty batch")))
            return
        assert self._task_group is not None
        self._task_group.start_soon(self._run_batch, items)

    async def _run_batch(self, items: list[msgspec.Raw]) -> None:
        self._running += 1
        try:
            await self._run_batch_items(items)
        finally:
            self._running -= 1

    async def _run_batch_items(self, items: list[msgspec.Raw]) -> None:
        replies: list[Response | ErrorResponse] = []

        async def run_one(item: msgspec.Raw) -> None:
            outcome = self._parse(bytes(item))
            if isinstance(outcome, ErrorResponse):
                replies.append(outcome)
            elif outcome is not None:
                reply = await self._run(*outcome, self._track(outcome[1]))
                if reply is not None:
                    replies.append(reply)

        async with anyio.create_task_group() as task_group:
            for item in items:
                task_group.start_soon(run_one, item)
        if replies:
            self._send(encoder.encode(replies) + b"\n")

    def _parse(self, raw: bytes) -> ErrorResponse | tuple[RpcMethod, Any, bytes] | None:
        """Validate an envelope: an error reply, a (method, id, params) to run, or None (handled)."""
        try:
            envelope = envelope_decoder.decode(raw)
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
        if envelope.method == CANCEL_METHOD:
            self._cancel(params)
            return None
        method = self.methods.get(envelope.method)
        if method is None:
            if is_notification:
                log.info("unknown notification ignored", extra={"method": envelope.method})
                return None
            return _error_response(
                reply_id,
                errors.MethodNotFound(
                    f"Method not found: {envelope.method!r}. Call rpc.discover for the list of methods.",
                    method=envelope.method,
                ),
            )
        if not is_notification and request_id is not None and request_id in self._inflight:
            return _error_response(
                None, errors.InvalidRequest(f"Invalid request: id {request_id!r} is already in use")
            )
        return method, request_id, params

    def _cancel(self, params: bytes) -> None:
        try:
            target = _cancel_decoder.decode(params).id
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.info("malformed $/cancelRequest ignored")
            return
        scope = self._inflight.get(target)
        if scope is not None:
            scope.cancel()

    def _track(self, request_id: Any) -> anyio.CancelScope:
        """A cancel scope for a request, registered at once so duplicate ids are caught early."""
        scope = anyio.CancelScope()
        if request_id is not _NOT_SET and request_id is not None:
            self._inflight[request_id] = scope
        return scope

    async def _run_and_reply(
        self, method: RpcMethod, request_id: Any, params: bytes, scope: anyio.CancelScope
    ) -> None:
        self._running += 1
        try:
            reply = await self._run(method, request_id, params, scope)
            if reply is not None:
                self._reply(reply)
        finally:
            self._running -= 1

    async def _run(
        self, method: RpcMethod, request_id: Any, params: bytes, scope: anyio.CancelScope
    ) -> Response | ErrorResponse | None:
        """Run one call in ``scope``; return its reply (None for notifications)."""
        is_notification = request_id is _NOT_SET
        reply_id = None if is_notification else request_id
        try:
            with scope:
                result = await self._call(method, reply_id, params)
            if scope.cancelled_caught:
                raise errors.RequestCancelled("Request cancelled.")
        except Exception as exc:  # every failure becomes a wire error here
            if is_notification:
                log.warning("notification failed", extra={"method": method.name, "error": str(exc)})
                return None
            error = errors.error_for(exc)
            if error.kind in SERVER_FAULTS:
                self.app.record_fault(error)
            return _error_response(reply_id, error)
        finally:
            if reply_id is not None:
                self._inflight.pop(reply_id, None)
        return None if is_notification else Response(id=reply_id, result=result)

    async def _call(self, method: RpcMethod, request_id: RequestId, params: bytes) -> Any:
        if self.shutdown_requested and method.name not in ("exit", "shutdown"):
            raise errors.ShuttingDown("The sidecar is shutting down; no new requests are accepted.")
        ctx = RequestContext(request_id, method.name, self.app, self, self.http)
        if method.decoder is None:
            if params.replace(b" ", b"") not in (b"", b"{}", b"[]", b"null"):
                raise errors.InvalidParams(f"Invalid params: {method.name} takes no parameters")
            return await method.handler(ctx)
        body = params if params and params != b"null" else b"{}"
        if body[:1] == b"[":
            if body.replace(b" ", b"") != b"[]":
                raise errors.InvalidParams("Invalid params: pass parameters by name (a JSON object)")
            body = b"{}"
        try:
            decoded = method.decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise _params_error(exc) from None
        return await method.handler(ctx, decoded)
