"""What the Parakeet engines (NeMo and ONNX) share: windows over long audio, words into segments, language.

Each engine turns one window of audio into timed words; this module runs the windows in order (progress
after each, cancellation between them), shifts the words to absolute times and groups them into segments.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from asrpro_rpc import errors
from asrpro_rpc.transcripts.types import Segment, TranscribeOptions, Transcript, Word

if TYPE_CHECKING:
    import numpy as np

    from asrpro_rpc.engines.base import SegmentSink
    from asrpro_rpc.engines.chunking import Audio, CutFinder

SAMPLE_RATE_HZ = 16000
SENTENCE_ENDS = (".", "?", "!", "。", "？", "！")
PAUSE_S = 1.0
"""A pause at least this long between two words starts a new segment."""
MAX_SEGMENT_S = 20.0
"""Segments are cut before they grow longer than this (subtitles stay readable)."""

WindowTranscriber = Callable[["np.ndarray"], list[Word]]
"""Transcribes one window; word times are relative to the window's start."""


def transcribe_in_windows(
    audio: Audio,
    transcribe_window: WindowTranscriber,
    on_progress: Callable[[float], None],
    is_cancelled: Callable[[], bool],
    *,
    window_s: float,
    find_cut: CutFinder | None = None,
) -> list[list[Word]]:
    """Each window's words in absolute seconds, windows in order; raises RequestCancelled between windows."""
    windows: list[list[Word]] = []
    for start, samples in audio.windows(window_s, find_cut=find_cut):
        if is_cancelled():
            raise errors.RequestCancelled("The transcription was cancelled.")
        offset_s, end_s = start / SAMPLE_RATE_HZ, (start + len(samples)) / SAMPLE_RATE_HZ
        words = [_shift(w, offset_s, end_s) for w in transcribe_window(samples)]
        del samples
        windows.append(_monotonic(words))
        fraction = audio.fraction(end_s)
        if fraction is not None:
            on_progress(fraction)
    return windows


def transcribe_parakeet(
    audio: Audio,
    options: TranscribeOptions,
    transcribe_window: WindowTranscriber,
    on_progress: Callable[[float], None],
    is_cancelled: Callable[[], bool],
    *,
    languages: Sequence[str],
    model_id: str,
    window_s: float,
    on_segment: SegmentSink | None = None,
) -> Transcript:
    """The whole of a Parakeet engine's ``transcribe`` but the per-window model call."""
    language = check_language(options, languages, model_id)
    windows = transcribe_in_windows(
        audio,
        transcribe_window,
        on_progress,
        is_cancelled,
        window_s=window_s,
        find_cut=lambda region, rate: _shared_cut_finder()(region, rate),  # built at the first cut only
    )
    transcript = build_transcript(
        windows,
        duration_s=audio.read_s,
        language=language,
        word_timestamps=options.word_timestamps,
        model_id=model_id,
    )
    for segment in transcript.segments if on_segment is not None else ():
        on_segment(segment)  # segments are only known once every window's words are in
    return transcript


@functools.cache
def _shared_cut_finder() -> CutFinder:
    """Silero VAD cut finder, built once per engine process (it loads an ONNX model)."""
    from asrpro_rpc.engines.chunking import silero_cut_finder

    return silero_cut_finder()


def build_transcript(
    windows: Sequence[Sequence[Word]],
    *,
    duration_s: float,
    language: str,
    word_timestamps: bool,
    model_id: str,
) -> Transcript:
    """Words grouped into segments (at sentence ends, pauses, ``MAX_SEGMENT_S`` and window ends)."""
    groups: list[list[Word]] = []
    for words in windows:
        current: list[Word] = []
        for word in words:
            if current and _starts_segment(current, word):
                groups.append(current)
                current = []
            current.append(word)
        if current:
            groups.append(current)
    segments = [
        Segment(
            id=i,
            start=group[0].start,
            end=group[-1].end,
            text="".join(w.word for w in group),
            seek=int(group[0].start * 100),
            avg_logprob=_avg_logprob(group),
            words=list(group) if word_timestamps else None,
        )
        for i, group in enumerate(groups)
    ]
    return Transcript(
        text="".join(s.text for s in segments).strip(),
        language=language,
        duration=duration_s,
        segments=segments,
        words=[w for group in groups for w in group] if word_timestamps else None,
        model=model_id,
    )


def check_language(options: TranscribeOptions, languages: Sequence[str], model_id: str) -> str:
    """The language to report (``und`` when a multilingual model wasn't told); rejects other languages."""
    if options.language is not None and languages and options.language not in languages:
        raise errors.InvalidParams(
            f"Model {model_id!r} transcribes {', '.join(languages)} only, not {options.language!r}.",
            model_id=model_id,
            language=options.language,
        )
    if options.language is not None:
        return options.language
    return languages[0] if len(languages) == 1 else "und"


def word(text: str, start_s: float, end_s: float, probability: float | None = None) -> Word:
    """A word as every engine writes it: a leading space (as Whisper), times rounded to milliseconds."""
    return Word(
        word=" " + text.strip(),
        start=round(start_s, 3),
        end=round(max(end_s, start_s), 3),
        probability=probability,
    )


def _shift(w: Word, offset_s: float, end_s: float) -> Word:
    """``w`` moved by ``offset_s``, kept inside its window (``end_s`` rounded down to the millisecond)."""
    end_ms = math.floor(end_s * 1000) / 1000
    start = min(round(offset_s + w.start, 3), end_ms)
    return Word(w.word, start, min(max(round(offset_s + w.end, 3), start), end_ms), w.probability)


def _monotonic(words: list[Word]) -> list[Word]:
    """No word starts before the previous one ended (frame rounding can overlap them by a frame)."""
    out: list[Word] = []
    for w in words:
        if out and w.start < out[-1].end:
            start = out[-1].end
            w = Word(w.word, start, max(w.end, start), w.probability)
        out.append(w)
    return out


def _starts_segment(current: list[Word], next_word: Word) -> bool:
    last = current[-1]
    return (
        last.word.rstrip().endswith(SENTENCE_ENDS)
        or next_word.start - last.end >= PAUSE_S
        or next_word.end - current[0].start > MAX_SEGMENT_S
    )


def _avg_logprob(words: Sequence[Word]) -> float:
    probabilities = [w.probability for w in words if w.probability is not None]
    if not probabilities:
        return 0.0
    return sum(math.log(max(p, 1e-12)) for p in probabilities) / len(probabilities)
