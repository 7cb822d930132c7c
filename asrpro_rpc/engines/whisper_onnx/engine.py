"""The ``whisper-onnx`` engine: a Whisper export in onnx-community's layout run on ONNX Runtime.

Audio is read in windows of up to 30 s (cut at quiet points); each is encoded once, its language detected
on the first window when not given, and decoded greedily with timestamps into segments. Translation uses
``<|translate|>`` (multilingual exports). Word times are estimated (a segment's time spread over its words
by length): the export has no cross-attention outputs to align words with.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asrpro_rpc import errors
from asrpro_rpc.engines.base import LoadInfo, LoadProgress, LoadSpec, SegmentSink, load_done
from asrpro_rpc.engines.onnx_providers import build_on, providers_for, session_options, start_provider
from asrpro_rpc.engines.whisper_onnx.decoding import (
    SAMPLE_RATE_HZ,
    TIMESTAMP_S,
    WINDOW_S,
    Decoded,
    WhisperSessions,
)
from asrpro_rpc.engines.whisper_onnx.vocabulary import Vocabulary, read_vocabulary
from asrpro_rpc.transcripts.types import Segment, TranscribeOptions, Transcript, Word

if TYPE_CHECKING:
    from asrpro_rpc.engines.chunking import Audio

ENCODER = "onnx/encoder_model{}.onnx"
DECODER = "onnx/decoder_model_merged{}.onnx"
VARIANTS = {"float32": "", "float16": "_fp16", "int8": "_int8"}
"""compute_type -> the file suffix onnx-community gives that precision."""


class WhisperOnnxEngine:
    """One loaded Whisper export; ``transcribe`` may run from several threads (sessions are thread-safe)."""

    def __init__(self) -> None:
        self._sessions: WhisperSessions | None = None
        self._model_id = ""

    def load(self, spec: LoadSpec, progress: LoadProgress) -> LoadInfo:
        started_s = time.perf_counter()
        directory = Path(spec.model_path)
        config, generation = _read_configs(spec, directory)
        progress(0.05, "importing ONNX Runtime")
        try:
            import onnxruntime
        except ImportError as exc:
            raise errors.EngineUnavailable(
                f"ONNX Runtime is not installed ({exc}); install it with: pip install 'asrpro-rpc[onnx]'",
                engine="whisper-onnx",
            ) from exc
        device, warnings = start_provider(spec.device, onnxruntime)
        compute_type, suffix, more = _variant(spec, directory)
        warnings += more
        multilingual = bool(generation.get("is_multilingual", int(config.get("vocab_size", 0)) >= 51865))
        vocabulary = read_vocabulary(directory, multilingual)
        progress(0.3, f"loading the ONNX model on {device}")

        def build(device: str) -> WhisperSessions:
            options = session_options(onnxruntime, spec.cpu_threads)
            providers = providers_for(device)
            encoder = onnxruntime.InferenceSession(
                str(directory / ENCODER.format(suffix)), options, providers
            )
            decoder = onnxruntime.InferenceSession(
                str(directory / DECODER.format(suffix)), options, providers
            )
            sessions = WhisperSessions(
                encoder,
                decoder,
                vocabulary,
                mel_bins=int(config.get("num_mel_bins", 80)),
                suppress=list(generation.get("suppress_tokens") or config.get("suppress_tokens") or []),
                begin_suppress=list(
                    generation.get("begin_suppress_tokens") or config.get("begin_suppress_tokens") or []
                ),
                max_positions=int(config.get("max_target_positions", 448)),
            )
            # one token on silence: a provider that starts but can't run these graphs fails here
            sessions.decode(sessions.encode(_silence()), [vocabulary.sot], 1, lambda: False)
            return sessions

        try:
            self._sessions, device = build_on(device, build, warnings)
        except errors.AsrproError:
            raise
        except Exception as exc:
            raise errors.ModelLoadFailed(
                f"Could not load Whisper ONNX model {spec.model_id!r} from {spec.model_path}: "
                f"{type(exc).__name__}: {exc}",
                model_id=spec.model_id,
            ) from exc
        self._model_id = spec.model_id
        provider = self._sessions.encoder.get_providers()[0]
        return load_done(
            spec, started_s, device=device, compute_type=compute_type, warnings=warnings, provider=provider
        )

    def transcribe(
        self,
        audio: Audio,
        options: TranscribeOptions,
        on_progress: Callable[[float], None],
        is_cancelled: Callable[[], bool],
        on_segment: SegmentSink | None = None,
    ) -> Transcript:
        sessions = self._sessions
        if sessions is None:
            raise errors.InternalError("No model is loaded in this engine.")
        vocabulary = sessions.vocabulary
        _check_options(options, vocabulary, self._model_id)
        language, language_probability = options.language, None
        segments: list[Segment] = []
        for start, samples in audio.windows(WINDOW_S):
            if is_cancelled():
                raise errors.RequestCancelled("The transcription was cancelled.")
            offset_s, window_s = start / SAMPLE_RATE_HZ, len(samples) / SAMPLE_RATE_HZ
            if not len(samples):
                break
            states = sessions.encode(samples)
            del samples
            if language is None:
                language, language_probability = (
                    sessions.detect_language(states) if vocabulary.languages else ("en", None)
                )
            prompt = [vocabulary.sot]
            if vocabulary.languages:
                task = vocabulary.translate if options.task == "translate" else vocabulary.transcribe
                prompt += [vocabulary.languages[language], task]
            decoded = sessions.decode(
                states, prompt, options.max_new_tokens or 448, is_cancelled, options.repetition_penalty or 1.0
            )
            for segment in split_segments(
                decoded,
                vocabulary,
                offset_s=offset_s,
                window_s=window_s,
                first_id=len(segments),
                word_timestamps=options.word_timestamps,
            ):
                segments.append(segment)
                if on_segment is not None:
                    on_segment(segment)
            fraction = audio.fraction(offset_s + window_s)
            if fraction is not None:
                on_progress(fraction)
        return Transcript(
            text="".join(s.text for s in segments).strip(),
            language=language or "en",
            duration=audio.read_s,
            segments=segments,
            task=options.task,
            language_probability=language_probability,
            words=[w for s in segments for w in s.words or ()] if options.word_timestamps else None,
            model=self._model_id,
        )

    def unload(self) -> None:
        self._sessions = None


def split_segments(
    decoded: Decoded,
    vocabulary: Vocabulary,
    *,
    offset_s: float,
    window_s: float,
    first_id: int,
    word_timestamps: bool,
) -> list[Segment]:
    """A window's tokens into segments at their timestamp tokens (absolute times, ids from ``first_id``).

    Text after the last timestamp ends with the window.
    """
    begin = vocabulary.timestamp_begin
    limit_s = math.floor((offset_s + window_s) * 1000) / 1000  # no time past the window's last sample
    segments: list[Segment] = []
    start_s: float | None = None
    text: list[int] = []
    logprobs: list[float] = []

    def close(end_s: float) -> None:
        content = vocabulary.text(text)
        if content.strip():
            first_s = min(round(offset_s + (start_s or 0.0), 3), limit_s)
            segments.append(
                _segment(
                    first_id + len(segments),
                    seek=round(offset_s * 100),
                    start_s=first_s,
                    end_s=min(max(round(offset_s + end_s, 3), first_s), limit_s),
                    content=content,
                    tokens=text,
                    logprobs=logprobs,
                    no_speech_prob=decoded.no_speech_prob,
                    vocabulary=vocabulary if word_timestamps else None,
                )
            )
        text.clear()
        logprobs.clear()

    for token, logprob in zip(decoded.tokens, decoded.logprobs, strict=True):
        if token >= begin:
            time_s = (token - begin) * TIMESTAMP_S
            if start_s is None or not text:
                start_s = time_s
            else:
                close(time_s)
                start_s = None
        elif token != vocabulary.eot:
            text.append(token)
            logprobs.append(logprob)
    close(window_s)
    return segments


def _segment(
    segment_id: int,
    *,
    seek: int,
    start_s: float,
    end_s: float,
    content: str,
    tokens: list[int],
    logprobs: list[float],
    no_speech_prob: float,
    vocabulary: Vocabulary | None,
) -> Segment:
    """A segment in absolute seconds; ``vocabulary`` given: with estimated words."""
    data = content.encode("utf-8")
    return Segment(
        id=segment_id,
        start=start_s,
        end=end_s,
        text=content,
        seek=seek,
        tokens=list(tokens),
        temperature=0.0,
        avg_logprob=sum(logprobs) / len(logprobs),
        compression_ratio=len(data) / len(zlib.compress(data)),
        no_speech_prob=no_speech_prob,
        words=None if vocabulary is None else _estimated_words(tokens, logprobs, vocabulary, start_s, end_s),
    )


def _estimated_words(
    tokens: list[int], logprobs: list[float], vocabulary: Vocabulary, start_s: float, end_s: float
) -> list[Word]:
    """Words (a token with a leading space starts one) timed by spreading the segment over their lengths."""
    groups: list[list[int]] = []
    for i, token in enumerate(tokens):
        if not groups or vocabulary.text([token]).startswith(" "):
            groups.append([])
        groups[-1].append(i)
    texts = [vocabulary.text([tokens[i] for i in group]) for group in groups]
    total = sum(len(t.strip()) for t in texts) or 1
    words, at_s = [], start_s
    for group, text in zip(groups, texts, strict=True):
        if not text.strip():
            continue
        length_s = (end_s - start_s) * len(text.strip()) / total
        probability = math.exp(sum(logprobs[i] for i in group))
        words.append(
            Word(
                " " + text.strip(),
                round(at_s, 3),
                round(min(at_s + length_s, end_s), 3),
                round(probability, 4),
            )
        )
        at_s += length_s
    return words


def _check_options(options: TranscribeOptions, vocabulary: Vocabulary, model_id: str) -> None:
    if not vocabulary.languages:
        if options.task == "translate":
            raise errors.InvalidParams(
                f"Model {model_id!r} is English-only and can't translate; choose a multilingual model.",
                model_id=model_id,
            )
        if options.language not in (None, "en"):
            raise errors.InvalidParams(
                f"Model {model_id!r} is English-only; it cannot transcribe language {options.language!r}.",
                model_id=model_id,
                language=options.language,
            )
    elif options.language is not None and options.language not in vocabulary.languages:
        raise errors.InvalidParams(
            f"Model {model_id!r} has no language {options.language!r}; use an ISO 639-1 code such as 'en' "
            f"(it knows {len(vocabulary.languages)} languages).",
            model_id=model_id,
            language=options.language,
        )


def _read_configs(spec: LoadSpec, directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``config.json`` (must say ``model_type: whisper``) and ``generation_config.json`` (may be absent)."""
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise errors.ModelLoadFailed(
            f"{directory} is not a Whisper ONNX export: can't read config.json ({exc}).",
            model_id=spec.model_id,
        ) from exc
    if not isinstance(config, dict) or config.get("model_type") != "whisper":
        model_type = config.get("model_type") if isinstance(config, dict) else None
        raise errors.ModelLoadFailed(
            f"The whisper-onnx engine runs Whisper exports (model_type 'whisper'); {directory} holds "
            f"model_type {model_type!r}.",
            model_id=spec.model_id,
        )
    try:
        generation = json.loads((directory / "generation_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        generation = {}
    return config, generation if isinstance(generation, dict) else {}


def _variant(spec: LoadSpec, directory: Path) -> tuple[str, str, list[str]]:
    """``(compute_type, file suffix, warnings)``: the requested precision when its files are there."""
    requested = spec.compute_type if spec.compute_type not in (None, "auto", "default") else "float32"
    assert requested is not None
    key = "int8" if requested.startswith("int8") else requested
    suffix = VARIANTS.get(key)
    if suffix is not None and all((directory / f.format(suffix)).is_file() for f in (ENCODER, DECODER)):
        return key, suffix, []
    missing = [f.format("") for f in (ENCODER, DECODER) if not (directory / f.format("")).is_file()]
    if missing:
        raise errors.ModelLoadFailed(
            f"{directory} is not a complete Whisper ONNX export: missing {', '.join(missing)}.",
            model_id=spec.model_id,
            missing=missing,
        )
    warnings = (
        []
        if requested == "float32"
        else [f"This ONNX export has no {requested!r} variant; running it as float32."]
    )
    return "float32", "", warnings


def _silence() -> Any:
    import numpy as np

    return np.zeros(SAMPLE_RATE_HZ // 2, dtype=np.float32)
