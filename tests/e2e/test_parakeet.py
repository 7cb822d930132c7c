"""Parakeet end to end through the real sidecar: the real NeMo path (and the ONNX route) on a tiny random
Parakeet TDT model built offline. Its words are random: the tests assert structure, never particular words.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.models import TINY_FAST, auto_nemo_choice
from tests.support.sidecar import Sidecar, repo_root, sidecar_env

NEMO_ID = "tiny-parakeet"
ONNX_ID = "tiny-parakeet-onnx"
WHISPER_ID = "tiny-whisper"
BOOSTED = ["parakeet", "speech"]
"""Words the tiny model's tokenizer was trained on (a word made of unknown pieces would boost ``⁇``)."""


def _start(tmp: Path, models: dict[str, Path], extra_env: dict[str, str] | None = None) -> Sidecar:
    process = Sidecar(env=sidecar_env(tmp, **(extra_env or {})))
    process.call("initialize")
    for model_id, path in models.items():
        process.call("models.register", {"id": model_id, "path": str(path)})
    return process


@pytest.fixture(scope="module")
def pk(
    tiny_parakeet_nemo: Path, tiny_parakeet_onnx: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sidecar]:
    """One sidecar for the module with the tiny Parakeet (.nemo) and its ONNX export registered."""
    process = _start(
        tmp_path_factory.mktemp("pk"), {NEMO_ID: tiny_parakeet_nemo, ONNX_ID: tiny_parakeet_onnx}
    )
    yield process
    process.kill()


def _transcribe(sidecar: Sidecar, path: Path, model: str = NEMO_ID, **params: object) -> dict:
    return sidecar.call(
        "transcribe.file",
        {"path": str(path), "model": model, "timestamp_granularities": ["segment", "word"], **params},
        timeout_s=180,
    )


def _assert_well_formed(result: dict) -> None:
    words, segments = result["words"], result["segments"]
    assert words and segments and result["text"]
    assert all(0 <= w["start"] <= w["end"] <= result["duration"] for w in words)
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:], strict=False)), "words overlap"
    assert all(a["end"] <= b["start"] for a, b in zip(segments, segments[1:], strict=False))
    assert [s["id"] for s in segments] == list(range(len(segments)))
    assert [w for s in segments for w in s["words"]] == words
    assert "".join(s["text"] for s in segments).strip() == result["text"]


def test_load_reports_progress_stages(pk: Sidecar) -> None:
    pk.notifications.clear()
    info = pk.call("models.load", {"model": NEMO_ID}, timeout_s=180)
    assert info["ready"]
    fallbacks = [n for n in pk.notifications if n["params"].get("kind") == "device_fallback"]
    if fallbacks:  # the GPU was seen but could not run the model: the CPU, said out loud
        assert (info["device"], info["compute_type"]) == ("cpu", "float32"), fallbacks
    else:
        assert (info["device"], info["compute_type"]) == auto_nemo_choice()
    progress = [n["params"] for n in pk.notifications if n["method"] == "model.progress"]
    messages = [p["message"] for p in progress]
    assert any("importing NeMo" in m for m in messages) and any("restoring" in m for m in messages)
    values = [p["progress"] for p in progress]
    assert values == sorted(values) and values[-1] == 1.0
    status = pk.call("models.status")
    assert status["state"] == "loaded" and status["model_id"] == NEMO_ID


def test_every_response_format(pk: Sidecar, speech_paragraph_wav: Path) -> None:
    verbose = _transcribe(pk, speech_paragraph_wav)
    _assert_well_formed(verbose)
    assert verbose["model"] == NEMO_ID and verbose["language"] == "en" and verbose["format"] == "verbose_json"
    assert abs(verbose["duration"] - 20.0) < 3.0
    plain = _transcribe(pk, speech_paragraph_wav, response_format="json")
    assert plain["text"] == verbose["text"] and "segments" not in plain
    assert _transcribe(pk, speech_paragraph_wav, response_format="text")["content"].strip() == verbose["text"]
    srt = _transcribe(pk, speech_paragraph_wav, response_format="srt")["content"]
    assert srt.startswith("1\n00:00:00,000 --> ") and srt.count(" --> ") >= len(verbose["segments"])
    vtt = _transcribe(pk, speech_paragraph_wav, response_format="vtt")["content"]
    assert vtt.startswith("WEBVTT\n\n") and "00:00:00.000 --> " in vtt


def test_output_is_deterministic(pk: Sidecar, speech_wav: Path) -> None:
    assert _transcribe(pk, speech_wav) == _transcribe(pk, speech_wav)


def test_options_parakeet_cannot_honour_are_clear_errors(pk: Sidecar, speech_wav: Path) -> None:
    german = pk.error("transcribe.file", {"path": str(speech_wav), "model": NEMO_ID, "language": "de"})
    assert german["code"] == -32602 and "'de'" in german["message"]
    translate = pk.error("transcribe.file", {"path": str(speech_wav), "model": NEMO_ID, "task": "translate"})
    assert translate["code"] == -32602


def test_long_file_is_windowed_with_absolute_timestamps(pk: Sidecar, long_audio_factory) -> None:
    pk.notifications.clear()
    result = _transcribe(pk, long_audio_factory(12.0))
    _assert_well_formed(result)
    assert result["duration"] > 11.9 * 60
    assert result["segments"][-1]["end"] > 11 * 60, "later windows' words were not shifted"
    fractions = [
        n["params"]["progress"]
        for n in pk.notifications
        if n["method"] == "transcription.progress" and n["params"]["stage"] == "transcribing"
    ]
    assert len([f for f in fractions if 0 < f < 1]) >= 2 and fractions == sorted(fractions)


def test_cancel_mid_file(pk: Sidecar, long_audio_factory, speech_wav: Path) -> None:
    """A cancel lands within one encoder layer on NeMo (README): a clean stop, the same engine process."""
    request_id = pk.request("transcribe.file", {"path": str(long_audio_factory(20.0)), "model": NEMO_ID})
    deadline = time.monotonic() + 120
    while True:
        message = pk.next_message(max(0.0, deadline - time.monotonic()))
        assert message.get("id") != request_id, f"the file was done before the cancel: {message}"
        params = message.get("params") or {}
        if message.get("method") == "transcription.progress" and 0 < params.get("progress", 0) < 1:
            break
    pid = pk.call("models.status")["pid"]
    pk.notify("$/cancelRequest", {"id": request_id})
    reply = pk.response(request_id, timeout_s=60)
    assert reply["error"]["code"] == -32800 and "reload" not in reply["error"]["message"], reply
    assert pk.call("models.status")["pid"] == pid
    assert _transcribe(pk, speech_wav, response_format="json")["text"]


def test_onnx_transcript_equals_nemo(pk: Sidecar, speech_paragraph_wav: Path) -> None:
    nemo = _transcribe(pk, speech_paragraph_wav)
    onnx = _transcribe(pk, speech_paragraph_wav, model=ONNX_ID)
    _assert_well_formed(onnx)
    assert onnx["text"] == nemo["text"]
    assert [w["word"] for w in onnx["words"]] == [w["word"] for w in nemo["words"]]
    assert [w["start"] for w in onnx["words"]] == pytest.approx([w["start"] for w in nemo["words"]], abs=1e-3)
    assert all(0 < w["probability"] <= 1 for w in onnx["words"])
    assert pk.call("models.status")["model_id"] == ONNX_ID


def test_nemo_reports_confidence_that_min_confidence_uses(pk: Sidecar, speech_paragraph_wav: Path) -> None:
    """NeMo words carry a 0..1 confidence (product of their tokens' top probabilities) and segments its
    mean log, so ``min_confidence`` filters NeMo transcripts as it does Whisper's."""
    result = _transcribe(pk, speech_paragraph_wav)
    assert all(0 < w["probability"] <= 1 for w in result["words"]), result["words"]
    logprobs = [s["avg_logprob"] for s in result["segments"]]
    assert all(lp < 0 for lp in logprobs), logprobs
    kept = _transcribe(pk, speech_paragraph_wav, min_confidence=min(logprobs) - 1e-6)
    assert len(kept["segments"]) == len(result["segments"])
    strict = _transcribe(pk, speech_paragraph_wav, min_confidence=max(logprobs) + 1e-6)
    assert strict["segments"] == [] and strict["text"] == ""


def _boosting_logs(sidecar: Sidecar) -> list[dict]:
    lines = (line for line in sidecar.stderr_text().splitlines() if "phrase boost" in line)
    return [record for record in map(json.loads, lines) if record.get("model_id") == NEMO_ID]


def test_vocabulary_words_boost_nemo_decoding(pk: Sidecar, speech_paragraph_wav: Path) -> None:
    """NeMo's phrase boosting gets the words, is rebuilt only when they change, and is taken out of the
    decoder again without them. A random model can't show better spelling, but this one's (deterministic)
    transcript of the paragraph gains a boosted word it never says unboosted."""
    plain = _transcribe(pk, speech_paragraph_wav)
    before = len(_boosting_logs(pk))
    boosted = _transcribe(pk, speech_paragraph_wav, vocabulary={"words": BOOSTED})
    _assert_well_formed(boosted)
    assert _transcribe(pk, speech_paragraph_wav, vocabulary={"words": BOOSTED}) == boosted
    applied = _boosting_logs(pk)[before:]
    assert [(r["msg"], r["phrases"], r["alpha"]) for r in applied] == [("phrase boosting set", 2, 1.0)]
    plain_words, boosted_words = plain["text"].split(), boosted["text"].split()
    assert "parakeet" not in plain_words and "parakeet" in boosted_words  # the tree reached the decoder
    assert _transcribe(pk, speech_paragraph_wav) == plain
    assert [(r["phrases"], r["alpha"]) for r in _boosting_logs(pk)[before + 1 :]] == [(0, 0.0)]


def test_whisper_parakeet_switch_returns_memory(
    tiny_parakeet_nemo: Path, tiny_whisper_dir: Path, speech_wav: Path, tmp_path: Path
) -> None:
    sidecar = _start(tmp_path, {NEMO_ID: tiny_parakeet_nemo, WHISPER_ID: tiny_whisper_dir})
    try:
        sidecar.call("transcribe.file", {"path": str(speech_wav), "model": WHISPER_ID, **TINY_FAST})
        assert sidecar.call("models.unload") == {"unloaded": True}
        idle = sidecar.tree_rss_bytes()
        _transcribe(sidecar, speech_wav)
        with_nemo = sidecar.tree_rss_bytes()
        sidecar.call("transcribe.file", {"path": str(speech_wav), "model": WHISPER_ID, **TINY_FAST})
        with_whisper = sidecar.tree_rss_bytes()
        assert with_nemo - with_whisper > 300 * 1024 * 1024, (idle, with_nemo, with_whisper)
        assert _transcribe(sidecar, speech_wav)["model"] == NEMO_ID
        assert sidecar.call("models.unload") == {"unloaded": True}
        after = sidecar.tree_rss_bytes()
        assert abs(after - idle) <= 20 * 1024 * 1024, (idle, with_nemo, after)
    finally:
        sidecar.kill()


def test_onnx_route_when_nemo_cannot_be_imported(
    tiny_parakeet_nemo: Path, speech_paragraph_wav: Path, tmp_path: Path, pk: Sidecar
) -> None:
    shim = tmp_path / "shim" / "nemo"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('NeMo hidden by the test')\n")
    sidecar = _start(tmp_path, {NEMO_ID: tiny_parakeet_nemo}, {"PYTHONPATH": str(shim.parent)})
    try:
        result = _transcribe(sidecar, speech_paragraph_wav)
        warnings = [n["params"]["message"] for n in sidecar.notifications if n["method"] == "notification"]
        assert any("ONNX export" in w for w in warnings), warnings
        assert result["text"] == _transcribe(pk, speech_paragraph_wav)["text"]
    finally:
        sidecar.kill()


def test_export_onnx_command_with_int8(
    tiny_parakeet_nemo: Path, tmp_path: Path, speech_paragraph_wav: Path
) -> None:
    """``--quantize int8`` writes int8 graphs beside the float ones; a load asking for int8 runs them."""
    out = tmp_path / "export"
    command = [sys.executable, "-m", "asrpro_rpc", "models", "export-onnx", str(tiny_parakeet_nemo)]
    done = subprocess.run(
        [*command, "--output", str(out), "--quantize", "int8"],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert {p.name for p in out.iterdir()} == {
        "encoder-model.onnx",
        "decoder_joint-model.onnx",
        "encoder-model.int8.onnx",
        "decoder_joint-model.int8.onnx",
        "vocab.txt",
        "config.json",
    }
    assert (out / "encoder-model.int8.onnx").stat().st_size < (out / "encoder-model.onnx").stat().st_size
    sidecar = _start(tmp_path / "int8", {"pk-int8": out})
    try:
        sidecar.call("config.set", {"values": {"device": {"compute_type": "int8"}}})
        loaded = sidecar.call("models.load", {"model": "pk-int8"}, timeout_s=120)
        assert loaded["compute_type"] == "int8", loaded
        _assert_well_formed(_transcribe(sidecar, speech_paragraph_wav, model="pk-int8"))
    finally:
        sidecar.kill()
    missing = subprocess.run(
        [sys.executable, "-m", "asrpro_rpc", "models", "export-onnx", str(tmp_path / "nope.nemo")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and "doesn't exist" in missing.stderr


def test_a_decoder_that_cannot_boost_transcribes_unboosted(
    tiny_parakeet_nemo: Path, speech_wav: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """In-process (the decoder is switched under the engine): NeMo's plain ``greedy`` TDT decoder takes no
    boosting tree, so the words are left out with a warning and the transcription still runs."""
    from omegaconf import open_dict

    from asrpro_rpc.audio.decode import decode_audio
    from asrpro_rpc.engines.base import LoadSpec
    from asrpro_rpc.engines.chunking import Audio
    from asrpro_rpc.engines.parakeet.nemo import NemoEngine
    from asrpro_rpc.transcripts.types import TranscribeOptions
    from asrpro_rpc.transcripts.vocabulary import Vocabulary

    engine = NemoEngine()
    engine.load(
        LoadSpec(model_id=NEMO_ID, model_path=str(tiny_parakeet_nemo), device="cpu"), lambda f, m: None
    )
    model = engine._model
    decoding = model.cfg.decoding
    with open_dict(decoding):  # NeMo's plain greedy TDT decoder can't keep confidence either: off
        decoding.strategy = "greedy"
        decoding.confidence_cfg = {"preserve_word_confidence": False, "preserve_token_confidence": False}
    model.change_decoding_strategy(decoding, verbose=False)
    audio = decode_audio(str(speech_wav))
    options = TranscribeOptions(vocabulary=Vocabulary(words=BOOSTED))
    try:
        result = engine.transcribe(Audio.from_array(audio), options, lambda f: None, lambda: False)
    finally:
        engine.unload()
    assert result.text
    [warning] = [r for r in caplog.records if "can't boost phrases" in r.getMessage()]
    assert "does not support" in warning.error  # type: ignore[attr-defined]
