"""The OpenAI-compatible HTTP shim end to end: a real sidecar serving on a loopback port, the official
``openai`` SDK and raw HTTP as clients, real engines (tiny random Whisper, real tiny.en for words)."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from asrpro_rpc.errors import ERROR_TYPES
from asrpro_rpc.http.errors import BY_KIND
from tests.support.models import auto_whisper_device
from tests.support.mounts import inside, namespaced, needs_mounts
from tests.support.sidecar import Sidecar
from tests.support.waiting import wait_until

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FAST = {
    "temperature_fallback": False,
    "beam_size": 1,
    "max_new_tokens": 16,
    "condition_on_previous_text": False,
}
"""Form fields (``extra_body`` for the SDK) that keep the tiny random model quick and deterministic."""
SRT_CUE = re.compile(r"^\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n", re.M)


class Shim:
    def __init__(self, sidecar: Sidecar, url: str, tmp_dir: Path) -> None:
        self.sidecar = sidecar
        self.url = url
        self.tmp_dir = tmp_dir

    def sdk(self, api_key: str = TOKEN) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=120)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        return httpx.post(f"{self.url}{path}", headers=headers, timeout=120, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=60, **kwargs)

    def upload_files(self) -> list[Path]:
        return list(self.tmp_dir.rglob("asrpro-upload-*"))


def start_sidecar(tmp: Path, models_dir: Path, *args: str, config: dict[str, Any] | None = None) -> Sidecar:
    (tmp / "config").mkdir(parents=True, exist_ok=True)
    (tmp / "tmp").mkdir(exist_ok=True)
    if config is not None:
        (tmp / "config" / "config.json").write_text(json.dumps({"schema_version": 1, **config}))
    env = {
        "ASRPRO_MODELS_DIR": str(models_dir),
        "ASRPRO_CONFIG_DIR": str(tmp / "config"),
        "ASRPRO_RUNTIME_DIR": str(tmp / "run"),
        "TMPDIR": str(tmp / "tmp"),
        "ASRPRO_LOG_LEVEL": "info",
    }
    return Sidecar("--allow-multiple", *args, env=env)


@pytest.fixture(scope="module")
def shim(
    model_cache_dir: Path, tiny_whisper_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shim]:
    """A sidecar started with ``--http 127.0.0.1:0``, a token, a 1 MB upload limit, the tiny model.

    Its models dir is the session cache: a test that needs real weights asks for their fixture
    (``whisper_tiny_en_dir``), which installs them there; the others run without any weight pack."""
    tmp = tmp_path_factory.mktemp("shim")
    config = {"server": {"api_token": TOKEN, "max_upload_mb": 1}}
    sidecar = start_sidecar(tmp, model_cache_dir, "--http", "127.0.0.1:0", config=config)
    sidecar.call("models.register", {"id": "tiny", "path": str(tiny_whisper_dir)})
    status = sidecar.call("http.status")
    assert status["running"] and status["token_required"] and status["max_upload_mb"] == 1
    yield Shim(sidecar, status["url"], tmp / "tmp")
    sidecar.kill()


def transcribe(shim: Shim, path: Path, **kwargs: Any) -> Any:
    with path.open("rb") as file:
        return shim.sdk().audio.transcriptions.create(
            file=file,
            model=kwargs.pop("model", "tiny"),
            language="en",
            extra_body=kwargs.pop("extra_body", FAST),
            **kwargs,
        )


# --- the official SDK ------------------------------------------------------------------------------
@pytest.mark.real_weights
def test_models_list_and_retrieve(shim: Shim, whisper_tiny_en_dir: Path) -> None:
    models = {m.id: m for m in shim.sdk().models.list()}
    assert {"tiny", "whisper-base", "whisper-tiny.en", "whisper-1"} <= set(models)
    tiny = models["tiny"].model_dump()
    assert tiny["object"] == "model" and tiny["owned_by"] == "user" and isinstance(tiny["ready"], bool)
    assert models["whisper-1"].model_dump()["alias_of"] in models
    assert shim.sdk().models.retrieve("whisper-tiny.en").model_dump()["available"] is True
    with pytest.raises(openai.NotFoundError) as caught:
        shim.sdk().models.retrieve("no-such-model")
    assert caught.value.code == "model_not_found"


@pytest.mark.real_weights
def test_transcriptions_in_every_response_format(
    shim: Shim, whisper_tiny_en_dir: Path, speech_wav: Path
) -> None:
    """Real words (tiny.en), so every format has something to hold."""
    model = "whisper-tiny.en"
    real = {"model": model, "extra_body": {}}  # its default decoding: max_new_tokens would cut words
    plain = transcribe(shim, speech_wav, **real)
    assert "kitchen" in plain.text.lower() and plain.usage.type == "duration"
    segments = plain.model_dump()["segments"]  # the frontend contract: segments beside text in json
    assert segments and set(segments[0]) == {"start", "end", "text"}
    assert " ".join(s["text"].strip() for s in segments) == plain.text
    text = transcribe(shim, speech_wav, **real, response_format="text")
    assert text == f"{plain.text}\n"
    srt = transcribe(shim, speech_wav, **real, response_format="srt")
    assert SRT_CUE.match(srt) and "kitchen" in srt.lower(), srt
    vtt = transcribe(shim, speech_wav, **real, response_format="vtt")
    assert vtt.startswith("WEBVTT\n") and "kitchen" in vtt.lower(), vtt
    verbose = transcribe(
        shim,
        speech_wav,
        **real,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    # the shim names the language as OpenAI does ("english"); transcribe.file keeps ISO codes ("en")
    assert verbose.language == "english" and 3.0 < verbose.duration < 4.5 and verbose.text == plain.text
    assert verbose.segments and all(s.end >= s.start for s in verbose.segments)
    assert plain.usage.seconds == math.ceil(verbose.duration)  # rounded up, as OpenAI bills
    assert verbose.words and "kitchen" in [w.word.strip(" .").lower() for w in verbose.words]
    assert shim.upload_files() == []


@pytest.mark.real_weights
def test_real_words_with_tiny_en(shim: Shim, speech_wav: Path) -> None:
    with speech_wav.open("rb") as file:
        result = shim.sdk().audio.transcriptions.create(
            file=file,
            model="whisper-tiny.en",
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )
    assert "door" in result.text.lower() and "kitchen" in result.text.lower()
    assert result.words and [w.word for w in result.words][:2] == ["Please", "open"]
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and result.words[-1].end <= result.duration + 0.5


@pytest.mark.real_weights
def test_translations(shim: Shim, whisper_tiny_en_dir: Path, speech_wav: Path) -> None:
    """A multilingual model translates (its verbose_json says english); an English-only one transcribes
    instead and says so (header and field), as does whisper-1 when the selected model can't translate."""
    with speech_wav.open("rb") as file:
        raw = shim.sdk().audio.translations.with_raw_response.create(
            file=file, model="tiny", response_format="verbose_json", extra_body=FAST
        )
    result = raw.parse()
    assert result.model_dump()["task"] == "translate" and isinstance(result.text, str)
    assert result.model_dump()["language"] == "english" and "x-asrpro-fallback" not in raw.headers
    with speech_wav.open("rb") as file:
        raw = shim.sdk().audio.translations.with_raw_response.create(file=file, model="whisper-tiny.en")
    assert raw.headers["x-asrpro-fallback"] == "transcription"
    assert "kitchen" in raw.parse().text.lower() and raw.http_response.json()["fallback"] == "transcription"
    shim.sidecar.call("models.select", {"model": "whisper-tiny.en"})
    try:
        with speech_wav.open("rb") as file:
            raw = shim.sdk().audio.translations.with_raw_response.create(
                file=file, model="whisper-1", response_format="verbose_json"
            )
        body = raw.http_response.json()
        assert raw.headers["x-asrpro-fallback"] == "transcription" and body["task"] == "transcribe"
        assert body["language"] == "english" and "kitchen" in body["text"].lower()
    finally:
        shim.sidecar.call("models.select", {"model": "whisper-base"})


@pytest.mark.real_weights
def test_streaming_server_sent_events(shim: Shim, whisper_tiny_en_dir: Path, speech_wav: Path) -> None:
    with speech_wav.open("rb") as file:
        stream = shim.sdk().audio.transcriptions.create(
            file=file, model="whisper-tiny.en", language="en", stream=True
        )
        events = list(stream)
    assert events[-1].type == "transcript.text.done" and "kitchen" in events[-1].text.lower()
    deltas = [e.delta for e in events[:-1]]
    assert deltas and all(e.type == "transcript.text.delta" for e in events[:-1])
    assert "".join(deltas) == events[-1].text
    assert shim.upload_files() == []


@pytest.mark.real_weights
def test_streaming_sends_segments_as_they_are_decoded(
    shim: Shim,
    whisper_tiny_en_dir: Path,
    long_audio_factory: Callable[[float], Path],
    encode_media: Callable[..., Path],
) -> None:
    """5 minutes of speech, so Whisper decodes it in several batches of VAD chunks (a batch's segments come
    together): the first delta reaches the client while later batches are still being decoded, i.e. before
    the sidecar reports the transcription done. A server that buffers the segments and splits them at the
    end sends its first delta after that."""
    speech = encode_media(long_audio_factory(5), "long_5min.ogg", "libopus", 16000)  # < 1 MB limit
    shim.sidecar.call("ping")  # collects the notifications of earlier tests
    before = len(shim.sidecar.notifications)
    done_before_first_delta: list[dict[str, Any]] | None = None
    events = []
    with speech.open("rb") as file:
        stream = shim.sdk().audio.transcriptions.create(
            file=file, model="whisper-tiny.en", language="en", stream=True
        )
        for event in stream:
            events.append(event)
            if event.type == "transcript.text.delta" and done_before_first_delta is None:
                shim.sidecar.call("ping")  # its answer follows every notification sent before now
                done_before_first_delta = [
                    n["params"]
                    for n in shim.sidecar.notifications[before:]
                    if n["method"] == "transcription.progress" and n["params"]["stage"] == "done"
                ]
    assert done_before_first_delta == [], "the first delta came after the transcription had ended"
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    assert len(deltas) >= 2 and events[-1].type == "transcript.text.done"
    assert "".join(deltas).split() == events[-1].text.split()


# --- raw HTTP ---------------------------------------------------------------------------------------
@pytest.mark.real_weights
def test_srt_shortcut(shim: Shim, whisper_tiny_en_dir: Path, speech_wav: Path) -> None:
    with speech_wav.open("rb") as file:
        data = {"model": "whisper-tiny.en"}
        response = shim.post("/v1/srt", files={"file": ("speech.wav", file, "audio/wav")}, data=data)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert SRT_CUE.match(response.text) and "kitchen" in response.text.lower(), response.text


def test_model_loaded_over_rpc_shows_in_health(shim: Shim) -> None:
    shim.sidecar.call("models.load", {"model": "tiny"}, timeout_s=60)
    health = httpx.get(f"{shim.url}/health").json()  # no token needed
    assert health["status"] == "healthy" and health["current_model"] == "tiny" and health["ready"]
    assert health["device"] == auto_whisper_device()  # the device "auto" promises on this machine
    assert health["memory"]["engine_rss_bytes"] > 0 and health["uptime_s"] > 0
    shim.sidecar.call("models.unload")
    health = httpx.get(f"{shim.url}/health").json()
    assert health["current_model"] == health["selected_model"] == "whisper-base" and not health["ready"]
    assert health["device"] == auto_whisper_device()  # known before it loads


def test_settings_model_and_events_websocket(shim: Shim, speech_wav: Path) -> None:
    shim.sidecar.call("models.unload")
    with ws_connect(f"{shim.url.replace('http', 'ws')}/v1/events", additional_headers=AUTH) as websocket:
        assert json.loads(websocket.recv(timeout=10)) == {"type": "connected"}
        response = shim.post("/v1/settings/model", json={"model_id": "tiny"})
        assert response.json() == {"status": "success", "model": "tiny", "ready": True}
        transcribe(shim, speech_wav, model="whisper-1")  # whisper-1 now means tiny
        seen: list[dict[str, Any]] = []
        while not any(e["type"] == "transcription_progress" and e["progress"] == 1.0 for e in seen):
            seen.append(json.loads(websocket.recv(timeout=30)))
    loads = [e for e in seen if e["type"] == "model_progress"]
    assert loads and loads[-1]["model_id"] == "tiny" and loads[-1]["progress"] == 1.0
    done = [e for e in seen if e["type"] == "transcription_progress"][-1]
    assert done["request_id"].startswith("http-") and done["file_id"].startswith("file-")
    assert done["stage"] == "done" and loads[-1]["stage"] == "done"
    assert httpx.get(f"{shim.url}/health").json()["selected_model"] == "tiny"
    shim.sidecar.call("models.select", {"model": "whisper-base"})


def test_token_is_enforced(shim: Shim) -> None:
    response = httpx.get(f"{shim.url}/v1/models")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(f"{shim.url}/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401
    with pytest.raises(openai.AuthenticationError):
        shim.sdk(api_key="wrong").models.list()
    assert httpx.get(f"{shim.url}/health").status_code == 200
    for query in ("", "?token=wrong"):
        with pytest.raises(InvalidStatus) as refused:  # the handshake is refused, as OpenAI's: 401
            ws_connect(f"{shim.url.replace('http', 'ws')}/v1/events{query}")
        assert refused.value.response.status_code == 401
    with ws_connect(f"{shim.url.replace('http', 'ws')}/v1/events?token={TOKEN}") as websocket:
        assert json.loads(websocket.recv(timeout=10)) == {"type": "connected"}


def test_browser_origins_and_foreign_hosts_are_refused(shim: Shim) -> None:
    response = shim.get("/v1/models", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "origin_not_allowed"
    response = shim.get("/v1/models", headers={"Host": "evil.example"})
    assert response.status_code == 421


def test_origin_and_host_are_checked_on_uploads_and_the_websocket(bare: Sidecar, speech_wav: Path) -> None:
    """Every route, not only GET: the upload routes and the events WebSocket refuse a foreign Origin or
    Host; an origin listed in cors_origins is served (CORS headers and all) on each of them."""
    allowed = "https://app.example"
    url = bare.call("http.start", {"port": 0, "cors_origins": [allowed]})["url"]
    audio = speech_wav.read_bytes()

    def upload(route: str, headers: dict[str, str]) -> httpx.Response:
        files = {"file": ("s.wav", audio, "audio/wav")}
        return httpx.post(
            f"{url}{route}", files=files, data={"model": "tiny", **FAST}, headers=headers, timeout=120
        )

    for route in ("/v1/audio/transcriptions", "/v1/audio/translations", "/v1/srt"):
        refused = upload(route, {"Origin": "https://evil.example"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed", route
        foreign = upload(route, {"Host": "evil.example"})
        assert foreign.status_code == 421 and foreign.json()["error"]["code"] == "invalid_host", route
        served = upload(route, {"Origin": allowed})
        assert served.status_code == 200, (route, served.text)
        assert served.headers["access-control-allow-origin"] == allowed, route
    events = f"{url.replace('http', 'ws')}/v1/events"
    with pytest.raises(InvalidStatus) as refused_ws:  # the handshake is refused
        ws_connect(events, origin="https://evil.example")  # type: ignore[arg-type]
    assert refused_ws.value.response.status_code == 403
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock, pytest.raises(InvalidStatus) as foreign_ws:
        # a rebinding page: the URL's host (so the one Host header) is not loopback
        ws_connect(f"ws://evil.example:{port}/v1/events", sock=sock)
    assert foreign_ws.value.response.status_code == 421
    with ws_connect(events, origin=allowed) as websocket:  # type: ignore[arg-type]
        assert json.loads(websocket.recv(timeout=10)) == {"type": "connected"}


def test_oversize_upload_gets_413_and_leaves_no_temp_file(shim: Shim) -> None:
    big = os.urandom(1024 * 1024 + 10)
    with pytest.raises(openai.APIStatusError) as caught:
        shim.sdk().audio.transcriptions.create(file=("big.wav", big, "audio/wav"), model="tiny")
    assert caught.value.status_code == 413 and caught.value.code == "file_too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        boundary = b"--b0undary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\n\r\n'
        for _ in range(40):
            yield os.urandom(64 * 1024)
        yield b"\r\n" + boundary + b"--\r\n"

    response = shim.post(
        "/v1/audio/transcriptions",
        content=chunked(),
        headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert response.status_code == 413
    assert shim.upload_files() == []


@pytest.mark.parametrize(
    ("data", "status", "code", "param"),
    [
        ({"model": "tiny", "response_format": "xml"}, 400, "invalid_value", "response_format"),
        ({"model": "tiny", "temperature": "2"}, 400, "invalid_value", "temperature"),
        ({"model": "tiny", "temperature": "warm"}, 400, "invalid_value", "temperature"),
        ({"model": "tiny", "language": "xx"}, 400, "invalid_params", "language"),
        ({"model": "tiny", "colour": "red"}, 400, "unknown_parameter", "colour"),
        (
            {"model": "tiny", "timestamp_granularities[]": "word"},
            400,
            "invalid_value",
            "timestamp_granularities",
        ),
        ({"model": "no-such-model"}, 404, "model_not_found", None),
    ],
)
def test_bad_fields(
    shim: Shim, speech_wav: Path, data: dict[str, str], status: int, code: str, param: str
) -> None:
    with speech_wav.open("rb") as file:
        response = shim.post("/v1/audio/transcriptions", files={"file": ("s.wav", file)}, data=data)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["param"] == param and error["message"]


def test_bad_uploads(shim: Shim, not_audio: Path, video_only: Path, empty_file: Path) -> None:
    def send(path: Path, name: str) -> httpx.Response:
        with path.open("rb") as file:
            return shim.post("/v1/audio/transcriptions", files={"file": (name, file)}, data={"model": "tiny"})

    assert send(not_audio, "fake.wav").json()["error"]["code"] == "unsupported_media_type"
    assert send(not_audio, "fake.wav").status_code == 415
    assert send(video_only, "video.mp4").json()["error"]["code"] == "no_audio_stream"
    assert send(empty_file, "empty.wav").status_code == 400
    assert "'fake.wav'" in send(not_audio, "fake.wav").json()["error"]["message"]  # never the temp path
    response = shim.post("/v1/audio/transcriptions", json={"model": "tiny"})
    assert response.status_code == 415 and response.json()["error"]["param"] == "file"
    response = shim.post("/v1/audio/transcriptions", data={"model": "tiny"}, files={"other": ("a", b"x")})
    assert response.status_code == 400
    response = shim.post("/v1/audio/translations", files={"file": ("s.wav", b"RIFF")})  # model required
    assert response.status_code == 400 and response.json()["error"]["param"] == "model"
    response = shim.post("/v1/audio/transcriptions", files={"model": (None, "tiny")})  # multipart, no file
    assert response.status_code == 400 and response.json()["error"]["param"] == "file"
    assert shim.get("/v1/nowhere").json()["error"]["code"] == "not_found"
    assert shim.upload_files() == []


def test_every_service_error_kind_has_an_http_mapping() -> None:
    assert {t.kind for t in ERROR_TYPES} <= set(BY_KIND)


# --- lifecycle: start, stop, ports ------------------------------------------------------------------
@pytest.fixture
def bare(tmp_path: Path, model_cache_dir: Path, tiny_whisper_dir: Path) -> Iterator[Sidecar]:
    """A sidecar without the shim running (no token)."""
    sidecar = start_sidecar(tmp_path, model_cache_dir)
    sidecar.call("models.register", {"id": "tiny", "path": str(tiny_whisper_dir)})
    yield sidecar
    sidecar.kill()


def test_port_in_use_and_remote_binding(bare: Sidecar) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        error = bare.error("http.start", {"port": port})
        assert error["data"]["kind"] == "address_in_use" and str(port) in error["message"]
        assert error["data"]["next_free_port"] > port
        status = bare.call("http.start", {"port": port, "next_free_port": True})
        assert status["running"] and status["port"] > port
    assert bare.error("http.start", {"port": 0})["data"]["kind"] == "busy"
    assert bare.call("http.stop")["running"] is False
    error = bare.error("http.start", {"host": "0.0.0.0", "port": 0})
    assert error["data"]["kind"] == "invalid_params" and "allow_remote" in error["message"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(status["url"] + "/health")


def test_graceful_stop_finishes_in_flight_and_refuses_new(bare: Sidecar, speech_wav: Path) -> None:
    url = bare.call("http.start", {"port": 0})["url"]
    release = threading.Event()
    outcome: dict[str, httpx.Response] = {}
    audio = speech_wav.read_bytes()

    def slow_body() -> Iterator[bytes]:
        yield b'--bnd\r\nContent-Disposition: form-data; name="model"\r\n\r\ntiny\r\n'
        for name, value in FAST.items():
            part = f'--bnd\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            yield part.encode().lower()
        yield b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="s.wav"\r\n\r\n' + audio[:1000]
        release.wait(30)
        yield audio[1000:] + b"\r\n--bnd--\r\n"

    def send() -> None:
        outcome["slow"] = httpx.post(
            f"{url}/v1/audio/transcriptions",
            content=slow_body(),
            headers={"Content-Type": "multipart/form-data; boundary=bnd"},
            timeout=120,
        )

    sender = threading.Thread(target=send)
    sender.start()
    wait_until(lambda: bare.call("http.status")["in_flight_requests"] >= 1, what="the request in flight")
    stop_id = bare.request("http.stop", {"grace_s": 60})
    refused = wait_until(
        lambda: (r := httpx.get(f"{url}/v1/models")).status_code == 503 and r, what="new requests refused"
    )
    assert refused.json()["error"]["code"] == "shutting_down"
    assert httpx.get(f"{url}/health").json()["status"] == "shutting_down"
    release.set()
    sender.join(120)
    assert outcome["slow"].status_code == 200, outcome["slow"].text
    assert bare.response(stop_id)["result"]["running"] is False


def test_schemathesis_against_the_openapi_document(shim: Shim) -> None:
    import schemathesis
    from hypothesis import HealthCheck, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(f"{shim.url}/openapi.json", headers=AUTH)
    failures: list[str] = []
    statuses: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            response = case.call_and_validate(
                headers=AUTH,
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )
            statuses.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)

        try:
            operation.as_strategy  # noqa: B018 - the operation is well-formed
            from hypothesis import given

            given(case=operation.as_strategy())(check)()
        except Exception as exc:  # collect every operation's failure
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n".join(failures)
    assert len(statuses) == 8 and all(statuses.values())  # every operation was exercised
    assert shim.upload_files() == []


def test_listening_socket_turns_nagle_off() -> None:
    """Keep-alive responses must not wait for the client's delayed ACK (it cost ~40 ms a request)."""
    from asrpro_rpc.http.controller import bind_socket

    with bind_socket("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP  # asyncio sets TCP_NODELAY only on sockets that say so
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        with socket.create_connection(sock.getsockname()) as client:
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert client


# --- hostile uploads and faults --------------------------------------------------------------------
def test_unterminated_multipart_body_is_refused(shim: Shim, empty_file: Path) -> None:
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="model"\r\n\r\ntiny\r\n'
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\n\r\n'
        + os.urandom(4096)
    )
    response = shim.post(
        "/v1/audio/transcriptions",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "incomplete_form"
    with empty_file.open("rb") as file:  # errors about an upload never show the server's temp path
        response = shim.post(
            "/v1/audio/transcriptions", files={"file": ("e.wav", file)}, data={"model": "tiny"}
        )
    assert response.status_code == 400
    assert str(shim.tmp_dir) not in response.text and "uploaded file" in response.json()["error"]["message"]
    assert shim.upload_files() == []


@needs_mounts
def test_upload_to_a_full_disk_answers_507_without_the_temp_path(tmp_path: Path) -> None:
    """The sidecar's temp dir on a 256 KiB tmpfs: a 900 KB upload can't be stored."""
    (tmp_path / "config").mkdir()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    (tmp_path / "config" / "config.json").write_text(
        json.dumps({"schema_version": 1, "server": {"api_token": TOKEN}})
    )
    env = {"ASRPRO_CONFIG_DIR": str(tmp_path / "config"), "TMPDIR": str(scratch), "ASRPRO_LOG_LEVEL": "info"}
    argv = namespaced("--allow-multiple", "--http", "127.0.0.1:0", tmpfs=[(scratch, 256 << 10)])
    sidecar = Sidecar(env=env, argv=argv)
    try:
        url = wait_until(lambda: sidecar.call("http.status")["url"])
        response = httpx.post(
            f"{url}/v1/audio/transcriptions",
            headers=AUTH,
            files={"file": ("big.wav", os.urandom(900_000))},
            data={"model": "whisper-1"},
            timeout=60,
        )
        assert response.status_code == 507, response.text
        error = response.json()["error"]
        assert error["code"] == "disk_full" and str(scratch) not in error["message"]
        assert not list(inside(sidecar.process.pid, scratch).rglob("asrpro-upload-*"))
        assert sidecar.call("ping")["pong"]
    finally:
        sidecar.kill()


def test_http_start_takes_a_bracketed_ipv6_host(bare: Sidecar) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    status = bare.call("http.start", {"host": "[::1]", "port": 0})
    assert status["url"] == f"http://[::1]:{status['port']}"
    assert httpx.get(f"{status['url']}/health", timeout=10).status_code == 200
