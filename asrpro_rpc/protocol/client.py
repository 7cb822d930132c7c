"""A small synchronous client that spawns the sidecar and talks to it (used by ``asrpro call`` and tests)."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

import msgspec

NotificationHandler = Callable[[str, Any], None]


class RpcCallError(Exception):
    """The sidecar answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data

    @property
    def kind(self) -> str | None:
        return self.data.get("kind") if isinstance(self.data, dict) else None


class SidecarClient:
    """Spawns ``asrpro serve`` and correlates requests with responses, one call at a time."""

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        env: dict[str, str] | None = None,
        stderr: IO[bytes] | int | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        """``command`` replaces the whole command line (default: this Python's ``asrpro serve ARGS``)."""
        self.process = subprocess.Popen(
            command or [sys.executable, "-m", "asrpro_rpc", "serve", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
        self._ids = itertools.count(1)

    def send(self, message: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(msgspec.json.encode(message) + b"\n")
        self.process.stdin.flush()

    def read_message(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise EOFError(f"sidecar closed its output (exit code {self.process.poll()})")
        return msgspec.json.decode(line)

    def call(
        self, method: str, params: Any = None, on_notification: NotificationHandler | None = None
    ) -> Any:
        """Send a request and return its result; notifications on the way go to ``on_notification``."""
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        while True:
            reply = self.read_message()
            if "id" not in reply:
                if on_notification is not None:
                    on_notification(reply["method"], reply.get("params"))
                continue
            if reply["id"] != request_id:
                continue
            if "error" in reply:
                error = reply["error"]
                raise RpcCallError(error["code"], error["message"], error.get("data"))
            return reply["result"]

    def close(self, timeout_s: float = 10.0) -> int:
        """Polite shutdown + exit; returns the exit code."""
        if self.process.poll() is None:
            try:
                self.call("shutdown")
                self.send({"jsonrpc": "2.0", "method": "exit"})
                self.process.stdin.close()  # type: ignore[union-attr]
            except (BrokenPipeError, EOFError, OSError):
                pass
        return self.process.wait(timeout_s)

    def __enter__(self) -> SidecarClient:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
