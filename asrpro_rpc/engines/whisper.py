"""faster-whisper (CTranslate2) engine: loads a local Whisper model directory and transcribes with it.

Audio longer than one Whisper chunk (30 s) is decoded with faster-whisper's batched pipeline unless the
request says ``batch_size: 1``: each speech chunk the VAD finds is decoded on its own, several at a time.
That is what made the sequential default 1.8-4x slower (one 30 s window after another, each conditioned on
the last one's text, re-decoded at higher temperatures when it looks wrong, with timestamp tokens), and on
repetitive speech less accurate too (the previous text's conditioning repeats or drops sentences).
Short audio (dictation, stream decodes) stays sequential: one chunk has nothing to batch.

Only the local path given is ever read: nothing here downloads (a missing ``tokenizer.json`` would make
faster-whisper fetch one from the hub, so it is checked up front).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from asrpro_rpc import errors
from asrpro_rpc.engines.base import LoadInfo, LoadProgress, LoadSpec, SegmentSink, load_done
from asrpro_rpc.engines.whisper_window import windowed_model_class
from asrpro_rpc.system.process import default_cpu_threads
from asrpro_rpc.transcripts.types import Segment, TranscribeOptions, Transcript, Word
from asrpro_rpc.transcripts.vocabulary import VocabularyRules

if TYPE_CHECKING:
    from types import ModuleType

    import numpy as np
    from faster_whisper import WhisperModel

    from asrpro_rpc.engines.chunking import Audio
    from asrpro_rpc.system.hardware import DeviceReport


_REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
_SAFE_CPU_COMPUTE_TYPE = "int8"
_SAMPLE_RATE_HZ = 16000
BATCHED_MIN_S = 30.0
"""Audio longer than this (one Whisper chunk) is batched by default."""
DEFAULT_BATCH_SIZE = {"cpu": 4, "cuda": 16}
"""Batch size when the request gives none, by device. CPU: batches of 4, 8 and 16 cost the same CPU time
(bench/transcribe_overhead.py: the gain over sequential is decoding chunks independently, not batching), and
a cancel or a priority pause waits for the batch being decoded, so the smallest of them. CUDA: a five-minute
window holds at most about 15 VAD chunks of up to 30 s, so 16 decodes a window in one pass."""


class WhisperEngine:
    """A Whisper model loaded with faster-whisper; ``transcribe`` is safe to call from several threads."""

    def __init__(self) -> None:
        self._model: WhisperModel | None = None
        self._model_id = ""
        self._default_batch_size = DEFAULT_BATCH_SIZE["cpu"]

    def load(self, spec: LoadSpec, progress: LoadProgress) -> LoadInfo:
        started_s = time.perf_counter()
        _check_model_dir(spec)
        progress(0.0, "importing faster-whisper")
        try:
            import ctranslate2

            model_class = windowed_model_class()  # imports faster-whisper
        except ImportError as exc:
            raise errors.EngineUnavailable(
                f"faster-whisper is not installed ({exc}); install it: pip install 'asrpro-rpc[whisper]'",
                engine="whisper",
            ) from exc
        from asrpro_rpc.system.hardware import choose_compute_type, choose_device, ct2_compute_types

        chosen, warnings = choose_device(
            spec.device, _ct2_device_report(ctranslate2), supported=("cpu", "cuda")
        )
        device: str = chosen
        compute_type, more = choose_compute_type(device, spec.compute_type, ct2_compute_types(device))
        warnings += more
        progress(0.2, "loading weights")

        def build(device: str, compute_type: str) -> WhisperModel:
            return model_class(
                spec.model_path,
                device=device,
                device_index=spec.device_index,
                compute_type=compute_type,
                # The cores are shared among the transcription slots (on 2 cores one thread per decode,
                # as fast as two here), and interactive requests have slots of their own (the model
                # manager's), so they get workers of their own too: CTranslate2 queues calls beyond its
                # workers first come, first served, and a dictation would wait behind a file's batch.
                cpu_threads=spec.cpu_threads or default_cpu_threads(spec.max_concurrency),
                num_workers=2 * max(1, spec.max_concurrency),
                local_files_only=True,
            )

        try:
            try:
                model = build(device, compute_type)
            except (RuntimeError, ValueError) as exc:
                fallback = _fallback(device, compute_type, exc)
                if fallback is None:
                    raise
                device, compute_type = fallback
                warnings.append(f"{exc} Using {compute_type} on {device} instead.")
                model = build(device, compute_type)
        except (RuntimeError, ValueError, OSError) as exc:
            raise errors.ModelLoadFailed(
                f"Could not load model {spec.model_id!r} from {spec.model_path}: {exc}",
                model_id=spec.model_id,
            ) from exc
        self._model = model
        self._default_batch_size = DEFAULT_BATCH_SIZE.get(device, DEFAULT_BATCH_SIZE["cpu"])
        self._model_id = spec.model_id
        progress(1.0, "ready")
        return load_done(
            spec, started_s, device=device, compute_type=model.model.compute_type, warnings=warnings
        )

    def transcribe(
        self,
        audio: Audio,
        options: TranscribeOptions,
        on_progress: Callable[[float], None],
        is_cancelled: Callable[[], bool],
        on_segment: SegmentSink | None = None,
    ) -> Transcript:
        if self._model is None:
            raise errors.InternalError("No model is loaded in this engine.")
        self._check_options(options)
        batch_size = self._batch_size(options, audio.expected_s)
        segments: list[Segment] = []
        language, language_probability = options.language, None
        for start, samples in audio.windows():
            if is_cancelled():
                raise errors.RequestCancelled("The transcription was cancelled.")
            offset_s = start / _SAMPLE_RATE_HZ
            window_options = msgspec.structs.replace(options, language=language)
            segments_iter, info = self._run(samples, window_options, batch_size)
            if language is None:
                language, language_probability = info.language, float(info.language_probability)
            for raw in segments_iter:
                if is_cancelled():
                    raise errors.RequestCancelled("The transcription was cancelled.")
                segments.append(_segment(raw, len(segments), offset_s))
                if on_segment is not None:
                    on_segment(segments[-1])
                _report(on_progress, audio.fraction(offset_s + float(raw.end)))
            _report(on_progress, audio.fraction(offset_s + len(samples) / _SAMPLE_RATE_HZ))  # silence too
            del samples, segments_iter
        words = [w for s in segments for w in s.words or ()] if options.word_timestamps else None
        return Transcript(
            text="".join(s.text for s in segments).strip(),
            language=language or "en",
            duration=audio.read_s,
            segments=segments,
            task=options.task,
            language_probability=language_probability,
            words=words,
            model=self._model_id,
        )

    def _batch_size(self, options: TranscribeOptions, audio_s: float | None) -> int:
        """The request's batch size, or by default the device's for audio longer than one chunk (or of
        unknown length) with the VAD on (batches are its speech chunks), else 1: sequential."""
        if options.batch_size is not None:
            return options.batch_size
        if options.vad_filter and (audio_s is None or audio_s > BATCHED_MIN_S):
            return self._default_batch_size
        return 1

    def _run(
        self, audio: np.ndarray, options: TranscribeOptions, batch_size: int
    ) -> tuple[Iterable[Any], Any]:
        """faster-whisper on one window: the lazy segment iterator and its info."""
        assert self._model is not None
        kwargs = _transcribe_kwargs(options)
        if batch_size > 1 and len(audio):
            from faster_whisper import BatchedInferencePipeline

            # One pipeline per window: it keeps word-timing state between batches, which concurrent
            # requests would share and a cancelled one would leave behind.
            return BatchedInferencePipeline(self._model).transcribe(audio, batch_size=batch_size, **kwargs)
        return self._model.transcribe(audio, encoder_window=options.encoder_window, **kwargs)

    def unload(self) -> None:
        self._model = None

    def _check_options(self, options: TranscribeOptions) -> None:
        assert self._model is not None
        if options.batch_size is not None and options.batch_size > 1 and not options.vad_filter:
            raise errors.InvalidParams("batch_size > 1 needs vad_filter=true (batches are speech chunks).")
        if self._model.model.is_multilingual:
            if options.language is not None and options.language not in self._model.supported_languages:
                raise errors.InvalidParams(
                    f"Unknown language code {options.language!r}; use an ISO 639-1 code such as 'en'.",
                    language=options.language,
                )
            return
        if options.task == "translate":
            raise errors.InvalidParams(
                f"Model {self._model_id!r} is English-only and can't translate; choose a multilingual model.",
                model_id=self._model_id,
            )
        if options.language not in (None, "en"):
            raise errors.InvalidParams(
                f"Model {self._model_id!r} is English-only; it cannot transcribe language "
                f"{options.language!r}. Choose a multilingual model.",
                model_id=self._model_id,
                language=options.language,
            )


def _report(on_progress: Callable[[float], None], fraction: float | None) -> None:
    if fraction is not None:
        on_progress(fraction)


def _check_model_dir(spec: LoadSpec) -> None:
    if not os.path.isdir(spec.model_path):
        raise errors.ModelLoadFailed(
            f"Model directory {spec.model_path} does not exist.", model_id=spec.model_id
        )
    missing = [f for f in _REQUIRED_FILES if not os.path.isfile(os.path.join(spec.model_path, f))]
    if missing:
        raise errors.ModelLoadFailed(
            f"Model directory {spec.model_path} is incomplete: missing {', '.join(missing)}.",
            model_id=spec.model_id,
            missing=missing,
        )


def _ct2_device_report(ctranslate2: ModuleType) -> DeviceReport:
    """Just enough of a device report to choose between CPU and CUDA (no nvidia-smi, no torch)."""
    from asrpro_rpc.system.hardware import DeviceReport

    try:
        return DeviceReport(cuda_device_count=ctranslate2.get_cuda_device_count())
    except RuntimeError:
        return DeviceReport()


def _fallback(device: str, compute_type: str, exc: Exception) -> tuple[str, str] | None:
    """Where to retry after CTranslate2 refused ``device``/``compute_type``, or None to give up."""
    if device == "cuda" and isinstance(exc, RuntimeError) and "CUDA" in str(exc):
        return "cpu", _SAFE_CPU_COMPUTE_TYPE
    if device == "cpu" and compute_type != _SAFE_CPU_COMPUTE_TYPE and "compute type" in str(exc):
        return "cpu", _SAFE_CPU_COMPUTE_TYPE
    return None


def _transcribe_kwargs(options: TranscribeOptions) -> dict[str, Any]:
    """faster-whisper keyword arguments for ``options`` (unset ones keep faster-whisper's defaults); the
    vocabulary's words go in as ``hotwords``, decoding hints placed before the prompt."""
    kwargs: dict[str, Any] = {
        "language": options.language,
        "task": options.task,
        "initial_prompt": options.prompt,
        "beam_size": options.beam_size,
        "best_of": options.best_of,
        "vad_filter": options.vad_filter,
        "word_timestamps": options.word_timestamps,
        "condition_on_previous_text": options.condition_on_previous_text,
        "max_new_tokens": options.max_new_tokens,
    }
    if options.repetition_penalty is not None:
        kwargs["repetition_penalty"] = options.repetition_penalty
    hotwords = VocabularyRules.of(options.vocabulary).hotwords()
    if hotwords is not None:
        kwargs["hotwords"] = hotwords
    if options.temperature is not None:
        kwargs["temperature"] = options.temperature
    if options.vad is not None:
        kwargs["vad_parameters"] = msgspec.to_builtins(options.vad)
    return kwargs


def _segment(raw: Any, index: int, offset_s: float) -> Segment:
    """Our Segment from faster-whisper's, shifted by the window's start ``offset_s``."""
    return Segment(
        id=index,
        start=offset_s + float(raw.start),
        end=offset_s + float(raw.end),
        text=raw.text,
        seek=raw.seek + int(offset_s * 100),
        tokens=list(raw.tokens),
        temperature=float(raw.temperature or 0.0),
        avg_logprob=float(raw.avg_logprob),
        compression_ratio=float(raw.compression_ratio),
        no_speech_prob=float(raw.no_speech_prob),
        words=[
            Word(
                word=w.word,
                start=offset_s + float(w.start),
                end=offset_s + float(w.end),
                probability=float(w.probability),
            )
            for w in raw.words
        ]
        if raw.words is not None
        else None,
    )
