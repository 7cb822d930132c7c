"""The ONNX Whisper route's pure parts: timestamp rules, tokens into timed segments, export variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asrpro_rpc import errors
from asrpro_rpc.engines.base import LoadSpec
from asrpro_rpc.engines.whisper_onnx.decoding import Decoded, WhisperSessions
from asrpro_rpc.engines.whisper_onnx.engine import _variant, split_segments
from asrpro_rpc.engines.whisper_onnx.vocabulary import Vocabulary

# a toy vocabulary with Whisper's shape: text 0..4, then the specials, then timestamps from 12
TEXT = {0: "Ġhello", 1: "Ġworld", 2: ".", 3: "Ġagain", 4: "!"}
VOCAB = Vocabulary(
    tokens={**TEXT, 5: "<|endoftext|>", 6: "<|startoftranscript|>", 7: "<|en|>", 8: "<|de|>"},
    eot=5,
    sot=6,
    translate=9,
    transcribe=10,
    no_timestamps=11,
    no_speech=None,
    languages={"en": 7, "de": 8},
)
TS = VOCAB.timestamp_begin


def _ts(seconds: float) -> int:
    return TS + round(seconds / 0.02)


def _rules() -> WhisperSessions:
    """Only the rule logic of the sessions (no ONNX sessions behind it)."""
    sessions = object.__new__(WhisperSessions)
    sessions.vocabulary = VOCAB
    sessions._suppress = np.array([6, 7, 8, 9, 10, 11])
    sessions._begin_suppress = np.array([5])
    return sessions


def _pick(tokens: list[int], scores: dict[int, float]) -> int:
    logits = np.full(TS + 300, -5.0)
    for token, score in scores.items():
        logits[token] = score
    return int(_rules()._apply_rules(logits, tokens).argmax())


def test_first_token_is_an_early_timestamp() -> None:
    assert _pick([], {0: 10.0, _ts(0.4): 1.0}) == _ts(0.4)
    assert _pick([], {_ts(5.0): 9.0, _ts(0.2): 1.0}) == _ts(0.2)  # at most 1 s in


def test_timestamps_pair_up_and_never_go_back() -> None:
    after_text = [_ts(0.0), 0]
    assert _pick(after_text, {1: 3.0}) == 1
    closed = [_ts(0.0), 0, _ts(1.0)]
    assert _pick(closed, {1: 1.0, _ts(0.5): 9.0}) == _ts(1.0)  # a timestamp, never earlier than 1.0
    assert _pick([*closed, _ts(1.0)], {_ts(2.0): 9.0, 3: 1.0}) == 3  # a pair just closed: text follows
    assert _pick([_ts(0.0), 0, _ts(1.0)], {3: 9.0, _ts(1.5): 1.0}) == _ts(1.5)  # a segment's end: a timestamp


def test_tokens_become_segments_at_their_timestamps() -> None:
    tokens = [_ts(0.0), 0, 1, 2, _ts(1.5), _ts(1.5), 3, 4, _ts(2.5), _ts(2.5), 0, VOCAB.eot]
    decoded = Decoded(tokens, [-0.1] * len(tokens), 0.05)
    segments = split_segments(decoded, VOCAB, offset_s=30.0, window_s=4.0, first_id=7, word_timestamps=True)
    assert [(s.id, s.start, s.end, s.text) for s in segments] == [
        (7, 30.0, 31.5, " hello world."),
        (8, 31.5, 32.5, " again!"),
        (9, 32.5, 34.0, " hello"),  # text after the last timestamp ends with the window
    ]
    assert [w.word for w in segments[0].words or ()] == [" hello", " world."]
    words = segments[0].words or []
    assert words[0].start == 30.0 and words[-1].end == 31.5 and words[0].end <= words[1].start
    assert all(s.no_speech_prob == 0.05 and s.avg_logprob == pytest.approx(-0.1) for s in segments)


def test_a_missing_precision_runs_float32_and_a_missing_export_is_named(tmp_path: Path) -> None:
    spec = LoadSpec(model_id="m", model_path=str(tmp_path), compute_type="int8")
    with pytest.raises(errors.ModelLoadFailed, match="onnx/encoder_model.onnx"):
        _variant(spec, tmp_path)
    (tmp_path / "onnx").mkdir()
    for name in ("encoder_model", "decoder_model_merged"):
        (tmp_path / "onnx" / f"{name}.onnx").touch()
    compute_type, suffix, warnings = _variant(spec, tmp_path)
    assert (compute_type, suffix) == ("float32", "") and "no 'int8' variant" in warnings[0]
    for name in ("encoder_model", "decoder_model_merged"):
        (tmp_path / "onnx" / f"{name}_int8.onnx").touch()
    assert _variant(spec, tmp_path) == ("int8", "_int8", [])
