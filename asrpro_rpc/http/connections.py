"""Connection limits for the shim's HTTP/1.1 protocol (uvicorn's h11 protocol, subclassed).

uvicorn has no timeout on a request's head or body, and its ``limit_concurrency`` counts idle connections:
140 idle local connections made every request, ``/health`` included, answer 503 for as long as they stayed
open. Here instead:

- a connection must send a complete request head within ``header_timeout_s`` of opening (or of its
  previous response), however it trickles the bytes in (slowloris);
- a request body may pause at most ``body_timeout_s`` between chunks;
- one client address holds at most ``max_per_client`` connections: a new one closes that client's oldest
  idle connection (one waiting for a request head), and is refused only if all of them are busy with
  requests. So idle connections can never lock out ``/health`` or anything else.

A connection over a limit is closed; a request cut off mid-body sees a disconnect, like any client that
goes away. WebSocket connections leave these books once upgraded (their pings time them out).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import msgspec

log = logging.getLogger(__name__)
TICK_S = 0.5
"""How often a connection checks its deadlines."""


class ConnectionLimits(msgspec.Struct, frozen=True, kw_only=True):
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_per_client: int = 64


def guarded_protocol(limits: ConnectionLimits) -> type[Any]:
    """uvicorn's h11 protocol class with ``limits`` applied (one class, and one book, per server)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    by_client: dict[str, list[Any]] = defaultdict(list)

    class GuardedH11Protocol(H11Protocol):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._address = self.client[0] if self.client else ""
            self._head_deadline = self.loop.time() + limits.header_timeout_s
            self._last_data = self.loop.time()
            self._ticker: Any = None
            peers = by_client[self._address]
            if len(peers) >= limits.max_per_client:
                idle = next((peer for peer in peers if peer._waiting_for_head()), None)
                if idle is None:
                    log.warning("connection refused: the client's connections are all busy")
                    self._close()
                    return
                log.info("closed a client's oldest idle connection to admit a new one")
                idle._close()
            peers.append(self)
            self._ticker = self.loop.call_later(TICK_S, self._check)

        def connection_lost(self, exc: Exception | None) -> None:
            self._forget()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            self._last_data = self.loop.time()
            super().data_received(data)

        def on_response_complete(self) -> None:
            self._head_deadline = self.loop.time() + limits.header_timeout_s
            super().on_response_complete()

        def handle_websocket_upgrade(self, event: Any) -> None:
            self._forget()
            super().handle_websocket_upgrade(event)

        def _waiting_for_head(self) -> bool:
            return self.cycle is None or bool(self.cycle.response_complete)

        def _check(self) -> None:
            self._ticker = None
            if self.transport.is_closing():
                return
            now = self.loop.time()
            if self._waiting_for_head():
                if now >= self._head_deadline:
                    log.info("closed a connection that sent no complete request head in time")
                    self._close()
                    return
            elif self.cycle.more_body and now - self._last_data >= limits.body_timeout_s:
                log.info("closed a connection whose request body stalled")
                self._close()
                return
            self._ticker = self.loop.call_later(TICK_S, self._check)

        def _close(self) -> None:
            self._forget()
            if not self.transport.is_closing():
                self.transport.close()

        def _forget(self) -> None:
            if getattr(self, "_ticker", None) is not None:
                self._ticker.cancel()
                self._ticker = None
            peers = by_client.get(getattr(self, "_address", ""), [])
            if self in peers:
                peers.remove(self)
                if not peers:
                    by_client.pop(self._address, None)

    return GuardedH11Protocol
