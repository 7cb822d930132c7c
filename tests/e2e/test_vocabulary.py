"""The user's vocabulary through the real process, on real speech and the real whisper-base/tiny.en:
words a model misspells come out right once they are in the dictionary, replacements and clean-up rules
apply to files and streams, settings apply to the next request, and a request's vocabulary wins."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.sidecar import Sidecar, sidecar_env
from tests.support.streaming import of, pcm16, push, results, silence

pytestmark = pytest.mark.real_weights

NAMES_TEXT = (
    "Please send the report to Doctor Zorvath before Friday. "
    "Our new product Zyntrafy syncs with Glimmerdex in seconds."
)
"""A made-up surname and product names whisper-base misspells (as "Norma", "Glimomex") without hints."""
DICTIONARY = ["Zorvath", "Glimmerdex"]


@pytest.fixture(scope="module")
def sidecar(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    process = Sidecar(env=sidecar_env(tmp_path_factory.mktemp("vocabulary"), models_dir=model_cache))
    process.call("initialize")
    yield process
    process.kill()


@pytest.fixture(scope="module")
def names_wav(speak: Callable[[str, str], Path]) -> Path:
    return speak(NAMES_TEXT, "vocabulary_names")


def _transcribe(sidecar: Sidecar, path: Path, response_format: str = "json", **params: object) -> dict:
    params = {"path": str(path), "model": "whisper-base", "language": "en", **params}
    return sidecar.call("transcribe.file", {**params, "response_format": response_format}, timeout_s=120)


def test_dictionary_words_are_spelled_as_written(sidecar: Sidecar, names_wav: Path) -> None:
    sidecar.call("config.reset", {"category": "vocabulary"})
    plain = _transcribe(sidecar, names_wav)["text"]
    assert not any(word in plain for word in DICTIONARY), plain
    sidecar.call("config.set", {"values": {"vocabulary": {"words": DICTIONARY}}})
    hinted = _transcribe(sidecar, names_wav)["text"]
    assert all(word in hinted for word in DICTIONARY), hinted
    overridden = _transcribe(sidecar, names_wav, vocabulary={"words": []})["text"]  # the request wins
    assert not any(word in overridden for word in DICTIONARY), overridden


def test_replacements_and_fillers_apply_to_text_and_segments(sidecar: Sidecar, speech_wav: Path) -> None:
    sidecar.call("config.reset", {"category": "vocabulary"})
    sidecar.call(
        "config.set",
        {"values": {"vocabulary": {"replacements": {"the kitchen": "the galley", "door": "hatch"}}}},
    )
    result = sidecar.call(
        "transcribe.file",
        {
            "path": str(speech_wav),
            "model": "whisper-base",
            "language": "en",
            "response_format": "verbose_json",
        },
        timeout_s=120,
    )
    assert "hatch" in result["text"] and "galley" in result["text"], result["text"]
    assert "kitchen" not in result["text"].lower()
    assert "galley" in "".join(s["text"] for s in result["segments"])
    assert "galley" in _transcribe(sidecar, speech_wav, "srt")["content"]


def test_invalid_vocabulary_settings_name_the_field(sidecar: Sidecar) -> None:
    error = sidecar.error("config.set", {"values": {"vocabulary": {"words": "Zorvath"}}})
    assert error["data"]["kind"] == "invalid_config", error
    assert "vocabulary.words" in error["message"], error


def test_streams_report_the_written_form(sidecar: Sidecar, speech_wav: Path) -> None:
    sidecar.call("config.reset", {"category": "vocabulary"})
    sidecar.call("config.set", {"values": {"vocabulary": {"replacements": {"kitchen": "galley"}}}})
    stream_id = sidecar.call("stream.start", {"model": "whisper-tiny.en"}, timeout_s=120)["stream_id"]
    results(sidecar, push(sidecar, stream_id, pcm16(speech_wav) + silence(1.5), random.Random(7)))
    summary = sidecar.call("stream.stop", {"stream_id": stream_id}, timeout_s=120)
    assert "galley" in summary["text"] and "kitchen" not in summary["text"].lower(), summary
    finals = of(sidecar, "stream.final", stream_id)
    assert "galley" in " ".join(f["segment"]["text"] for f in finals), finals


def test_the_http_shim_takes_a_vocabulary(sidecar: Sidecar, names_wav: Path, speech_wav: Path) -> None:
    """The OpenAI SDK sends it with ``extra_body`` (bracket fields); curl as one JSON field."""
    sidecar.call("config.reset", {"category": "vocabulary"})
    url = sidecar.call("http.start", {"port": 0})["url"]
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
        with names_wav.open("rb") as file:
            hinted = client.audio.transcriptions.create(
                file=file,
                model="whisper-base",
                language="en",
                extra_body={"vocabulary": {"words": DICTIONARY}, "priority": "interactive"},
            )
        assert all(word in hinted.text for word in DICTIONARY), hinted.text
        replacements = {"kitchen": "galley"}
        with speech_wav.open("rb") as file:
            form = {
                "model": "whisper-base",
                "language": "en",
                "vocabulary": json.dumps({"replacements": replacements}),
            }
            reply = httpx.post(f"{url}/v1/audio/transcriptions", data=form, files={"file": file}, timeout=120)
        assert reply.status_code == 200 and "galley" in reply.json()["text"], reply.text
        bad = httpx.post(
            f"{url}/v1/audio/transcriptions",
            data={"model": "whisper-base", "vocabulary": "[not json"},
            files={"file": speech_wav.read_bytes()},
            timeout=120,
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "vocabulary", bad.text
    finally:
        sidecar.call("http.stop")
