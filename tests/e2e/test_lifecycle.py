"""Selection and shutdown that lose nothing, through the real process: a failed selection changes nothing,
and shutdown, ``exit`` and stdin EOF answer every request received (state-changing ones always finish)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.support.models import TINY_FAST as FAST
from tests.support.sidecar import Sidecar, sidecar_env

HTTP_FAST = {"temperature_fallback": "false", "beam_size": "1", "max_new_tokens": "16", "language": "en"}
OFFLINE_MISSING = "whisper-small"
"""A built-in model that is neither cached nor installed as a weight pack: offline, it can't load."""


def _env(tmp: Path, model_cache: Path, **extra: str) -> dict[str, str]:
    return sidecar_env(tmp, models_dir=model_cache, ASRPRO_OFFLINE="1", **extra)


def _line(request_id: Any, method: str, params: Any = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return msgspec.json.encode(message) + b"\n"


def _saved_settings(tmp: Path) -> dict[str, Any]:
    return json.loads((tmp / "config" / "config.json").read_text())


@pytest.fixture
def tiny(tmp_path: Path, model_cache: Path, tiny_whisper_dir: Path) -> Iterator[Sidecar]:
    """An offline sidecar with the tiny random Whisper registered as ``tiny`` and selected."""
    process = Sidecar("--allow-multiple", env=_env(tmp_path, model_cache))
    process.call("models.register", {"id": "tiny", "path": str(tiny_whisper_dir)})
    process.call("models.select", {"model": "tiny"})
    yield process
    process.kill()


def _assert_selected(sidecar: Sidecar, tmp: Path, model_id: str, speech_wav: Path) -> None:
    """``model_id`` is the selection in models.list, the settings (memory and disk), and for whisper-1."""
    selected = [m["id"] for m in sidecar.call("models.list") if m["selected"]]
    assert selected == [model_id]
    assert sidecar.call("config.get", {"category": "model"})["model"]["selected_id"] == model_id
    assert _saved_settings(tmp)["model"]["selected_id"] == model_id
    result = sidecar.call(
        "transcribe.file", {"path": str(speech_wav), "model": "whisper-1", **FAST}, timeout_s=120
    )
    assert result["model"] == model_id


# --- selection -------------------------------------------------------------------------------------
def test_failed_or_invalid_select_keeps_the_previous_selection(
    tiny: Sidecar, tmp_path: Path, speech_wav: Path
) -> None:
    error = tiny.error("models.select", {"model": OFFLINE_MISSING, "load": True}, timeout_s=60)
    assert error["data"]["kind"] == "model_not_downloaded", error
    _assert_selected(tiny, tmp_path, "tiny", speech_wav)
    error = tiny.error("models.select", {"model": "no-such-model"})
    assert error["data"]["kind"] == "model_not_found"
    error = tiny.error("config.set", {"values": {"model": {"selected_id": "no-such-model"}}})
    assert error["data"]["kind"] == "model_not_found"
    _assert_selected(tiny, tmp_path, "tiny", speech_wav)
    assert tiny.call("models.select", {"model": "whisper-tiny.en", "load": True}, timeout_s=60)["ready"]
    assert _saved_settings(tmp_path)["model"]["selected_id"] == "whisper-tiny.en"


def test_failed_http_select_keeps_the_previous_selection(
    tmp_path: Path, model_cache: Path, tiny_whisper_dir: Path, speech_wav: Path
) -> None:
    sidecar = Sidecar("--allow-multiple", "--http", "127.0.0.1:0", env=_env(tmp_path, model_cache))
    try:
        sidecar.call("models.register", {"id": "tiny", "path": str(tiny_whisper_dir)})
        url = sidecar.call("http.status")["url"]
        chosen = httpx.post(f"{url}/v1/settings/model", json={"model_id": "tiny", "load": False}, timeout=60)
        assert chosen.json() == {"status": "success", "model": "tiny", "ready": False}
        for model_id, status in ((OFFLINE_MISSING, 404), ("no-such-model", 404)):
            response = httpx.post(f"{url}/v1/settings/model", json={"model_id": model_id}, timeout=60)
            assert response.status_code == status, response.text
            assert httpx.get(f"{url}/health").json()["selected_model"] == "tiny"
            with speech_wav.open("rb") as audio:
                transcript = httpx.post(
                    f"{url}/v1/audio/transcriptions",
                    data={"model": "whisper-1", "response_format": "verbose_json", **HTTP_FAST},
                    files={"file": audio},
                    timeout=120,
                )
            assert transcript.status_code == 200, transcript.text
        _assert_selected(sidecar, tmp_path, "tiny", speech_wav)
    finally:
        sidecar.kill()


# --- shutdown -----------------------------------------------------------------------------------------
def test_config_set_then_shutdown_in_one_write_persists(tiny: Sidecar, tmp_path: Path) -> None:
    values = {"model": {"auto_unload_timeout_s": 42}}
    tiny.write(
        _line("set", "config.set", {"values": values}) + _line("bye", "shutdown") + _line("late", "ping")
    )
    assert tiny.response("set")["result"]["model"]["auto_unload_timeout_s"] == 42
    assert tiny.response("bye") == {"jsonrpc": "2.0", "id": "bye", "result": None}
    late = tiny.response("late")["error"]
    assert (late["code"], late["data"]["kind"]) == (-32000, "shutting_down")
    tiny.notify("exit")
    assert tiny.process.wait(10) == 0
    assert _saved_settings(tmp_path)["model"]["auto_unload_timeout_s"] == 42


def test_transcription_piped_before_shutdown_answers(tiny: Sidecar, speech_wav: Path) -> None:
    params = {"path": str(speech_wav), "model": "tiny", "response_format": "json", **FAST}
    tiny.write(
        _line("job", "transcribe.file", params)
        + _line("bye", "shutdown")
        + b'{"jsonrpc":"2.0","method":"exit"}\n'
    )
    assert isinstance(tiny.response("job", timeout_s=120)["result"]["text"], str)
    assert tiny.response("bye")["result"] is None
    assert tiny.process.wait(10) == 0


def test_short_grace_cancels_transcriptions_never_state_changes(
    tiny: Sidecar, tmp_path: Path, long_audio_factory: Callable[[float], Path]
) -> None:
    job = tiny.request("transcribe.file", {"path": str(long_audio_factory(5.0)), "model": "tiny", **FAST})
    _wait_for_stage(tiny, job, "transcribing")
    # The switch waits for the transcription to release the model: it is still running at the deadline.
    tiny.write(
        _line("switch", "models.select", {"model": "whisper-tiny.en", "load": True})
        + _line("bye", "shutdown", {"grace_s": 0})
    )
    cancelled = tiny.response(job, timeout_s=60)["error"]
    assert (cancelled["code"], cancelled["data"]["kind"]) == (-32800, "cancelled")
    switched = tiny.response("switch", timeout_s=120)["result"]
    assert switched["id"] == "whisper-tiny.en" and switched["selected"] and switched["ready"]
    assert tiny.response("bye", timeout_s=60)["result"] is None
    tiny.notify("exit")
    assert tiny.process.wait(10) == 0
    assert _saved_settings(tmp_path)["model"]["selected_id"] == "whisper-tiny.en"


def test_cancel_request_never_interrupts_a_state_change(tiny: Sidecar, tmp_path: Path) -> None:
    tiny.write(
        _line("set", "config.set", {"values": {"model": {"auto_unload_timeout_s": 7}}})
        + b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"set"}}\n'
    )
    assert tiny.response("set")["result"]["model"]["auto_unload_timeout_s"] == 7
    assert _saved_settings(tmp_path)["model"]["auto_unload_timeout_s"] == 7


def test_piped_requests_then_eof_are_all_answered(
    tmp_path: Path, model_cache: Path, tiny_whisper_dir: Path
) -> None:
    """``printf '<requests>' | asrpro serve``: every request answers; state-changing ones finish (even a
    select that loads for longer than EOF's grace); a long one that isn't is cancelled after the grace."""
    script = b"".join(
        [
            _line(1, "ping"),
            _line(2, "models.register", {"id": "tiny", "path": str(tiny_whisper_dir)}),
            _line(3, "config.set", {"values": {"model": {"auto_unload_timeout_s": 99}}}),
            _line(4, "models.select", {"model": "whisper-tiny.en", "load": True}),
            _line(5, "ping", {"delay_s": 60}),
            _line(6, "models.get", {"model": "whisper-1"}),
        ]
    )
    env = {**_env(tmp_path, model_cache), "ASRPRO_LOG_LEVEL": "warning"}
    served = subprocess.run(
        [sys.executable, "-m", "asrpro_rpc", "serve", "--allow-multiple"],
        input=script,
        capture_output=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )
    assert served.returncode == 1, served.stderr.decode()  # EOF without shutdown
    replies = {m["id"]: m for m in map(json.loads, served.stdout.splitlines()) if "id" in m}
    assert sorted(replies) == [1, 2, 3, 4, 5, 6]
    assert replies[2]["result"]["id"] == "tiny"
    assert replies[3]["result"]["model"]["auto_unload_timeout_s"] == 99
    assert replies[4]["result"]["selected"] and replies[4]["result"]["ready"]
    assert replies[5]["error"]["code"] == -32800
    assert replies[6]["result"]["id"] in ("whisper-base", "whisper-tiny.en")  # requests run concurrently
    saved = _saved_settings(tmp_path)
    assert (
        saved["model"]["selected_id"] == "whisper-tiny.en" and saved["model"]["auto_unload_timeout_s"] == 99
    )
    registered = json.loads((tmp_path / "config" / "models.json").read_text())["models"]
    assert [m["id"] for m in registered] == ["tiny"]


def _wait_for_stage(sidecar: Sidecar, request_id: Any, stage: str) -> None:
    while True:
        message = sidecar.next_message(timeout_s=120)
        if "id" in message:
            raise AssertionError(f"the request ended before {stage!r}: {message}")
        params = message.get("params") or {}
        if message.get("method") == "transcription.progress" and params.get("request_id") == request_id:
            if params.get("stage") == stage:
                return
