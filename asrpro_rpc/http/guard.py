"""The ASGI middleware every request passes: host and origin checks, bearer token, draining, temp files.

- ``Host`` must name loopback when the shim is bound to it (blocks DNS rebinding from web pages).
- A browser ``Origin`` is refused unless listed in ``cors_origins`` (blocks cross-site form posts and
  WebSocket reads: a local server is otherwise reachable from any page the user opens).
- ``Authorization: Bearer <server.api_token>`` on every route but ``/health`` when a token is set
  (WebSockets may pass it as ``?token=``, as browsers can't set headers there).
- While stopping, new requests get 503 (``/health`` still answers, saying so).
- Every response carries ``x-request-id`` (the client's, if it sent a sane one, else ``http-…``); a
  WebSocket refused at the handshake gets the HTTP status (401, 403, 421) where the server can send one.
- Temp files a request registers (``register_temp_file``) are removed when it ends, however it ends, and
  before its response's last byte is sent (so a client never sees them outlive its request).
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from .errors import HttpError, error_response
from .state import ShimState, is_loopback

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/health"})
_TEMP_FILES = "asrpro_temp_files"
REQUEST_ID = "asrpro_request_id"
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_of(scope: Scope) -> str:
    """This request's id: sent back as ``x-request-id``, and the ``request_id`` of its progress events."""
    return str(scope["state"][REQUEST_ID])


def _request_id(scope: Scope) -> str:
    """The client's ``x-request-id`` if it is a sane token (a gateway's trace id), else a fresh one."""
    given = _header(scope, b"x-request-id")
    if given is not None and _CLIENT_REQUEST_ID.fullmatch(given):
        return given
    return f"http-{uuid.uuid4().hex[:12]}"


def register_temp_file(scope: Scope, path: Path) -> None:
    """Have ``path`` removed when the request ends (success, error, disconnect or cancellation)."""
    scope.setdefault("state", {}).setdefault(_TEMP_FILES, []).append(path)


def remove_file(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # e.g. still open by the engine on Windows: the scratch dir sweep gets it
        log.warning("could not remove a temp file", extra={"path": str(path), "error": str(exc)})


def _remove_temp_files(scope: Scope) -> None:
    registered = scope.get("state", {}).get(_TEMP_FILES, [])
    while registered:
        remove_file(registered.pop())


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class Guard:
    """Pure ASGI (not BaseHTTPMiddleware), so streaming responses and disconnects pass through untouched."""

    def __init__(self, app: ASGIApp, state: ShimState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})[REQUEST_ID] = request_id
        tag = (b"x-request-id", request_id.encode())

        async def send_tagged(message: Any) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                message = {**message, "headers": [*message.get("headers", ()), tag]}
            await send(message)

        problem = self._check(scope)
        if problem is not None:
            await self._refuse(problem, scope, receive, send_tagged)
            return
        counted = scope["type"] == "http"
        if counted:
            self.state.enter()

        async def send_after_cleanup(message: Any) -> None:
            # The response's last message goes out only once the request's temp files are gone.
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                _remove_temp_files(scope)
            await send_tagged(message)

        try:
            await self.app(scope, receive, send_after_cleanup if counted else send_tagged)
        finally:
            if counted:
                self.state.leave()
            _remove_temp_files(scope)

    def _check(self, scope: Scope) -> HttpError | None:
        options = self.state.options
        host = _header(scope, b"host")
        if options.loopback and host is not None and not is_loopback(_hostname(host)):
            return HttpError(
                421, f"Host {host!r} is not this server: use 127.0.0.1 or localhost.", code="invalid_host"
            )
        origin = _header(scope, b"origin")
        if origin is not None and origin not in options.cors_origins:
            return HttpError(
                403,
                f"Requests from web pages (origin {origin}) are refused: add the origin to the shim's "
                "cors_origins (http.start) to allow it.",
                code="origin_not_allowed",
            )
        path = scope["path"]
        if self.state.draining and path not in PUBLIC_PATHS:
            return HttpError(
                503,
                "The server is shutting down; no new requests are accepted.",
                code="shutting_down",
                type="server_error",
                headers={"x-should-retry": "false", "connection": "close"},
            )
        token = self.state.settings.api_token
        if token is not None and path not in PUBLIC_PATHS and not _token_matches(scope, token):
            return HttpError(
                401,
                "Missing or wrong API key: send `Authorization: Bearer <token>` with the token set in "
                "the sidecar's settings (server.api_token).",
                code="invalid_api_key",
                headers={"www-authenticate": "Bearer"},
            )
        return None

    async def _refuse(self, problem: HttpError, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            websocket = WebSocket(scope, receive, send)
            if "websocket.http.response" in scope.get("extensions", {}):  # the handshake's HTTP status
                await websocket.send_denial_response(error_response(problem))
            else:
                await websocket.close(code=1008, reason=problem.message[:120])
            return
        await error_response(problem)(scope, receive, send)


def _hostname(host: str) -> str:
    """``Host`` without its port (``[::1]:8765`` → ``::1``)."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _token_matches(scope: Scope, token: str) -> bool:
    expected = token.encode()
    authorization = _header(scope, b"authorization") or ""
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
        return True
    if scope["type"] == "websocket":
        query: dict[str, Any] = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return any(hmac.compare_digest(value.encode(), expected) for value in query.get("token", ()))
    return False
