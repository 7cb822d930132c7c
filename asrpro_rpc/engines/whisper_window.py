"""A shorter encoder window for short audio: Whisper's encoder sees 20 s instead of 30 s when the audio fits.

faster-whisper pads every decode to Whisper's 30 s window, so a 2 s dictation pays for 30 s of encoder. The
encoder runs on fewer frames (its positional table is sliced), and on CTranslate2's CPU kernels the cost
falls off a cliff below 30 s: whisper-base int8 on 2 cores encodes 3,000 frames in 0.80-0.90 s and 2,000 in
0.22 s (tiny.en: 0.36-0.44 s → 0.11 s). Shorter windows than 20 s lose accuracy (the decoder was trained on
30 s of context and starts to repeat or mishear), 20 s does not: on 18 espeak-ng sentences and sentence
pairs, corpus WER moved 0.118 → 0.122 (base) and 0.115 → 0.107 (tiny.en) while decodes took about half the
time (``bench/dictation.py`` prints the effect on streams and short files).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from faster_whisper import WhisperModel

SHORT_WINDOW_FRAMES = 2000
"""The encoder window for short audio: 20 s of 10 ms mel frames."""
_FRAMES_PER_S = 100
_MARGIN_S = 1.0
"""Audio must end this far inside the short window (the decoder wants to see some silence after speech)."""

_window = threading.local()
"""The frames the current thread's decode encodes (unset: faster-whisper's full window)."""


def window_frames(samples: int, sample_rate_hz: int = 16000) -> int | None:
    """The encoder window for audio of ``samples``: the short one when it fits, else None (the full one)."""
    fits = samples / sample_rate_hz + _MARGIN_S <= SHORT_WINDOW_FRAMES / _FRAMES_PER_S
    return SHORT_WINDOW_FRAMES if fits else None


@contextlib.contextmanager
def _encoding_with(frames: int | None) -> Iterator[None]:
    previous = getattr(_window, "frames", None)
    _window.frames = frames
    try:
        yield
    finally:
        _window.frames = previous


def _segments_with(frames: int | None, segments: Iterable[Any]) -> Iterator[Any]:
    """faster-whisper's lazy segments, each produced with the thread's window set to ``frames``."""
    iterator = iter(segments)
    while True:
        with _encoding_with(frames):
            segment = next(iterator, None)
        if segment is None:
            return
        yield segment


@functools.cache
def short_window_model_class() -> type[WhisperModel]:
    """faster-whisper's ``WhisperModel`` whose sequential ``transcribe`` encodes short audio in 20 s."""
    from faster_whisper import WhisperModel

    class ShortWindowWhisperModel(WhisperModel):
        def transcribe(self, audio: np.ndarray, *args: Any, **kwargs: Any) -> tuple[Iterable[Any], Any]:  # type: ignore[override]
            frames = window_frames(len(audio))
            with _encoding_with(frames):
                segments, info = super().transcribe(audio, *args, **kwargs)
            return _segments_with(frames, segments), info

        def encode(self, features: np.ndarray) -> Any:
            frames = getattr(_window, "frames", None)
            if frames is not None and features.shape[-1] > frames:
                features = features[..., :frames]
            return super().encode(features)

    return ShortWindowWhisperModel
