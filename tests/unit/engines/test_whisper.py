"""WhisperEngine in-process: a tiny random model for structure, real base / tiny.en weights for words."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from asrpro_rpc import errors
from asrpro_rpc.audio.decode import decode_audio
from asrpro_rpc.engines import create_engine
from asrpro_rpc.engines.base import LoadInfo, LoadSpec
from asrpro_rpc.engines.chunking import Audio
from asrpro_rpc.engines.whisper import WhisperEngine
from asrpro_rpc.engines.whisper_window import window_frames
from asrpro_rpc.transcripts.types import EncoderWindow, TranscribeOptions, Transcript, VadOptions
from tests.support.models import TINY_FAST
from tests.support.wer import wer

FAST = TranscribeOptions(**TINY_FAST)
"""Decoding options that keep a random-weight model quick and deterministic."""


def _load(path: Path, model_id: str = "m", **spec: object) -> tuple[WhisperEngine, LoadInfo, list[str]]:
    messages: list[str] = []
    engine = WhisperEngine()
    info = engine.load(
        LoadSpec(model_id=model_id, model_path=str(path), **spec),  # type: ignore[arg-type]
        lambda fraction, message: messages.append(f"{fraction:.1f} {message}"),
    )
    return engine, info, messages


def _transcribe(
    engine: WhisperEngine, wav: Path, options: TranscribeOptions
) -> tuple[Transcript, list[float]]:
    fractions: list[float] = []
    transcript = engine.transcribe(
        Audio.from_array(decode_audio(wav)), options, fractions.append, lambda: False
    )
    return transcript, fractions


@pytest.fixture(scope="module")
def tiny_engine(tiny_whisper_dir: Path) -> WhisperEngine:
    engine, _, _ = _load(tiny_whisper_dir, "tiny-random")
    return engine


@pytest.fixture(scope="module")
def base_engine(whisper_base_dir: Path) -> WhisperEngine:
    engine, _, _ = _load(whisper_base_dir, "whisper-base")
    return engine


def test_registry_creates_whisper_engine_and_rejects_unknown() -> None:
    assert isinstance(create_engine("whisper"), WhisperEngine)
    with pytest.raises(errors.InvalidParams, match="Unknown engine"):
        create_engine("nope")


def test_load_reports_device_compute_type_and_progress(tiny_whisper_dir: Path) -> None:
    engine, info, messages = _load(tiny_whisper_dir)
    assert info.device in ("cpu", "cuda")
    assert info.compute_type
    assert info.load_time_s > 0
    assert messages[0] == "0.0 importing faster-whisper"
    assert "loading weights" in messages[1]
    assert messages[-1].startswith("1.0")
    engine.unload()


def test_unsupported_compute_type_falls_back_with_a_warning(tiny_whisper_dir: Path) -> None:
    _, info, _ = _load(tiny_whisper_dir, device="cpu", compute_type="float16")
    assert info.device == "cpu"
    assert info.compute_type != "float16"
    assert info.warnings and "float16" in info.warnings[0]


def test_transcript_structure_and_word_timestamps(tiny_engine: WhisperEngine, speech_wav: Path) -> None:
    options = TranscribeOptions(**TINY_FAST, word_timestamps=True)
    transcript, fractions = _transcribe(tiny_engine, speech_wav, options)
    assert transcript.language == "en"
    assert transcript.language_probability is None
    assert transcript.model == "tiny-random"
    assert transcript.duration == pytest.approx(3.7, abs=0.5)
    assert transcript.segments
    assert transcript.text == "".join(s.text for s in transcript.segments).strip()
    assert [s.id for s in transcript.segments] == list(range(len(transcript.segments)))
    assert transcript.words == [w for s in transcript.segments for w in s.words or ()]
    assert transcript.words
    for word in transcript.words:
        assert 0 <= word.start <= word.end <= transcript.duration + 0.1
        assert word.probability is not None and 0 <= word.probability <= 1
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts)
    assert fractions and fractions == sorted(fractions) and all(0 <= f <= 1 for f in fractions)


def test_same_options_give_the_same_transcript(tiny_engine: WhisperEngine, speech_wav: Path) -> None:
    assert _transcribe(tiny_engine, speech_wav, FAST)[0] == _transcribe(tiny_engine, speech_wav, FAST)[0]


def test_vad_parameters_and_batched_pipeline(tiny_engine: WhisperEngine, speech_paragraph_wav: Path) -> None:
    vad = TranscribeOptions(**TINY_FAST, vad=VadOptions(min_silence_duration_ms=300, speech_pad_ms=100))
    transcript, _ = _transcribe(tiny_engine, speech_paragraph_wav, vad)
    assert len(transcript.segments) >= 1
    batched = TranscribeOptions(**TINY_FAST, batch_size=4)
    transcript, fractions = _transcribe(tiny_engine, speech_paragraph_wav, batched)
    assert transcript.segments and fractions


def test_audio_over_one_chunk_is_batched_by_default(
    tiny_engine: WhisperEngine, speech_wav: Path, long_audio_factory: Callable[[float], Path]
) -> None:
    long_file = long_audio_factory(1)
    default, _ = _transcribe(tiny_engine, long_file, FAST)
    batched, _ = _transcribe(tiny_engine, long_file, TranscribeOptions(**TINY_FAST, batch_size=8))
    sequential, _ = _transcribe(tiny_engine, long_file, TranscribeOptions(**TINY_FAST, batch_size=1))
    assert default == batched != sequential
    short = TranscribeOptions(**TINY_FAST, batch_size=1)
    assert _transcribe(tiny_engine, speech_wav, FAST)[0] == _transcribe(tiny_engine, speech_wav, short)[0]
    no_vad = TranscribeOptions(**{**TINY_FAST, "vad_filter": False})
    unbatched = TranscribeOptions(**{**TINY_FAST, "vad_filter": False, "batch_size": 1})
    assert _transcribe(tiny_engine, long_file, no_vad)[0] == _transcribe(tiny_engine, long_file, unbatched)[0]


def test_concurrent_batched_word_timings_match_a_lone_run(
    tiny_engine: WhisperEngine, long_audio_factory: Callable[[float], Path]
) -> None:
    long_file = long_audio_factory(1)
    options = TranscribeOptions(**TINY_FAST, word_timestamps=True)
    alone, _ = _transcribe(tiny_engine, long_file, options)
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda _: _transcribe(tiny_engine, long_file, options)[0], range(2)))
    assert alone.words and together == [alone, alone]


def test_batching_needs_the_vad(tiny_engine: WhisperEngine, speech_wav: Path) -> None:
    with pytest.raises(errors.InvalidParams, match="vad_filter"):
        _transcribe(tiny_engine, speech_wav, TranscribeOptions(batch_size=4, vad_filter=False))


def test_long_audio_is_windowed_with_absolute_timestamps(
    tiny_engine: WhisperEngine, long_audio_factory: Callable[[float], Path]
) -> None:
    transcript, _ = _transcribe(tiny_engine, long_audio_factory(6.5), FAST)
    assert transcript.duration == pytest.approx(390, abs=1)
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    assert [s.id for s in transcript.segments] == list(range(len(transcript.segments)))
    assert transcript.segments[-1].end > 300  # the second window's times are shifted, not restarted


def test_unknown_language_is_invalid(tiny_engine: WhisperEngine, speech_wav: Path) -> None:
    with pytest.raises(errors.InvalidParams, match="xx"):
        _transcribe(tiny_engine, speech_wav, TranscribeOptions(language="xx"))


def test_cancel_between_segments(
    tiny_engine: WhisperEngine, long_audio_factory: Callable[[float], Path]
) -> None:
    audio = Audio.from_array(decode_audio(long_audio_factory(1)))
    fractions: list[float] = []
    with pytest.raises(errors.RequestCancelled):
        tiny_engine.transcribe(audio, FAST, fractions.append, lambda: bool(fractions))
    assert len(fractions) == 1


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("no_dir", "does not exist"),
        ("no_tokenizer", "tokenizer.json"),
        ("corrupt_weights", "model.bin|binary version"),
    ],
)
def test_load_failures_are_readable(
    tiny_whisper_dir: Path, tmp_path: Path, breakage: str, reason: str
) -> None:
    model_dir = tmp_path / "model"
    if breakage != "no_dir":
        shutil.copytree(tiny_whisper_dir, model_dir)
    if breakage == "no_tokenizer":
        (model_dir / "tokenizer.json").unlink()
    if breakage == "corrupt_weights":
        (model_dir / "model.bin").write_bytes(b"not a model" * 100)
    with pytest.raises(errors.ModelLoadFailed, match=reason) as caught:
        _load(model_dir, "broken")
    assert caught.value.data["model_id"] == "broken"


@pytest.mark.real_weights
def test_base_transcribes_paragraph(
    base_engine: WhisperEngine, speech_paragraph_wav: Path, speech_paragraph_text: str
) -> None:
    transcript, fractions = _transcribe(
        base_engine, speech_paragraph_wav, TranscribeOptions(word_timestamps=True)
    )
    assert wer(speech_paragraph_text, transcript.text) <= 0.15
    assert transcript.language == "en"
    assert transcript.language_probability is not None and transcript.language_probability > 0.5
    assert transcript.words and len(transcript.words) >= 40
    assert fractions[-1] > 0.8


@pytest.mark.real_weights
def test_base_accepts_translate(base_engine: WhisperEngine, speech_wav: Path) -> None:
    transcript, _ = _transcribe(base_engine, speech_wav, TranscribeOptions(task="translate", language="en"))
    assert transcript.task == "translate"
    assert wer("Please open the door and turn on the lights in the kitchen.", transcript.text) <= 0.2


@pytest.mark.real_weights
def test_english_only_model_refuses_translation_and_other_languages(
    whisper_tiny_en_dir: Path, speech_wav: Path
) -> None:
    engine, _, _ = _load(whisper_tiny_en_dir, "whisper-tiny.en")
    transcript, _ = _transcribe(engine, speech_wav, TranscribeOptions())
    assert wer("Please open the door and turn on the lights in the kitchen.", transcript.text) <= 0.1
    with pytest.raises(errors.InvalidParams, match="English-only"):
        _transcribe(engine, speech_wav, TranscribeOptions(task="translate"))
    with pytest.raises(errors.InvalidParams, match="English-only"):
        _transcribe(engine, speech_wav, TranscribeOptions(language="de"))


def test_encoder_windows_follow_the_audio_length() -> None:
    second = 16000
    assert window_frames(5 * second, "medium") == 1000
    assert window_frames(12 * second, "medium") == window_frames(12 * second, "short") == 2000
    assert window_frames(25 * second, "medium") is None and window_frames(5 * second, "full") is None
    assert window_frames(3 * second, "fit") == 500


@pytest.mark.real_weights
@pytest.mark.parametrize("window", ["full", "short", "medium", "fit"])
def test_base_hears_a_sentence_in_every_encoder_window(
    base_engine: WhisperEngine, speech_wav: Path, window: EncoderWindow
) -> None:
    options = TranscribeOptions(language="en", encoder_window=window, word_timestamps=True)
    transcript, _ = _transcribe(base_engine, speech_wav, options)
    assert wer("Please open the door and turn on the lights in the kitchen.", transcript.text) <= 0.1
    assert transcript.words and transcript.words[-1].end <= transcript.duration
