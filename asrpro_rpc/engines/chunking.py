"""Split long audio into windows at quiet points, so an engine's memory stays bounded.

Engines transcribe each window on its own and shift its timestamps by the window's start. A cut is
placed in the last ``search_s`` seconds before each nominal boundary, at the quietest moment (lowest
short-term energy) or, with ``silero_cut_finder``, in the middle of the longest pause the VAD hears, so
words are rarely split.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

CutFinder = Callable[["np.ndarray", int], int]
"""``(region, sample_rate_hz) -> offset`` of the best cut inside ``region`` (the search range)."""

WINDOW_S = 300.0
"""Nominal window length: bounds the engine's working memory to about five minutes of audio."""
SEARCH_S = 20.0
"""How far before each boundary to look for a quiet cut point."""
_FRAME_S = 0.1


def window_bounds(
    audio: np.ndarray,
    sample_rate_hz: int = 16000,
    window_s: float = WINDOW_S,
    search_s: float = SEARCH_S,
    find_cut: CutFinder | None = None,
) -> list[tuple[int, int]]:
    """``(start, end)`` sample indices covering ``audio`` in order, each at most ``window_s`` long.

    ``find_cut`` picks each cut inside its search range (default: the quietest frame).
    """
    total = len(audio)
    window = int(window_s * sample_rate_hz)
    if total <= window:
        return [(0, total)]
    search = max(int(_FRAME_S * sample_rate_hz), int(search_s * sample_rate_hz))
    finder = find_cut or quietest_cut
    bounds: list[tuple[int, int]] = []
    start = 0
    while total - start > window:
        lo = start + window - search
        cut = lo + min(max(finder(audio[lo : start + window], sample_rate_hz), 1), search)
        bounds.append((start, cut))
        start = cut
    bounds.append((start, total))
    return bounds


def quietest_cut(region: np.ndarray, sample_rate_hz: int) -> int:
    """The middle of the frame with the lowest short-term energy."""
    import numpy as np

    frame = max(1, int(_FRAME_S * sample_rate_hz))
    frames = max(1, len(region) // frame)
    energy = np.square(region[: frames * frame].reshape(frames, -1), dtype=np.float32).mean(axis=1)
    return int(np.argmin(energy)) * frame + frame // 2


def silero_cut_finder() -> CutFinder:
    """Cuts in the middle of the longest pause Silero VAD finds (the model bundled with faster-whisper).

    Falls back to ``quietest_cut`` where the VAD finds no pause, or when faster-whisper isn't installed.
    """
    try:
        from faster_whisper.vad import VadOptions, get_speech_timestamps
    except ImportError:
        log.info("faster-whisper isn't installed: long audio is cut at its quietest points instead of by VAD")
        return quietest_cut
    options = VadOptions(min_silence_duration_ms=200, speech_pad_ms=0)

    def find(region: np.ndarray, sample_rate_hz: int) -> int:
        speech = get_speech_timestamps(region, options, sampling_rate=sample_rate_hz)
        edges = [0, *(x for s in speech for x in (s["start"], s["end"])), len(region)]
        pauses = [(edges[i + 1] - edges[i], edges[i], edges[i + 1]) for i in range(0, len(edges), 2)]
        length, lo, hi = max(pauses)
        if not speech:
            return len(region)
        if length <= 0:
            return quietest_cut(region, sample_rate_hz)
        return int(lo + hi) // 2

    return find
