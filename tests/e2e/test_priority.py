"""Dictation first: a short transcription started while a long file is being transcribed is answered before
the file finishes, even with a single transcription slot (``device.max_concurrent_transcriptions: 1``),
where it would otherwise wait its turn; the long file then finishes intact."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.models import TINY_FAST as FAST
from tests.support.sidecar import Sidecar, wait_until_transcribing


@pytest.fixture
def tiny(model_cache_dir: Path, tiny_whisper_dir: Path, start_sidecar: Callable[..., Sidecar]) -> Sidecar:
    process = start_sidecar(models_dir=model_cache_dir)
    process.call("models.register", {"id": "tiny", "path": str(tiny_whisper_dir)})
    process.call("config.set", {"values": {"device": {"max_concurrent_transcriptions": 1}}})
    return process


def _answers_in_order(sidecar: Sidecar, ids: set[object], timeout_s: float = 300.0) -> list[dict]:
    """The answers to ``ids`` in the order they arrived."""
    deadline = time.monotonic() + timeout_s
    answers: list[dict] = []
    while len(answers) < len(ids):
        message = sidecar.next_message(max(0.0, deadline - time.monotonic()))
        if message.get("id") in ids:
            answers.append(message)
    return answers


@pytest.mark.parametrize("priority", [None, "interactive", "background"])
def test_dictation_is_answered_before_a_long_file(
    tiny: Sidecar, long_audio_factory, speech_wav: Path, priority: str | None
) -> None:
    """Short files are interactive unless marked ``background``, which waits its turn for the one slot."""
    long_file = long_audio_factory(10.0)
    long_params = {"path": str(long_file), "model": "tiny", "response_format": "json", **FAST}
    long_id = tiny.request("transcribe.file", long_params)
    wait_until_transcribing(tiny, long_id)
    dictation = {"path": str(speech_wav), "model": "tiny", "response_format": "json", **FAST}
    if priority is not None:
        dictation["priority"] = priority
    short_id = tiny.request("transcribe.file", dictation)
    answers = {message["id"]: message for message in _answers_in_order(tiny, {long_id, short_id})}
    order = list(answers)
    assert order == ([long_id, short_id] if priority == "background" else [short_id, long_id]), answers
    assert answers[long_id]["result"]["duration"] > 9 * 60, answers[long_id]
    assert answers[short_id]["result"]["duration"] < 10, answers[short_id]


def test_priority_is_validated(tiny: Sidecar, speech_wav: Path) -> None:
    error = tiny.error("transcribe.file", {"path": str(speech_wav), "model": "tiny", "priority": "urgent"})
    assert error["code"] == -32602 and "priority" in error["message"], error
