"""Whisper on ONNX Runtime through the real sidecar, on a tiny random Whisper exported in onnx-community's
layout: the built-in ``whisper-medium-onnx`` route (the tiny export in its cache folder) and a registered
export load, detect the language, transcribe into timed segments and translate; the registry says what each
route can do. Its words are random: the tests assert structure.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrpro_rpc.catalog.specs import BUILTIN_MODELS, WHISPER_LANGUAGES
from asrpro_rpc.engines.onnx_providers import PROVIDERS
from tests.support.models import TINY_FAST
from tests.support.sidecar import Sidecar, sidecar_env
from tests.support.streaming import of, pcm16, push, results, silence

ROUTE_ID = "whisper-medium-onnx"
USER_ID = "tiny-whisper-onnx"
FAST = {"max_new_tokens": 24, "response_format": "verbose_json"}
"""A random-weight Whisper babbles to the token limit: a short one keeps each window quick."""


@pytest.fixture(scope="module")
def wo(tiny_whisper_onnx_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    """One sidecar whose cache holds the tiny export as ``whisper-medium-onnx``; also registered as a user
    model."""
    tmp = tmp_path_factory.mktemp("wo")
    shutil.copytree(tiny_whisper_onnx_dir, tmp / "models" / ROUTE_ID, ignore=shutil.ignore_patterns("hf"))
    sidecar = Sidecar(env=sidecar_env(tmp))
    sidecar.call("initialize")
    sidecar.call("models.register", {"id": USER_ID, "path": str(tiny_whisper_onnx_dir)})
    yield sidecar
    sidecar.kill()


def _transcribe(sidecar: Sidecar, path: Path, model: str, **params: object) -> dict:
    return sidecar.call(
        "transcribe.file", {"path": str(path), "model": model, **FAST, **params}, timeout_s=180
    )


def _assert_timed(result: dict) -> None:
    segments = result["segments"]
    assert segments and result["duration"] > 0
    assert [s["id"] for s in segments] == list(range(len(segments)))
    assert all(0 <= s["start"] <= s["end"] <= result["duration"] for s in segments), segments
    assert all(a["start"] <= b["start"] for a, b in zip(segments, segments[1:], strict=False))
    assert all(s["tokens"] and s["avg_logprob"] < 0 for s in segments)
    assert "".join(s["text"] for s in segments).strip() == result["text"]


def test_registry_says_what_each_onnx_route_can_do(wo: Sidecar) -> None:
    models = {m["id"]: m for m in wo.call("models.list")}
    onnx = {s.id for s in BUILTIN_MODELS if s.engine == "whisper-onnx"}
    assert onnx == {f"whisper-{size}-onnx" for size in ("tiny", "base", "small", "medium", "large-v3-turbo")}
    for model_id in onnx:
        info = models[model_id]
        assert (info["family"], info["engine"], info["word_timestamps"]) == (
            "whisper",
            "whisper-onnx",
            "estimated",
        )
        assert info["source"] == f"onnx-community/{model_id.removesuffix('-onnx')}"
        assert info["translate"] is (model_id != "whisper-large-v3-turbo-onnx")
    assert "yue" in models["whisper-large-v3-turbo-onnx"]["languages"]
    assert models["whisper-base"]["word_timestamps"] == "aligned"
    assert models[ROUTE_ID]["available"]
    user = models[USER_ID]
    assert (user["engine"], user["family"], user["translate"]) == ("whisper-onnx", "whisper", True)
    assert user["languages"] == list(WHISPER_LANGUAGES)


def test_medium_route_loads_and_transcribes_with_detected_language(wo: Sidecar, speech_wav: Path) -> None:
    info = wo.call("models.load", {"model": ROUTE_ID}, timeout_s=180)
    assert info["ready"] and info["compute_type"] == "float32"
    status = wo.call("models.status")
    assert (status["state"], status["model_id"], status["engine"]) == ("loaded", ROUTE_ID, "whisper-onnx")
    assert status["provider"] == PROVIDERS.get(info["device"], "CPUExecutionProvider")
    wo.notifications.clear()
    result = _transcribe(wo, speech_wav, ROUTE_ID)
    assert result["language"] in WHISPER_LANGUAGES and 0 < result["language_probability"] <= 1
    assert result["task"] == "transcribe"
    _assert_timed(result)


def test_translates_and_times_words(wo: Sidecar, speech_paragraph_wav: Path) -> None:
    params = {"language": "de", "task": "translate", "timestamp_granularities": ["segment", "word"]}
    result = _transcribe(wo, speech_paragraph_wav, USER_ID, **params)
    assert (result["task"], result["language"]) == ("translate", "de")
    _assert_timed(result)
    words = result["words"]
    assert words == [w for s in result["segments"] for w in s["words"]]
    assert all(
        s["start"] <= w["start"] <= w["end"] <= s["end"] for s in result["segments"] for w in s["words"]
    )


def test_unsupported_requests_answer_clearly_without_a_download(wo: Sidecar, speech_wav: Path) -> None:
    turbo = {"path": str(speech_wav), "model": "whisper-large-v3-turbo-onnx", "task": "translate"}
    error = wo.error("transcribe.file", turbo)
    assert error["code"] == -32602 and "not trained to translate" in error["message"], error
    assert not any(
        n["method"] == "model.progress"
        for n in wo.notifications
        if n["params"].get("model_id") == turbo["model"]
    )
    error = wo.error("transcribe.file", {"path": str(speech_wav), "model": USER_ID, "language": "xx"})
    assert error["code"] == -32602 and "'xx'" in error["message"], error


def test_streams_live(wo: Sidecar, speech_wav: Path) -> None:
    """Streaming re-decodes with word timestamps on: the estimated words carry it."""
    stream_id = wo.call("stream.start", {"model": USER_ID, **TINY_FAST}, timeout_s=60)["stream_id"]
    rng = random.Random(2)
    results(wo, push(wo, stream_id, pcm16(speech_wav) + silence(1.5), rng))
    summary = wo.call("stream.stop", {"stream_id": stream_id}, timeout_s=120)
    finals = of(wo, "stream.final", stream_id)
    assert summary["segments"] and [f["segment"] for f in finals] == summary["segments"]
    assert all(0 <= s["start"] <= s["end"] <= summary["duration"] for s in summary["segments"])
