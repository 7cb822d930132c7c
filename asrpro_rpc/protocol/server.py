"""The composition root: builds the services and the HTTP shim controller, wires transport → session →
methods (a ``MethodTable``: each area's module is imported on its first call), serves stdio, handles
signals."""

from __future__ import annotations

import logging
import os
import signal
import sys
from functools import partial

import anyio
import anyio.abc

from ..http.controller import SHUTDOWN_GRACE_S, HttpController, HttpStartRequest
from ..methods import MethodTable
from ..services.container import App
from ..system.instance import InstanceLock, make_scratch_dir, remove_scratch_dir, watch_parent
from .session import ABRUPT_GRACE_S, Batch, Session
from .transport import LineReader, MessageWriter

log = logging.getLogger(__name__)


async def _watch_signals(session: Session, task_group: anyio.abc.TaskGroup) -> None:
    """SIGINT/SIGTERM → the graceful shutdown with a short grace (a ``shutdown`` under way is hurried to
    it); a second signal forces exit."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        signalled = False
        async for signum in signals:
            if signalled:
                log.warning("second signal: exiting now", extra={"signal": signum})
                os._exit(130)
            signalled = True
            log.info("signal received: shutting down", extra={"signal": signum})
            task_group.start_soon(_shut_down, session)


async def _close(app: App, http: HttpController) -> None:
    """Stop the HTTP shim, then release the services (end the engine process); idempotent."""
    with anyio.CancelScope(shield=True):
        await http.stop(SHUTDOWN_GRACE_S)
        await app.aclose()


async def _shut_down(session: Session) -> None:
    """Graceful shutdown for a host that can't wait (a signal, its death), then exit 0."""
    await session.shut_down(ABRUPT_GRACE_S)
    session.request_exit(0)


async def serve_stdio(app: App, http: HttpController, protocol_fd: int) -> int:
    """Serve JSON-RPC on stdin and ``protocol_fd`` (the real stdout) until exit or EOF; return the exit
    code."""
    writer = MessageWriter(protocol_fd)
    writer.start()
    session = Session(MethodTable(), app, writer.send, http=http)
    app.listeners.append(session.notify)
    for warning in app.config.warnings:  # e.g. a corrupt settings file was moved aside
        app.notify("notification", warning)
    send_stream, receive_stream = anyio.create_memory_object_stream[Batch](64)
    token = anyio.lowlevel.current_token()

    def deliver(batch: Batch) -> None:
        try:
            anyio.from_thread.run(send_stream.send, batch, token=token)
        except Exception:  # noqa: BLE001 - the loop has ended (closed, cancelled); remaining input is moot
            pass  # the session has ended; remaining input is moot

    LineReader(sys.stdin.fileno(), deliver).start()
    log.info("serving on stdio", extra={"pid": os.getpid()})
    try:
        async with anyio.create_task_group() as task_group:
            if sys.platform != "win32":
                task_group.start_soon(_watch_signals, session, task_group)
            task_group.start_soon(app.run_background)
            task_group.start_soon(http.run)
            task_group.start_soon(watch_parent, partial(_shut_down, session))
            code = await session.serve(receive_stream)
            task_group.cancel_scope.cancel()
    finally:
        await _close(app, http)
        receive_stream.close()
        writer.close()
    log.info("exiting", extra={"exit_code": code})
    return code


async def serve_headless(app: App, http: HttpController) -> int:
    """``serve --http … --no-stdio``: the HTTP shim alone, until SIGTERM/SIGINT (stdin is not read, so a
    service manager or a container can run it); 1 if the shim could not start."""
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(app.run_background)
        task_group.start_soon(http.run)
        await http.launched()
        status = http.status()
        if not status.running:
            log.error("headless mode needs the HTTP server, and it did not start: exiting")
            task_group.cancel_scope.cancel()
            code = 1
        else:
            log.info(
                "serving HTTP only (headless) until SIGTERM", extra={"url": status.url, "pid": os.getpid()}
            )
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info("signal received: shutting down", extra={"signal": signum})
                    break
            task_group.start_soon(_force_exit_on_second_signal)
            await _close(app, http)
            task_group.cancel_scope.cancel()
            code = 0
    await _close(app, http)
    log.info("exiting", extra={"exit_code": code})
    return code


async def _force_exit_on_second_signal() -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.warning("second signal: exiting now", extra={"signal": signum})
            os._exit(130)


def run_stdio_server(
    protocol_fd: int,
    *,
    allow_multiple: bool = False,
    replace: bool = False,
    http: HttpStartRequest | None = None,
    stdio: bool = True,
) -> int:
    """Entry point for ``asrpro serve``: single-instance lock, private temp dir, then serve on
    ``protocol_fd`` (from ``system.process.guard_stdout``, taken before anything else could print), or,
    without ``stdio``, serve ``http`` alone until a signal.

    Raises:
        AlreadyRunning: another sidecar serves the same settings (without ``allow_multiple``/``replace``).
    """
    lock = None if allow_multiple else InstanceLock()
    if lock is not None:
        lock.acquire(replace=replace)
    scratch = make_scratch_dir()
    try:
        app = App()
        app.instance_lock = lock
        controller = HttpController(app)
        controller.launch_request = http  # `serve --http`; otherwise the settings decide
        if not stdio:
            return anyio.run(serve_headless, app, controller)
        return anyio.run(serve_stdio, app, controller, protocol_fd)
    finally:
        remove_scratch_dir(scratch)
        if lock is not None:
            lock.release()
