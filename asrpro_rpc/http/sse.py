"""``stream=true``: the transcription answered as Server-Sent Events, the way OpenAI streams it.

Events are ``data: {json}`` frames: ``transcript.text.delta`` (one per segment, sent as the engine
finishes it; the deltas concatenate to the final text) then ``transcript.text.done`` (the authoritative
text, after post-processing). While the engine works, a ``: progress 0.42`` comment goes out every second
without news (SSE clients ignore comments; proxies and idle timeouts see a live connection). A failure after
the headers went out is an ``event: error`` frame carrying OpenAI's error object. A client that disconnects
cancels the transcription.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..engines.base import SegmentSink
from ..transcripts.types import Segment, Transcript
from .disconnect import cancel_on_disconnect
from .errors import error_body, http_error_of

KEEPALIVE_S = 1.0
FLUSH_S = 0.1
"""How often decoded segments are checked for and sent as deltas."""
Progress = Callable[[float], None]
Run = Callable[[Progress, SegmentSink], Awaitable[Transcript]]


def frame(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + msgspec.json.encode(data) + b"\n\n"


def deltas(transcript: Transcript) -> list[str]:
    """Per-segment deltas whose concatenation is exactly the final text."""
    pieces = [segment.text.strip() for segment in transcript.segments if segment.text.strip()]
    joined = [piece if i == 0 else f" {piece}" for i, piece in enumerate(pieces)]
    return joined if "".join(joined) == transcript.text else [transcript.text] if transcript.text else []


class TranscriptionEventStream(Response):
    """An ASGI response that runs ``run(progress)`` and streams its outcome as SSE."""

    media_type = "text/event-stream"

    def __init__(self, run: Run, headers: dict[str, str] | None = None) -> None:
        super().__init__(
            status_code=200,
            headers={"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})},
            media_type=self.media_type,
        )
        self._run = run
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        progress = [0.0]
        outcome: dict[str, Any] = {}
        finished = anyio.Event()
        decoded: list[str] = []  # segment texts from the engine's worker thread (list.append is atomic)
        sent = 0

        def report(fraction: float) -> None:
            progress[0] = fraction  # a float store: safe from the engine's worker thread

        def collect(segment: Segment) -> None:
            if segment.text.strip():  # as the engine joins them: its own spacing, the first stripped
                decoded.append(segment.text if decoded else segment.text.lstrip())

        def new_deltas() -> bytes:
            nonlocal sent
            end = len(decoded)
            frames = [frame({"type": "transcript.text.delta", "delta": decoded[i]}) for i in range(sent, end)]
            sent = end
            return b"".join(frames)

        async def work() -> None:
            try:
                outcome["transcript"] = await self._run(report, collect)
            except Exception as exc:  # becomes an error event below
                outcome["error"] = exc
            finally:
                finished.set()

        async def body(data: bytes, more: bool = True) -> None:
            try:
                await send({"type": "http.response.body", "body": data, "more_body": more})
            except OSError:  # the client went away: stop the work too
                task_group.cancel_scope.cancel()
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(cancel_on_disconnect, receive, task_group.cancel_scope)
            task_group.start_soon(work)
            await body(b": transcribing\n\n")
            quiet_s = 0.0
            while not finished.is_set():
                with anyio.move_on_after(FLUSH_S):
                    await finished.wait()
                if finished.is_set():
                    break
                if deltas_now := new_deltas():
                    await body(deltas_now)
                    quiet_s = 0.0
                elif (quiet_s := quiet_s + FLUSH_S) >= KEEPALIVE_S:
                    await body(f": progress {progress[0]:.3f}\n\n".encode())
                    quiet_s = 0.0
            streamed = sent > 0 or bool(decoded)
            await body(new_deltas() + self._outcome_frames(outcome, streamed), more=False)
            task_group.cancel_scope.cancel()

    @staticmethod
    def _outcome_frames(outcome: dict[str, Any], streamed: bool) -> bytes:
        """The closing frames; deltas only if none were streamed while the engine worked."""
        if "error" in outcome:
            error = http_error_of(outcome["error"])
            return frame(error_body(error.message, error.type, error.param, error.code), event="error")
        transcript: Transcript = outcome["transcript"]
        pieces = [] if streamed else deltas(transcript)
        frames = [frame({"type": "transcript.text.delta", "delta": delta}) for delta in pieces]
        frames.append(frame({"type": "transcript.text.done", "text": transcript.text}))
        return b"".join(frames)
