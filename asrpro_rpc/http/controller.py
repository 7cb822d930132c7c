"""Start and stop the HTTP shim inside the sidecar's event loop (no thread, no second process).

``run()`` is a background task of the stdio server: it owns the task group uvicorn serves in and starts
the shim at launch when ``asrpro serve --http`` or the settings (``server.http_enabled`` and
``server.auto_start``) ask. ``start``/``stop``/``status`` back the ``http.*`` methods. The socket is bound
here, so a busy port is a clear ``address_in_use`` error (naming the next free port) rather than uvicorn
exiting the process. Binding anything but loopback needs ``allow_remote`` and logs a warning. Stopping
refuses new requests with 503, lets in-flight ones finish (bounded by ``grace_s``), then closes.

FastAPI and uvicorn are imported only when the shim starts (the ``http`` extra).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import anyio.abc
import msgspec

from .. import errors
from ..events import NotificationMessage
from .connections import ConnectionLimits, guarded_protocol
from .state import ShimOptions, ShimState, is_loopback

if TYPE_CHECKING:
    from ..services.container import App

log = logging.getLogger(__name__)
_PORT_SEARCH = 100
_IN_USE = {errno.EADDRINUSE, 10048, 10013}  # + Windows WSAEADDRINUSE / WSAEACCES (port reserved)
STOP_GRACE_S = 10.0
SHUTDOWN_GRACE_S = 5.0


class HttpStartRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``http.start``; unset host/port come from the settings (``server.host``, ``server.port``)."""

    host: str | None = None
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] | None = None
    """0 picks a free port (``http.status`` says which)."""
    allow_remote: bool = False
    """Required to bind anything but loopback (the shim then serves your network: set an api_token)."""
    next_free_port: bool = False
    """If the port is taken, use the next free one above it instead of failing."""
    cors_origins: list[str] = []
    """Browser origins allowed to call the shim (e.g. ``http://localhost:1420``); none by default."""


class HttpStatus(msgspec.Struct, frozen=True, kw_only=True):
    running: bool
    url: str | None = None
    """Base URL, e.g. ``http://127.0.0.1:8765``; OpenAI SDKs take ``<url>/v1`` as ``base_url``."""
    host: str | None = None
    port: int | None = None
    token_required: bool = False
    max_upload_mb: int = 25
    cors_origins: list[str] = []
    in_flight_requests: int = 0
    served_requests: int = 0


class _Running:
    def __init__(self, server: Any, state: ShimState, url: str) -> None:
        self.server = server
        self.state = state
        self.url = url
        self.ended = anyio.Event()


class HttpController:
    """The shim's lifecycle; one server at a time."""

    def __init__(self, services: App) -> None:
        self.services = services
        self.launch_request: HttpStartRequest | None = None
        """Set by ``asrpro serve --http`` before ``run()``; otherwise the settings decide."""
        self._task_group: anyio.abc.TaskGroup | None = None
        self._running: _Running | None = None
        self._lock = anyio.Lock()
        self._launched = anyio.Event()
        """Set once ``run()`` has made its launch-time start attempt (if any)."""

    # --- lifecycle ---------------------------------------------------------------------------------
    async def run(self) -> None:
        """Background task: start the shim if asked at launch, then host it until cancelled."""
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            try:
                request = self.launch_request or self._auto_start_request()
                if request is not None:
                    try:
                        await self.start(request)
                    except errors.AsrproError as exc:
                        log.error("the HTTP shim did not start", extra={"error": exc.message})
                        self.services.notify(
                            "notification",
                            NotificationMessage(level="error", message=exc.message, kind=exc.kind),
                        )
                self._launched.set()
                await anyio.sleep_forever()
            finally:
                self._task_group = None

    async def launched(self, timeout_s: float = 30.0) -> None:
        """Wait for the launch-time start (``--http``, auto-start) so requests see its outcome."""
        if self._task_group is not None or self.launch_request is not None:
            with anyio.move_on_after(timeout_s):
                await self._launched.wait()

    def _auto_start_request(self) -> HttpStartRequest | None:
        server = self.services.config.settings.server
        if not (server.http_enabled and server.auto_start):
            return None
        # The settings file is the user's explicit choice of address.
        return HttpStartRequest(allow_remote=True)

    async def start(self, request: HttpStartRequest) -> HttpStatus:
        async with self._lock:
            settings = self.services.config.settings.server
            asked_host = None if request.host is None else _unbracketed(request.host)
            host = asked_host or _unbracketed(settings.host)
            port = settings.port if request.port is None else request.port
            running = self._running
            if running is not None:
                options = running.state.options
                if asked_host in (None, options.host) and request.port in (None, options.port):
                    return self.status()
                raise errors.Busy(
                    f"The HTTP server is already running at {running.url}; call http.stop first.",
                    url=running.url,
                )
            if self._task_group is None:
                raise errors.InvalidRequest("The HTTP server runs only inside `asrpro serve`.")
            if not 0 <= port <= 65535:
                raise errors.InvalidParams(f"Port {port} is out of range (0..65535).", param="port")
            if not is_loopback(host):
                if not request.allow_remote:
                    raise errors.InvalidParams(
                        f"Binding {host} would expose the server beyond this machine: pass allow_remote "
                        "(--http-allow-remote) to do it on purpose, and set server.api_token.",
                        param="host",
                    )
                log.warning("the HTTP shim listens beyond loopback", extra={"host": host})
            uvicorn, create_app = _import_server()
            sock = bind_socket(host, port, next_free_port=request.next_free_port)
            bound_port = int(sock.getsockname()[1])
            state = ShimState(
                self.services,
                ShimOptions(host=host, port=bound_port, cors_origins=tuple(request.cors_origins)),
            )
            limits = ConnectionLimits(
                header_timeout_s=settings.header_timeout_s,
                body_timeout_s=settings.body_timeout_s,
                max_per_client=settings.max_connections_per_client,
            )
            config = uvicorn.Config(
                create_app(state),
                http=guarded_protocol(limits),  # header/body timeouts, a per-client connection cap
                lifespan="off",
                log_config=None,
                access_log=False,
                proxy_headers=False,
                server_header=False,
                timeout_graceful_shutdown=1,
            )
            server = _quiet_server_class(uvicorn)(config)
            running = _Running(server, state, _url(host, bound_port))
            try:
                await self._task_group.start(self._serve, running, sock)
            except BaseException:
                sock.close()
                raise
            self._running = running
            self._record_port(bound_port)
            log.info("HTTP shim listening", extra={"url": running.url})
            return self.status()

    async def _serve(
        self, running: _Running, sock: socket.socket, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        try:
            async with anyio.create_task_group() as task_group:

                async def report_ready() -> None:
                    await running.server.ready.wait()
                    task_status.started()

                task_group.start_soon(report_ready)
                await running.server.serve(sockets=[sock])
                task_group.cancel_scope.cancel()
        finally:
            sock.close()
            running.ended.set()
            if self._running is running:
                self._running = None
                self._record_port(None)
            log.info("HTTP shim stopped", extra={"url": running.url})

    async def stop(self, grace_s: float = STOP_GRACE_S) -> HttpStatus:
        """Refuse new requests, give in-flight ones ``grace_s`` to finish, then close."""
        async with self._lock:
            running = self._running
            if running is None:
                return self.status()
            running.state.draining = True
            if not await running.state.wait_idle(grace_s):
                log.warning("HTTP requests still running after the grace period: cancelling them")
            running.server.should_exit = True
            with anyio.move_on_after(grace_s + 5.0):
                await running.ended.wait()
            return self.status()

    def status(self) -> HttpStatus:
        settings = self.services.config.settings.server
        running = self._running
        if running is None:
            return HttpStatus(
                running=False,
                token_required=settings.api_token is not None,
                max_upload_mb=settings.max_upload_mb,
            )
        options = running.state.options
        return HttpStatus(
            running=True,
            url=running.url,
            host=options.host,
            port=options.port,
            token_required=settings.api_token is not None,
            max_upload_mb=settings.max_upload_mb,
            cors_origins=list(options.cors_origins),
            in_flight_requests=running.state.in_flight,
            served_requests=running.state.served,
        )

    def _record_port(self, port: int | None) -> None:
        lock = getattr(self.services, "instance_lock", None)
        if lock is not None:
            lock.update(http_port=port)


def _import_server() -> tuple[Any, Any]:
    try:
        import uvicorn

        from .asgi import create_app
    except ImportError as exc:
        raise errors.EngineUnavailable(
            f"The HTTP server needs the `http` extra ({exc.name} is missing): "
            "pip install 'asrpro-rpc[http]'.",
            extra="http",
        ) from None
    return uvicorn, create_app


def _quiet_server_class(uvicorn: Any) -> Any:
    class Server(uvicorn.Server):  # type: ignore[misc, name-defined]
        """uvicorn's server minus its signal handlers (the sidecar owns SIGINT/SIGTERM), plus ``ready``."""

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.ready = anyio.Event()

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            self.ready.set()

    return Server


def _unbracketed(host: str) -> str:
    """``[::1]`` → ``::1``: hosts are kept bare, and bracketed only in URLs."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _bind(host: str, port: int) -> socket.socket:
    address = "127.0.0.1" if host == "localhost" else host
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say they are
    # TCP, and with Nagle on every keep-alive response waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if sys.platform == "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_socket(host: str, port: int, *, next_free_port: bool = False) -> socket.socket:
    """A listening socket on ``host:port``; a busy port raises ``AddressInUse`` naming a free one."""
    try:
        return _bind(host, port)
    except socket.gaierror as exc:
        raise errors.InvalidParams(f"Cannot listen on {host!r}: {exc.strerror}.", param="host") from None
    except OSError as exc:
        if exc.errno not in _IN_USE or port == 0:
            raise errors.InvalidParams(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}.", param="host"
            ) from None
    for candidate in range(port + 1, min(port + 1 + _PORT_SEARCH, 65536)):
        try:
            sock = _bind(host, candidate)
        except OSError:
            continue
        if next_free_port:
            log.info("port in use: took the next free one", extra={"port": port, "bound_port": candidate})
            return sock
        sock.close()
        raise errors.AddressInUse(
            f"Port {port} on {host} is already in use (by another program or another sidecar). "
            f"Port {candidate} is free: choose it (server.port), or ask for the next free port "
            "(next_free_port / --http-next-free-port).",
            host=host,
            port=port,
            next_free_port=candidate,
        )
    raise errors.AddressInUse(
        f"Port {port} on {host} is already in use, and so are the {_PORT_SEARCH} ports above it.",
        host=host,
        port=port,
    )


def parse_bind(text: str) -> tuple[str | None, int]:
    """``[HOST:]PORT`` (``8765``, ``127.0.0.1:8765``, ``[::1]:8765``) → (host or None, port)."""
    host, _, port_text = text.rpartition(":")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"expected [HOST:]PORT with PORT in 0..65535, got {text!r}")
    return (host.strip("[]") or None), int(port_text)
