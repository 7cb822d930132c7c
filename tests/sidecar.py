"""Drive the real sidecar process over its pipes, with timeouts (a reader thread per stream)."""

from __future__ import annotations

import itertools
import os
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import msgspec

TIMEOUT_S = 30.0


class Sidecar:
    """A spawned ``asrpro serve`` with line-level access to stdin/stdout and the stderr log."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, argv: list[str] | None = None) -> None:
        full_env = {**os.environ, "ASRPRO_LOG_LEVEL": "debug", **(env or {})}
        for name in ("ASRPRO_CONFIG_DIR", "ASRPRO_CACHE_DIR"):  # never the user's real settings or cache
            full_env.setdefault(name, tempfile.mkdtemp(prefix="asrpro-test-"))
        self.process = subprocess.Popen(
            argv or [sys.executable, "-m", "asrpro_rpc", "serve", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
        )
        self.raw_lines: list[bytes] = []
        self.stderr_lines: list[bytes] = []
        self._messages: queue.Queue[Any] = queue.Queue()
        self.notifications: list[dict[str, Any]] = []
        self._early: dict[Any, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

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
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: Any) -> None:
        self.write(msgspec.json.encode(message) + b"\n")

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
    def next_message(self, timeout_s: float = TIMEOUT_S) -> Any:
        message = self._messages.get(timeout=timeout_s)
        if message is None:
            raise EOFError("sidecar closed stdout")
        return message

    def response(self, request_id: Any = None, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
        """The next response (with ``request_id`` if given); notifications are collected on the way and
        responses to other requests are kept for their own ``response`` call."""
        if request_id is not None and request_id in self._early:
            return self._early.pop(request_id)
        while True:
            message = self.next_message(timeout_s)
            if isinstance(message, dict) and "method" in message and "id" not in message:
                self.notifications.append(message)
                continue
            if request_id is None or (isinstance(message, dict) and message.get("id") == request_id):
                return message
            if isinstance(message, dict) and "id" in message:
                self._early[message["id"]] = message

    def call(self, method: str, params: Any = None, timeout_s: float = TIMEOUT_S) -> Any:
        """Request and return the result; raise AssertionError on an error response."""
        request_id = self.request(method, params)
        reply = self.response(request_id, timeout_s)
        assert "result" in reply, reply
        return reply["result"]

    def error(self, method: str, params: Any = None, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
        """Request and return the error object; fail if it succeeded."""
        request_id = self.request(method, params)
        reply = self.response(request_id, timeout_s)
        assert "error" in reply, reply
        return reply["error"]

    def shutdown(self, timeout_s: float = 10.0) -> int:
        """shutdown + exit; returns the exit code."""
        self.call("shutdown")
        self.notify("exit")
        return self.process.wait(timeout_s)

    def stderr_text(self) -> str:
        return b"".join(self.stderr_lines).decode("utf-8", "replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
