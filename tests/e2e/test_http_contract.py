"""The contracts hosts are written against, through the real process: the product's frontend API
(``/health``, segments in ``json``, ``/v1/events`` for every event, correlation ids), OpenAI's documented
behaviour (aliases, model listing), the async SDK, connection limits, and the headless server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from tests.e2e.test_http import AUTH, FAST, TOKEN, Shim, shim, start_sidecar, transcribe
from tests.support.models import auto_whisper_device
from tests.support.sidecar import repo_root, sidecar_env

__all__ = ["shim"]  # the module-scoped sidecar fixture
RPC_FAST = {"beam_size": 1, "max_new_tokens": 16, "condition_on_previous_text": False, "temperature": 0.0}


@contextmanager
def events_socket(shim: Shim) -> Iterator[ClientConnection]:
    with ws_connect(f"{shim.url.replace('http', 'ws')}/v1/events", additional_headers=AUTH) as websocket:
        assert json.loads(websocket.recv(timeout=10)) == {"type": "connected"}
        yield websocket


def collect(websocket: ClientConnection, until: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Events up to and including the first one ``until`` accepts."""
    seen: list[dict[str, Any]] = []
    while not seen or not until(seen[-1]):
        seen.append(json.loads(websocket.recv(timeout=60)))
    return seen


def is_final(event: dict[str, Any]) -> bool:
    return event.get("stage") in ("done", "failed", "cancelled")


# --- /health and correlation ------------------------------------------------------------------------
def test_health_get_and_head_before_any_load(shim: Shim) -> None:
    shim.sidecar.call("models.unload")
    response = httpx.get(f"{shim.url}/health")
    health = response.json()
    assert response.status_code == 200 and health["status"] == "healthy"
    assert health["current_model"] == "whisper-base" and health["ready"] is False
    assert health["device"] == auto_whisper_device()
    head = httpx.head(f"{shim.url}/health")
    assert head.status_code == 200 and head.content == b"" and head.headers["x-request-id"]


def test_every_response_carries_a_request_id(shim: Shim) -> None:
    ids = [
        httpx.get(f"{shim.url}/health").headers["x-request-id"],
        httpx.get(f"{shim.url}/v1/models").headers["x-request-id"],  # 401
        shim.get("/v1/nowhere").headers["x-request-id"],  # 404
    ]
    assert all(re.fullmatch(r"http-[0-9a-f]{12}", i) for i in ids) and len(set(ids)) == 3
    echoed = shim.get("/v1/models", headers={"x-request-id": "trace-42.a"})
    assert echoed.headers["x-request-id"] == "trace-42.a"
    assert (
        shim.get("/v1/models", headers={"x-request-id": "bad id, spaced"})
        .headers["x-request-id"]
        .startswith("http-")
    )


def test_file_id_and_request_id_reach_the_progress_events(shim: Shim, speech_wav: Path) -> None:
    with events_socket(shim) as websocket:
        with speech_wav.open("rb") as file:
            response = shim.post(
                "/v1/audio/transcriptions",
                files={"file": ("speech.wav", file)},
                data={"model": "tiny", "file_id": "recording-7", **FAST},
            )
        assert response.status_code == 200, response.text
        assert response.headers["x-file-id"] == "recording-7"
        seen = collect(websocket, lambda e: e["type"] == "transcription_progress" and is_final(e))
    assert seen[-1]["file_id"] == "recording-7" and seen[-1]["stage"] == "done"
    assert seen[-1]["request_id"] == response.headers["x-request-id"]
    with speech_wav.open("rb") as file:
        response = shim.post("/v1/audio/transcriptions", files={"file": file}, data={"model": "tiny", **FAST})
    assert re.fullmatch(r"file-[0-9a-f]{16}", response.headers["x-file-id"])


# --- /v1/events carries every event, each operation ending with a final frame -------------------------
def test_events_show_work_started_over_stdio(shim: Shim, speech_wav: Path, not_audio: Path) -> None:
    shim.sidecar.call("models.unload")
    with events_socket(shim) as websocket:
        shim.sidecar.call("models.load", {"model": "tiny"}, timeout_s=60)
        loads = collect(websocket, lambda e: e["type"] == "model_progress" and is_final(e))
        assert loads[-1] == {**loads[-1], "model_id": "tiny", "stage": "done", "progress": 1.0}
        request_id = shim.sidecar.request(
            "transcribe.file", {"path": str(speech_wav), "model": "tiny", **RPC_FAST}
        )
        assert "text" in shim.sidecar.response(request_id)["result"]
        seen = collect(websocket, lambda e: e["type"] == "transcription_progress" and is_final(e))
        assert seen[-1]["request_id"] == request_id and seen[-1]["stage"] == "done"
        assert seen[-1]["file_id"] == str(speech_wav)
        failed_id = shim.sidecar.request("transcribe.file", {"path": str(not_audio), "model": "tiny"})
        assert shim.sidecar.response(failed_id)["error"]["data"]["kind"] == "audio_unreadable"
        failed = collect(websocket, lambda e: e["type"] == "transcription_progress" and is_final(e))
    assert failed[-1]["request_id"] == failed_id
    assert failed[-1]["stage"] == "failed" and failed[-1]["error"] == "audio_unreadable"


def test_a_cancelled_transcription_ends_with_a_cancelled_frame(
    shim: Shim, long_audio_factory: Callable[[float], Path]
) -> None:
    long_audio = long_audio_factory(5)
    shim.sidecar.call("models.load", {"model": "tiny"}, timeout_s=60)
    with events_socket(shim) as websocket:
        request_id = shim.sidecar.request(
            "transcribe.file", {"path": str(long_audio), "model": "tiny", **RPC_FAST}
        )
        collect(websocket, lambda e: e.get("request_id") == request_id and e["stage"] == "transcribing")
        shim.sidecar.notify("$/cancelRequest", {"id": request_id})
        assert shim.sidecar.response(request_id, timeout_s=60)["error"]["code"] == -32800
        ended = collect(websocket, lambda e: e.get("request_id") == request_id and is_final(e))
    assert ended[-1]["stage"] == "cancelled" and ended[-1]["progress"] < 1.0


def test_an_implicit_load_reports_model_progress(shim: Shim, speech_wav: Path) -> None:
    shim.sidecar.call("models.unload")
    with events_socket(shim) as websocket:
        transcribe(shim, speech_wav, model="tiny")
        seen = collect(websocket, lambda e: e["type"] == "transcription_progress" and is_final(e))
    loads = [e for e in seen if e["type"] == "model_progress"]
    assert loads and loads[-1]["model_id"] == "tiny" and loads[-1]["stage"] == "done"
    stages = [e["stage"] for e in seen if e["type"] == "transcription_progress"]
    assert stages[0] == "loading_model" and stages[-1] == "done"


def test_a_failed_load_ends_with_a_failed_frame(shim: Shim, tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"  # the files a CTranslate2 model has, with nothing in them
    broken.mkdir()
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.json"):
        (broken / name).write_text("{}")
    shim.sidecar.call("models.register", {"id": "broken", "path": str(broken)})
    try:
        with events_socket(shim) as websocket:
            failed = shim.sidecar.request("models.load", {"model": "broken"})
            kind = shim.sidecar.response(failed, timeout_s=60)["error"]["data"]["kind"]
            loads = collect(websocket, lambda e: e["type"] == "model_progress" and is_final(e))
    finally:
        shim.sidecar.call("models.unregister", {"id": "broken"})
    assert loads[-1]["model_id"] == "broken" and loads[-1]["stage"] == "failed"
    assert loads[-1]["error"] == kind and loads[-1]["progress"] < 1.0


# --- models: aliases, optional model, listing ---------------------------------------------------------
def test_openai_model_names_resolve_like_whisper_1(shim: Shim, speech_wav: Path) -> None:
    shim.sidecar.call("models.select", {"model": "tiny"})
    try:
        listed = {m.id: m.model_dump() for m in shim.sdk().models.list()}
        for alias in ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"):
            assert listed[alias]["alias_of"] == "tiny", alias
        result = transcribe(shim, speech_wav, model="gpt-4o-mini-transcribe")
        assert isinstance(result.text, str)
        with speech_wav.open("rb") as file:  # `model` left out: the selected model
            response = shim.post("/v1/audio/transcriptions", files={"file": file}, data=FAST)
        assert response.status_code == 200 and "segments" in response.json(), response.text
    finally:
        shim.sidecar.call("models.select", {"model": "whisper-base"})


def test_model_list_puts_available_first_and_filters(shim: Shim) -> None:
    models = shim.get("/v1/models").json()["data"]
    own = [m for m in models if "alias_of" not in m]
    flags = [m["available"] for m in own]
    assert flags == sorted(flags, reverse=True) and True in flags and False in flags
    available = shim.get("/v1/models", params={"available": "true"}).json()["data"]
    assert available and all(m["available"] for m in available)
    assert {m["id"] for m in available if "alias_of" not in m} == {m["id"] for m in own if m["available"]}
    assert shim.get("/v1/models", params={"available": "maybe"}).status_code == 400


# --- curl as OpenAI's API reference writes it -----------------------------------------------------------
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_as_in_openais_reference(shim: Shim, speech_wav: Path) -> None:
    fields = [arg for name, value in FAST.items() for arg in ("-F", f"{name}={str(value).lower()}")]
    result = subprocess.run(
        ["curl", "-sS", "-D", "-", f"{shim.url}/v1/audio/transcriptions"]
        + ["-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: multipart/form-data"]
        + ["-F", f"file=@{speech_wav}", "-F", "model=tiny", *fields],
        capture_output=True,
        text=True,
        timeout=120,
    )
    head, _, body = result.stdout.partition("\n\n")  # text mode: the \r\n are \n
    assert head.startswith("HTTP/1.1 200") and "x-request-id: http-" in head.lower(), result.stdout
    transcript = json.loads(body)
    assert isinstance(transcript["text"], str) and transcript["usage"]["type"] == "duration"


# --- the async SDK ------------------------------------------------------------------------------------
def test_async_sdk(shim: Shim, speech_wav: Path) -> None:
    async def run() -> tuple[Any, Any, list[str]]:
        client = openai.AsyncOpenAI(base_url=f"{shim.url}/v1", api_key=TOKEN, max_retries=0, timeout=120)
        async with client:
            audio = speech_wav.read_bytes()
            plain, verbose = await asyncio.gather(
                client.audio.transcriptions.create(
                    file=("a.wav", audio), model="tiny", language="en", extra_body=FAST
                ),
                client.audio.transcriptions.create(
                    file=("b.wav", audio),
                    model="tiny",
                    response_format="verbose_json",
                    timestamp_granularities=["segment"],
                    extra_body=FAST,
                ),
            )
            models = [m.id async for m in client.models.list()]
            with pytest.raises(openai.BadRequestError):  # as OpenAI: granularities need verbose_json
                await client.audio.transcriptions.create(
                    file=("c.wav", audio), model="tiny", timestamp_granularities=["word"]
                )
        return plain, verbose, models

    plain, verbose, models = asyncio.run(run())
    assert isinstance(plain.text, str) and verbose.duration > 0 and "gpt-4o-transcribe" in models


# --- connection limits (issue 15) ---------------------------------------------------------------------
@pytest.fixture
def limited(tmp_path: Path, model_cache_dir: Path) -> Iterator[str]:
    config = {"server": {"header_timeout_s": 1.0, "body_timeout_s": 1.0, "max_connections_per_client": 8}}
    sidecar = start_sidecar(tmp_path, model_cache_dir, "--http", "127.0.0.1:0", config=config)
    yield sidecar.call("http.status")["url"]
    sidecar.kill()


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(30)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_idle_connections_never_lock_out_health(limited: str) -> None:
    port = int(limited.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(140)]
    try:
        for _ in range(3):  # each new connection pushes out an idle one
            assert httpx.get(f"{limited}/health", timeout=10).json()["status"] == "healthy"
        assert _closed_by_server(idle[-1])  # a connection that never sends a request head is closed
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # trickled head, never finished
        assert _closed_by_server(slow)
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(
            b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n"
        )  # the body stalls
        stalled.settimeout(30)
        answer = b""
        while chunk := stalled.recv(65536):
            answer += chunk
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400")  # cut off (a disconnect), never held
        assert httpx.get(f"{limited}/health", timeout=10).status_code == 200
    finally:
        for sock in idle:
            sock.close()


# --- the headless server ------------------------------------------------------------------------------
def _headless(tmp: Path, models_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **sidecar_env(tmp, models_dir=models_dir), "ASRPRO_LOG_LEVEL": "info"}
    return subprocess.Popen(
        [sys.executable, "-m", "asrpro_rpc", "serve", *args],
        cwd=repo_root(),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _listening_url(process: subprocess.Popen[bytes]) -> str:
    assert process.stderr is not None
    for line in process.stderr:
        record = json.loads(line)
        if record.get("msg") == "HTTP shim listening":
            return str(record["url"])
    raise AssertionError(f"the headless server ended without listening (exit {process.wait()})")


def test_headless_serves_until_sigterm_and_keeps_the_instance_lock(
    tmp_path: Path, model_cache_dir: Path
) -> None:
    server = _headless(tmp_path, model_cache_dir, "--http", "127.0.0.1:0", "--no-stdio")
    try:
        url = _listening_url(server)
        assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "healthy"
        assert server.poll() is None  # stdin is /dev/null (at EOF): still serving
        second = _headless(tmp_path, model_cache_dir, "--http", "127.0.0.1:0", "--no-stdio")
        _, second_err = second.communicate(timeout=60)
        assert second.returncode == 3 and b"already" in second_err.lower()  # the single-instance lock
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        out = server.stdout.read() if server.stdout else b""
        assert out == b""  # logs go to stderr
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=5)
    lonely = _headless(tmp_path, model_cache_dir, "--no-stdio")
    _, err = lonely.communicate(timeout=60)
    assert lonely.returncode == 2 and b"--http" in err


# --- the Node SDK -------------------------------------------------------------------------------------
NODE_DIR = Path(__file__).parent / "node"


@pytest.mark.skipif(
    not (NODE_DIR / "node_modules" / "openai").is_dir(),
    reason="the Node openai SDK is not installed (npm ci --prefix tests/e2e/node; .ci/run does it)",
)
def test_node_openai_sdk(shim: Shim, speech_wav: Path) -> None:
    result = subprocess.run(
        ["node", str(NODE_DIR / "openai_sdk.mjs"), f"{shim.url}/v1", TOKEN, str(speech_wav)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert isinstance(report["text"], str) and report["segments"] >= 0 and "whisper-1" in report["models"]
    assert report["verbose_language"] == "english" and report["status_of_bad_request"] == 400
