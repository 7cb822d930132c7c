"""Split long audio into windows at quiet points, so an engine's memory stays bounded.

Engines transcribe each window on its own and shift its timestamps by the window's start. A cut is
placed at the quietest moment (lowest short-term energy) in the last ``search_s`` seconds before each
nominal boundary, so words are rarely split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

WINDOW_S = 300.0
"""Nominal window length: bounds the engine's working memory to about five minutes of audio."""
SEARCH_S = 20.0
"""How far before each boundary to look for a quiet cut point."""
_FRAME_S = 0.1


def window_bounds(
    audio: np.ndarray, sample_rate_hz: int = 16000, window_s: float = WINDOW_S, search_s: float = SEARCH_S
) -> list[tuple[int, int]]:
    """``(start, end)`` sample indices covering ``audio`` in order, each at most ``window_s`` long."""
    import numpy as np

    total = len(audio)
    window = int(window_s * sample_rate_hz)
    if total <= window:
        return [(0, total)]
    frame = max(1, int(_FRAME_S * sample_rate_hz))
    search = max(frame, int(search_s * sample_rate_hz))
    bounds: list[tuple[int, int]] = []
    start = 0
    while total - start > window:
        lo = start + window - search
        region = audio[lo : start + window]
        frames = len(region) // frame
        energy = np.square(region[: frames * frame].reshape(frames, frame), dtype=np.float32).mean(axis=1)
        cut = lo + int(np.argmin(energy)) * frame + frame // 2
        bounds.append((start, cut))
        start = cut
    bounds.append((start, total))
    return bounds
