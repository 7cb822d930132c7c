"""``WS /v1/realtime?intent=transcription`` through the real process: the official ``openai`` SDK's realtime
client at 24 kHz with server VAD (as accurate as ``stream.stop`` on the same audio), and a raw ``websockets``
client at 16 kHz for manual commits, ``clear``, bad events and the token."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import subprocess
import threading
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from tests.e2e.test_http import AUTH, TOKEN, Shim, shim
from tests.support.audio import SPEECH_TEXT
from tests.support.streaming import of, pcm16, results, silence, wait_for
from tests.support.streaming import push as stream_push
from tests.support.wer import wer

__all__ = ["shim"]  # the module-scoped sidecar fixture
GAP_S = 1.2
MODEL = "whisper-tiny.en"


def at_24k(wav: Path, tmp_path: Path) -> bytes:
    """``wav`` (16 kHz) as 24 kHz PCM16, resampled by sox as a client would send it."""
    out = tmp_path / f"{wav.stem}-24k.wav"
    subprocess.run(["sox", str(wav), "-r", "24000", str(out)], check=True)
    with wave.open(str(out), "rb") as file:
        assert file.getframerate() == 24000
        return file.readframes(file.getnframes())


def chunks(pcm: bytes, rate_hz: int, chunk_s: float = 0.1) -> Iterator[str]:
    size = 2 * int(rate_hz * chunk_s)
    for offset in range(0, len(pcm), size):
        yield base64.b64encode(pcm[offset : offset + size]).decode()


def realtime_url(shim: Shim, query: str = "?intent=transcription") -> str:
    return f"{shim.url.replace('http', 'ws')}/v1/realtime{query}"


@contextmanager
def raw_session(shim: Shim) -> Iterator[ClientConnection]:
    with ws_connect(realtime_url(shim), additional_headers=AUTH) as websocket:
        created = receive(websocket)
        assert created["type"] == "session.created", created
        assert created["session"]["type"] == "transcription"
        yield websocket


def receive(websocket: ClientConnection) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(websocket.recv(timeout=120))
    return event


def until(websocket: ClientConnection, event_type: str) -> list[dict[str, Any]]:
    """Events up to and including the first of ``event_type``."""
    seen = [receive(websocket)]
    while seen[-1]["type"] != event_type:
        seen.append(receive(websocket))
    return seen


def send(websocket: ClientConnection, **event: Any) -> None:
    websocket.send(json.dumps(event))


def stream_stop_text(shim: Shim, sentences: list[bytes]) -> str:
    """What ``stream.*`` gives for the same speech over stdio, pushed as the realtime test sends it: each
    sentence and its pause at once, then its final awaited; then stop."""
    sidecar, rng = shim.sidecar, random.Random(3)
    stream_id = sidecar.call("stream.start", {"model": MODEL, "language": "en"}, timeout_s=60)["stream_id"]
    for index, pcm in enumerate(sentences):
        results(sidecar, stream_push(sidecar, stream_id, pcm + silence(GAP_S), rng))
        wait_for(sidecar, "stream.final", stream_id, index + 1)
    assert len(of(sidecar, "stream.final", stream_id)) == len(sentences)
    return str(sidecar.call("stream.stop", {"stream_id": stream_id}, timeout_s=60)["text"])


# --- the official SDK ------------------------------------------------------------------------------------
@pytest.mark.real_weights
def test_openai_sdk_realtime_transcription_is_as_accurate_as_stream_stop(
    shim: Shim, whisper_tiny_en_dir: Path, speech_sentences: list[tuple[str, Path]], tmp_path: Path
) -> None:
    """Server VAD: each sentence and its pause becomes one item with the events OpenAI sends, in order."""
    sentences = [speech_sentences[i] for i in (0, 1, 4)]
    client = openai.OpenAI(
        api_key=TOKEN, base_url=f"{shim.url}/v1", websocket_base_url=f"{shim.url.replace('http', 'ws')}/v1"
    )
    events: list[Any] = []
    with client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
        watchdog = threading.Timer(300, connection.close)  # a hung server fails the test, never hangs it
        watchdog.start()
        try:
            created = connection.recv()
            assert created.type == "session.created", created
            connection.session.update(
                session={
                    "type": "transcription",
                    "audio": {
                        "input": {
                            "format": {"type": "audio/pcm", "rate": 24000},
                            "transcription": {"model": MODEL, "language": "en"},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 600},
                        }
                    },
                }
            )
            updated = connection.recv()
            assert updated.type == "session.updated", updated
            assert updated.session.audio.input.transcription.model == MODEL
            assert updated.session.audio.input.turn_detection.silence_duration_ms == 600
            for _, wav in sentences:
                pcm = at_24k(wav, tmp_path) + bytes(2 * int(24000 * GAP_S))
                for audio in chunks(pcm, 24000):
                    connection.input_audio_buffer.append(audio=audio)
                while True:
                    events.append(connection.recv())
                    if events[-1].type == "conversation.item.input_audio_transcription.completed":
                        break
        finally:
            watchdog.cancel()
    kinds = [e.type for e in events]
    per_item = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert kinds == per_item * len(sentences), kinds
    completed = [e for e in events if e.type.endswith(".completed")]
    committed = [e for e in events if e.type == "input_audio_buffer.committed"]
    assert [c.previous_item_id for c in committed] == [None] + [c.item_id for c in committed[:-1]]
    assert all(e.item_id == c.item_id for e, c in zip(completed, committed, strict=True))
    started = [e for e in events if e.type.endswith("speech_started")]
    stopped = [e for e in events if e.type.endswith("speech_stopped")]
    ends_ms = [0.0]
    for _, wav in sentences:
        ends_ms.append(ends_ms[-1] + (len(pcm16(wav)) / 32 + GAP_S * 1000))
    for index, (start, stop) in enumerate(zip(started, stopped, strict=True)):
        assert ends_ms[index] - 300 <= start.audio_start_ms < stop.audio_end_ms <= ends_ms[index + 1] + 300
    reference = " ".join(text for text, _ in sentences)
    realtime_text = " ".join(c.transcript for c in completed)
    baseline_text = stream_stop_text(shim, [pcm16(wav) for _, wav in sentences])
    one_word = 1 / len(reference.split())
    assert wer(reference, realtime_text) <= wer(reference, baseline_text) + one_word, (
        realtime_text,
        baseline_text,
    )


@pytest.mark.real_weights
def test_beta_async_sdk_manual_commit_at_24_khz(
    shim: Shim, whisper_tiny_en_dir: Path, speech_wav: Path, tmp_path: Path
) -> None:
    """The beta client (``OpenAI-Beta: realtime=v1``, ``transcription_session.*``), async, by hand."""
    pcm = at_24k(speech_wav, tmp_path)

    async def run() -> list[Any]:
        client = openai.AsyncOpenAI(
            api_key=TOKEN,
            base_url=f"{shim.url}/v1",
            websocket_base_url=f"{shim.url.replace('http', 'ws')}/v1",
        )
        async with client.beta.realtime.connect(
            model=MODEL, extra_query={"intent": "transcription"}
        ) as connection:
            events = [await asyncio.wait_for(connection.recv(), 60)]
            await connection.transcription_session.update(
                session={
                    "input_audio_transcription": {"model": MODEL, "language": "en"},
                    "turn_detection": None,
                }
            )
            events.append(await asyncio.wait_for(connection.recv(), 60))
            for audio in chunks(pcm, 24000):
                await connection.input_audio_buffer.append(audio=audio)
            await connection.input_audio_buffer.commit()
            while events[-1].type != "conversation.item.input_audio_transcription.completed":
                events.append(await asyncio.wait_for(connection.recv(), 120))
            return events

    events = asyncio.run(run())
    assert [e.type for e in events[:2]] == ["transcription_session.created", "transcription_session.updated"]
    assert events[1].session.turn_detection is None
    assert events[1].session.input_audio_transcription.model == MODEL
    assert [e.type for e in events[2:]] == [
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert wer(SPEECH_TEXT, events[-1].transcript) <= 0.5, events[-1]


# --- a raw WebSocket -------------------------------------------------------------------------------------
@pytest.mark.real_weights
def test_manual_commit_clear_and_bad_events_keep_the_socket_open(
    shim: Shim, whisper_tiny_en_dir: Path, speech_wav: Path
) -> None:
    """``turn_detection: null`` at 16 kHz: nothing until commit, then one item; bad events are errors."""
    pcm = pcm16(speech_wav)
    with raw_session(shim) as websocket:
        session = {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 16000},
                    "transcription": {"model": MODEL, "language": "en"},
                    "turn_detection": None,
                }
            },
        }
        send(websocket, type="session.update", session=session)
        updated = receive(websocket)
        assert updated["type"] == "session.updated"
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
        assert updated["session"]["audio"]["input"]["format"]["rate"] == 16000

        for audio in chunks(pcm, 16000):
            send(websocket, type="input_audio_buffer.append", audio=audio)
        send(websocket, type="input_audio_buffer.commit", event_id="c1")
        first = until(websocket, "conversation.item.input_audio_transcription.completed")
        assert [e["type"] for e in first] == [
            "input_audio_buffer.committed",
            "conversation.item.created",
            "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.completed",
        ]
        item_id = first[0]["item_id"]
        assert first[0]["previous_item_id"] is None and first[1]["item"]["id"] == item_id
        assert first[1]["item"]["content"] == [{"type": "input_audio", "transcript": None}]
        assert first[-1]["item_id"] == item_id and first[-1]["content_index"] == 0
        assert wer(SPEECH_TEXT, first[-1]["transcript"]) <= 0.5, first[-1]
        assert first[-1]["usage"]["type"] == "duration" and first[-1]["usage"]["seconds"] > 0

        for audio in chunks(pcm[: len(pcm) // 2], 16000):
            send(websocket, type="input_audio_buffer.append", audio=audio)
        send(websocket, type="input_audio_buffer.clear")
        assert receive(websocket)["type"] == "input_audio_buffer.cleared"
        send(websocket, type="input_audio_buffer.commit", event_id="empty")
        error = receive(websocket)
        assert error["type"] == "error", error
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"
        assert error["error"]["event_id"] == "empty" and error["error"]["type"] == "invalid_request_error"

        send(websocket, type="response.create", event_id="e1")
        error = receive(websocket)["error"]
        assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "type", "e1"), error
        send(websocket, type="input_audio_buffer.append", audio="not base64!", event_id="e2")
        error = receive(websocket)["error"]
        assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "audio", "e2"), error
        websocket.send("{not json")
        assert receive(websocket)["error"]["code"] == "invalid_json"
        send(websocket, type="session.update", session={"type": "realtime"})
        assert receive(websocket)["error"]["param"] == "session.type"

        for audio in chunks(pcm, 16000):  # the socket still works: a second item follows the first
            send(websocket, type="input_audio_buffer.append", audio=audio)
        send(websocket, type="input_audio_buffer.commit")
        second = until(websocket, "conversation.item.input_audio_transcription.completed")
        assert second[0]["type"] == "input_audio_buffer.committed"
        assert second[0]["previous_item_id"] == item_id
        assert wer(SPEECH_TEXT, second[-1]["transcript"]) <= 0.5, second[-1]
    assert shim.sidecar.call("models.status")["active_transcriptions"] == 0


@pytest.mark.real_weights
def test_audio_sent_faster_than_real_time_is_waited_for_not_lost(
    shim: Shim, whisper_tiny_en_dir: Path, speech_paragraph_wav: Path, speech_paragraph_text: str
) -> None:
    """Twice the paragraph (over 30 s, the streams' backlog limit) appended at once, then committed."""
    pcm = pcm16(speech_paragraph_wav) * 2
    assert len(pcm) / 32000 > 30
    with raw_session(shim) as websocket:
        turn_off = {"format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None}
        transcription = {"transcription": {"model": MODEL, "language": "en"}}
        send(websocket, type="session.update", session={"audio": {"input": {**turn_off, **transcription}}})
        assert receive(websocket)["type"] == "session.updated"
        for audio in chunks(pcm, 16000, chunk_s=0.5):
            send(websocket, type="input_audio_buffer.append", audio=audio)
        send(websocket, type="input_audio_buffer.commit")
        events = until(websocket, "conversation.item.input_audio_transcription.completed")
    assert [e["type"] for e in events if e["type"] == "error"] == [], events
    assert wer(f"{speech_paragraph_text} {speech_paragraph_text}", events[-1]["transcript"]) <= 0.3, events[
        -1
    ]


def test_the_token_is_required_and_only_transcription_sessions_are_served(shim: Shim) -> None:
    for query in ("?intent=transcription", "?intent=transcription&token=wrong"):
        with pytest.raises(InvalidStatus) as caught:
            ws_connect(realtime_url(shim, query))
        assert caught.value.response.status_code == 401
    with ws_connect(realtime_url(shim, f"?intent=transcription&token={TOKEN}")) as websocket:
        assert receive(websocket)["type"] == "session.created"
    with pytest.raises(InvalidStatus) as caught:
        ws_connect(realtime_url(shim), additional_headers=AUTH, origin="http://evil.example")  # type: ignore[arg-type]
    assert caught.value.response.status_code == 403
    query = "?intent=transcription&model=gpt-realtime"  # a conversation model in the URL: the selected one
    with ws_connect(realtime_url(shim, query), additional_headers=AUTH) as websocket:
        created = receive(websocket)
        model = created["session"]["audio"]["input"]["transcription"]["model"]
        assert model == shim.get("/health").json()["selected_model"], created
    with ws_connect(realtime_url(shim, "?model=gpt-realtime"), additional_headers=AUTH) as websocket:
        error = receive(websocket)
        assert error["type"] == "error" and error["error"]["code"] == "unsupported_intent", error
        with pytest.raises(Exception):  # noqa: B017 - the server closes the socket
            websocket.recv(timeout=10)
    with ws_connect(
        realtime_url(shim), additional_headers={**AUTH, "OpenAI-Beta": "realtime=v1"}
    ) as websocket:  # the beta shape: transcription_session.* events
        created = receive(websocket)
        assert created["type"] == "transcription_session.created", created
        turn = {"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 250, "silence_duration_ms": 700}
        session = {"input_audio_transcription": {"model": "tiny", "language": "en"}, "turn_detection": turn}
        send(websocket, type="transcription_session.update", session=session)
        updated = receive(websocket)
        assert updated["type"] == "transcription_session.updated", updated
        assert updated["session"]["turn_detection"] == turn
        assert updated["session"]["input_audio_transcription"]["model"] == "tiny"
        send(
            websocket,
            type="transcription_session.update",
            session={"input_audio_transcription": {"model": "nope"}},
        )
        assert receive(websocket)["error"]["code"] == "model_not_found"
