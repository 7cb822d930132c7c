"""Line-delimited framing over stdio, with fd 1 reserved for the protocol.

fd 1 is the protocol's alone (``system.process.guard_stdout`` took it before anything could print).
``LineReader`` reads stdin in a thread (portable: pipes,
files and ttys alike) and hands complete lines to the event loop in batches. ``MessageWriter`` owns the
protocol fd: one writer thread, one ``write`` per batch of whole messages, so messages never interleave
and a slow host never blocks the event loop.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

MAX_LINE_BYTES = 64 * 1024 * 1024
"""Longest accepted message line (64 MiB); longer lines are answered with an error and skipped."""

_READ_CHUNK_BYTES = 1 << 16
log = logging.getLogger(__name__)


class LineTooLong:
    """Marker delivered in place of a line that exceeded ``MAX_LINE_BYTES`` (its bytes were discarded)."""

    def __init__(self, size_bytes: int) -> None:
        self.size_bytes = size_bytes


class LineReader:
    """Reads ``fd`` in a daemon thread and calls ``deliver(lines)`` with batches of complete lines.

    ``deliver`` is called from the reader thread and may block (that is the back-pressure). A line is
    ``bytes`` without its newline, or a ``LineTooLong`` marker. ``deliver(None)`` signals end of input.
    """

    def __init__(self, fd: int, deliver: Callable[[list[bytes | LineTooLong] | None], None]) -> None:
        self._fd = fd
        self._deliver = deliver
        self._thread = threading.Thread(target=self._run, name="stdin-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        pending = bytearray()
        discarding = 0  # bytes of an over-long line skipped so far (0 = not discarding)
        try:
            while True:
                chunk = os.read(self._fd, _READ_CHUNK_BYTES)
                if not chunk:
                    break
                lines: list[bytes | LineTooLong] = []
                start = 0
                while True:
                    newline = chunk.find(b"\n", start)
                    if newline < 0:
                        break
                    if discarding or len(pending) + newline - start > MAX_LINE_BYTES:
                        lines.append(LineTooLong(discarding + len(pending) + newline - start))
                        discarding = 0
                        pending.clear()
                    else:
                        pending += chunk[start:newline]
                        lines.append(bytes(pending))
                        pending.clear()
                    start = newline + 1
                rest = len(chunk) - start
                if discarding:
                    discarding += rest
                elif len(pending) + rest > MAX_LINE_BYTES:
                    discarding = len(pending) + rest
                    pending.clear()
                else:
                    pending += chunk[start:]
                if lines:
                    self._deliver(lines)
            if pending.strip():
                self._deliver([bytes(pending)])
            elif discarding:
                self._deliver([LineTooLong(discarding)])
        except OSError as exc:
            log.warning("stdin read failed", extra={"error": str(exc)})
        finally:
            self._deliver(None)


class MessageWriter:
    """Writes encoded messages (each ``bytes`` ending in ``\\n``) to the protocol fd from one thread."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="stdout-writer", daemon=True)
        self._broken = False

    def start(self) -> None:
        self._thread.start()

    def send(self, message: bytes) -> None:
        """Queue one whole message; safe from any thread, never blocks."""
        if not self._broken:
            self._queue.put(message)

    def close(self, timeout_s: float = 2.0) -> None:
        """Flush what is queued, then stop the writer thread."""
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < 256:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write_all(b"".join(batch))
            if stop:
                return

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:  # the host closed its end: nothing more can be said
            self._broken = True
            log.warning("protocol write failed; host gone", extra={"error": str(exc)})
