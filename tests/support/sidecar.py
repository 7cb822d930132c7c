"""The real sidecar process for tests: ``Sidecar`` (the product's ``SidecarClient`` with reader threads,
timeouts and the stderr log kept) and ``start_sidecar``, the one fixture that spawns them in an isolated
environment and reaps them after the test (a pytest plugin)."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest

from asrpro_rpc.protocol.client import SidecarClient

TIMEOUT_S = 30.0


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def sidecar_env(tmp: Path, *, models_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """Settings, runtime files and temp files under ``tmp``; models from ``models_dir`` (default
    ``tmp/models``): never the user's own, and nothing a test leaves behind escapes ``tmp``."""
    (tmp / "tmp").mkdir(parents=True, exist_ok=True)
    return {
        "ASRPRO_CONFIG_DIR": str(tmp / "config"),
        "ASRPRO_MODELS_DIR": str(models_dir or tmp / "models"),
        "ASRPRO_RUNTIME_DIR": str(tmp / "run"),
        "TMPDIR": str(tmp / "tmp"),
        **extra,
    }


class Sidecar(SidecarClient):
    """A spawned ``asrpro serve`` with line-level access to stdin/stdout and the stderr log.

    Unlike ``SidecarClient.call`` (which raises ``RpcCallError``), ``call`` here asserts success and
    ``error`` asserts failure, and every read has a timeout, so a hung sidecar fails the test.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None, argv: list[str] | None = None) -> None:
        full_env = {**os.environ, "ASRPRO_LOG_LEVEL": "debug", **(env or {})}
        self._scratch: list[str] = []
        """Folders made here for settings or cache the caller didn't give (removed by ``kill``)."""
        for name in ("ASRPRO_CONFIG_DIR", "ASRPRO_CACHE_DIR"):  # never the user's real settings or cache
            if name not in full_env:
                full_env[name] = tempfile.mkdtemp(prefix="asrpro-test-")
                self._scratch.append(full_env[name])
        super().__init__(args, env=full_env, stderr=subprocess.PIPE, command=argv)
        self.raw_lines: list[bytes] = []
        self.stderr_lines: list[bytes] = []
        self._messages: queue.Queue[Any] = queue.Queue()
        self.notifications: list[dict[str, Any]] = []
        self._early: dict[Any, dict[str, Any]] = {}
        self._pumps = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    def _pump_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.raw_lines.append(line)
            try:
                self._messages.put(msgspec.json.decode(line))
            except msgspec.DecodeError:
                self._messages.put({"__unparsable__": line})
        self._messages.put(None)

    def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line)

    # --- sending ---------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Raw bytes to stdin (malformed input, several requests in one write)."""
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def request(self, method: str, params: Any = None, request_id: Any = None) -> Any:
        """Send a request; return its id."""
        request_id = next(self._ids) if request_id is None else request_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return request_id

    def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    # --- receiving -------------------------------------------------------------------------------
    def read_message(self, timeout_s: float = TIMEOUT_S) -> Any:
        message = self._messages.get(timeout=timeout_s)
        if message is None:
            raise EOFError("sidecar closed stdout")
        return message

    next_message = read_message

    def response(self, request_id: Any = None, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
        """The next response (with ``request_id`` if given); notifications are collected on the way and
        responses to other requests are kept for their own ``response`` call."""
        if request_id is not None and request_id in self._early:
            return self._early.pop(request_id)
        while True:
            message = self.read_message(timeout_s)
            if isinstance(message, dict) and "method" in message and "id" not in message:
                self.notifications.append(message)
                continue
            if request_id is None or (isinstance(message, dict) and message.get("id") == request_id):
                return message
            if isinstance(message, dict) and "id" in message:
                self._early[message["id"]] = message

    def call(self, method: str, params: Any = None, timeout_s: float = TIMEOUT_S) -> Any:  # type: ignore[override]
        """Request and return the result; raise AssertionError on an error response."""
        reply = self.response(self.request(method, params), timeout_s)
        assert "result" in reply, reply
        return reply["result"]

    def error(self, method: str, params: Any = None, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
        """Request and return the error object; fail if it succeeded."""
        reply = self.response(self.request(method, params), timeout_s)
        assert "error" in reply, reply
        return reply["error"]

    def wait_for_notification(
        self, matches: Callable[[dict[str, Any]], bool], timeout_s: float = TIMEOUT_S
    ) -> dict[str, Any]:
        """The next notification ``matches`` accepts (earlier ones are collected, responses kept)."""
        while True:
            message = self.read_message(timeout_s)
            if isinstance(message, dict) and "method" in message and "id" not in message:
                self.notifications.append(message)
                if matches(message):
                    return message
            elif isinstance(message, dict) and "id" in message:
                self._early[message["id"]] = message

    def shutdown(self, timeout_s: float = 10.0) -> int:
        """shutdown + exit; returns the exit code."""
        self.call("shutdown")
        self.notify("exit")
        return self.process.wait(timeout_s)

    # --- inspecting ------------------------------------------------------------------------------
    def wait_for_output_end(self, timeout_s: float = TIMEOUT_S) -> None:
        """Wait until stdout and stderr are read to their end (the process closed them), so
        ``raw_lines`` and ``stderr_lines`` are complete; fail if that takes over ``timeout_s``."""
        for pump in self._pumps:
            pump.join(timeout_s)
            assert not pump.is_alive(), "the sidecar's output did not end"

    def stderr_text(self) -> str:
        return b"".join(self.stderr_lines).decode("utf-8", "replace")

    def tree_rss_bytes(self) -> int:
        """Resident memory of the sidecar and every process under it (the engine host)."""
        root = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for folder in self._scratch:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def start_sidecar(tmp_path: Path) -> Iterator[Callable[..., Sidecar]]:
    """``start_sidecar(*args, models_dir=None, env=None, argv=None)``: a sidecar in ``sidecar_env(tmp_path)``
    (``env`` on top), killed after the test if it still runs."""
    started: list[Sidecar] = []

    def start(
        *args: str,
        models_dir: Path | None = None,
        env: dict[str, str] | None = None,
        argv: list[str] | None = None,
    ) -> Sidecar:
        sidecar = Sidecar(
            *args, env={**sidecar_env(tmp_path, models_dir=models_dir), **(env or {})}, argv=argv
        )
        started.append(sidecar)
        return sidecar

    yield start
    for sidecar in started:
        sidecar.kill()


def wait_until_transcribing(sidecar: Sidecar, request_id: object, timeout_s: float = 120.0) -> None:
    """Wait (deadline: fail) for the request's first ``transcribing`` progress; fail if it is answered
    first (the file must still be mid-way)."""
    deadline = time.monotonic() + timeout_s
    while True:
        message = sidecar.next_message(max(0.0, deadline - time.monotonic()))
        assert message.get("id") != request_id, f"answered before it was seen transcribing: {message}"
        params = message.get("params") or {}
        if message.get("method") == "transcription.progress" and params.get("stage") == "transcribing":
            return
