"""Helpers for the streaming tests: build a stream of sentences and silences, push it in chunks."""

from __future__ import annotations

import base64
import queue
import random
import time
import wave
from pathlib import Path
from typing import Any

from tests.support.sidecar import Sidecar

SAMPLE_RATE_HZ = 16000


def pcm16(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        return wav.readframes(wav.getnframes())


def silence(seconds: float) -> bytes:
    return bytes(2 * int(seconds * SAMPLE_RATE_HZ))


def push(
    sidecar: Sidecar, stream_id: str, pcm: bytes, rng: random.Random, sample_bytes: int = 2
) -> list[Any]:
    """Send ``pcm`` in 20–100 ms chunks without waiting; return the request ids (answers come later)."""
    ids, offset = [], 0
    while offset < len(pcm):
        size = sample_bytes * int(rng.uniform(0.02, 0.1) * SAMPLE_RATE_HZ)
        chunk = pcm[offset : offset + size]
        offset += size
        ids.append(sidecar.request("stream.push", {"stream_id": stream_id, "audio": _b64(chunk)}))
    return ids


def results(sidecar: Sidecar, ids: list[Any]) -> list[dict[str, Any]]:
    """The answers to ``ids`` (each must be a result)."""
    replies = [sidecar.response(request_id) for request_id in ids]
    for reply in replies:
        assert "result" in reply, reply
    return [reply["result"] for reply in replies]


def wait_for(sidecar: Sidecar, method: str, stream_id: str, count: int, timeout_s: float = 60.0) -> None:
    """Collect messages until ``count`` notifications ``method`` of ``stream_id`` have arrived; raise
    ``queue.Empty`` if they have not within ``timeout_s`` (in all, however many other messages come)."""
    deadline = time.monotonic() + timeout_s
    while len(of(sidecar, method, stream_id)) < count:
        message = sidecar.next_message(max(0.0, deadline - time.monotonic()))
        if isinstance(message, dict) and "method" in message and "id" not in message:
            sidecar.notifications.append(message)


def wait_for_partial_text(sidecar: Sidecar, stream_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Wait for a partial with words (stable or not) in a segment that has no final yet; return it.

    Raises ``queue.Empty`` when none comes within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        finished = {f["segment"]["id"] for f in of(sidecar, "stream.final", stream_id)}
        for partial in of(sidecar, "stream.partial", stream_id):
            if partial["segment_id"] not in finished and (partial["stable"] + partial["unstable"]).strip():
                return partial
        message = sidecar.next_message(max(0.0, deadline - time.monotonic()))
        if isinstance(message, dict) and "method" in message and "id" not in message:
            sidecar.notifications.append(message)


def push_paced(
    sidecar: Sidecar, stream_id: str, pcm: bytes, rng: random.Random, piece_s: float = 0.5
) -> None:
    """Push ``pcm`` a ``piece_s`` at a time, giving the stream up to a few seconds to decode each piece.

    Pacing only (nothing is asserted on time): a decode per piece lets local agreement confirm words.
    """
    piece_bytes = 2 * int(piece_s * SAMPLE_RATE_HZ)
    for offset in range(0, len(pcm), piece_bytes):
        before = len(of(sidecar, "stream.partial", stream_id))
        results(sidecar, push(sidecar, stream_id, pcm[offset : offset + piece_bytes], rng))
        try:
            wait_for(sidecar, "stream.partial", stream_id, before + 1, timeout_s=5.0)
        except queue.Empty:
            pass


def of(sidecar: Sidecar, method: str, stream_id: str) -> list[dict[str, Any]]:
    return [
        n["params"]
        for n in sidecar.notifications
        if n["method"] == method and n["params"].get("stream_id") == stream_id
    ]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def check_stable_never_changes(
    partials: list[dict[str, Any]], finals: list[dict[str, Any]], *, words_expected: bool = True
) -> None:
    """Within a segment, each partial's stable text extends the last; the final starts with it unless it
    says it ``revised`` it (policy ``dictation``: the final decode heard the whole utterance).

    With ``words_expected`` (real weights on speech) some stable text must exist, or nothing was checked;
    a random model may agree on no words at all, so its callers pass ``words_expected=False``.
    """
    last_stable: dict[int, str] = {}
    for partial in partials:
        before = last_stable.get(partial["segment_id"], "")
        assert partial["stable"].startswith(before), (before, partial)
        last_stable[partial["segment_id"]] = partial["stable"]
    if words_expected:
        assert any(last_stable.values()), f"no partial had stable text: {partials}"
    finals_by_id = {final["segment"]["id"]: final for final in finals}
    for segment_id, stable in last_stable.items():
        if stable:
            assert segment_id in finals_by_id, (segment_id, stable)
            final = finals_by_id[segment_id]
            assert final["revised"] or final["segment"]["text"].startswith(stable), (stable, final)
