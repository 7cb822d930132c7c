"""Shorter encoder windows for short audio: Whisper's encoder sees 20 s (or just the audio) instead of 30 s.

faster-whisper pads every decode to Whisper's 30 s window, so a 2 s dictation pays for 30 s of encoder. The
encoder runs on fewer frames (its positional table is sliced), and on CTranslate2's CPU kernels the cost
falls off a cliff below 30 s: whisper-base int8 on 2 cores encodes 3,000 frames in 0.80-0.90 s and 2,000 in
0.22 s (tiny.en: 0.36-0.44 s → 0.11 s). Three windows (``TranscribeOptions.encoder_window``):

- ``short`` (the default), 20 s when the audio fits: on 18 espeak-ng sentences and sentence pairs, corpus
  WER moved 0.118 → 0.122 (base) and 0.115 → 0.107 (tiny.en) while decodes took about half the time.
- ``medium``, 10 s when the audio fits (else as ``short``): ``bench/encoder_window.py`` (90 clips, 1 thread,
  beam 5, whisper-base) against ``short``: 0.097 → 0.101 at 0.54x the time. Streams' final decodes use it
  (a dictation's last sentence decodes in 0.3 s instead of 0.55 s).
- ``fit``, the audio plus 2 s: half the time again, a little less accurate (the decoder was trained on 30 s
  of context). ``bench/encoder_window.py`` (90 clips, 1 thread) against ``short``: greedy base 0.130 →
  0.147 at 0.46x the time, beam 5 0.101 → 0.120 at 0.49x. Dictation streams' partial re-decodes use it
  (their final decodes have the last word, in ``medium``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from asrpro_rpc.transcripts.types import EncoderWindow

if TYPE_CHECKING:
    import numpy as np
    from faster_whisper import WhisperModel

SHORT_WINDOW_FRAMES = 2000
"""The ``short`` encoder window: 20 s of 10 ms mel frames."""
MEDIUM_WINDOW_FRAMES = 1000
_FULL_WINDOW_FRAMES = 3000
_FRAMES_PER_S = 100
_MARGIN_S = 1.0
"""Audio must end this far inside the short or medium window (the decoder wants some silence after speech)."""
FIT_MARGIN_S = 2.0
"""The ``fit`` window: the audio plus this much, in whole seconds (1 s loses words: greedy base 0.160)."""

_window = threading.local()
"""The frames the current thread's decode encodes (unset: faster-whisper's full window)."""


def window_frames(samples: int, window: EncoderWindow = "short", sample_rate_hz: int = 16000) -> int | None:
    """The encoder window for audio of ``samples``; None: the full one (``full``, or too long audio)."""
    audio_s = samples / sample_rate_hz
    if window == "fit":
        frames = math.ceil(audio_s + FIT_MARGIN_S) * _FRAMES_PER_S
    elif window == "medium" and audio_s + _MARGIN_S <= MEDIUM_WINDOW_FRAMES / _FRAMES_PER_S:
        frames = MEDIUM_WINDOW_FRAMES
    elif window in ("short", "medium") and audio_s + _MARGIN_S <= SHORT_WINDOW_FRAMES / _FRAMES_PER_S:
        frames = SHORT_WINDOW_FRAMES
    else:
        return None
    return frames if frames < _FULL_WINDOW_FRAMES else None


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
def windowed_model_class() -> type[WhisperModel]:
    """faster-whisper's ``WhisperModel`` whose sequential ``transcribe`` takes an ``encoder_window``."""
    from faster_whisper import WhisperModel

    class WindowedWhisperModel(WhisperModel):
        def transcribe(  # type: ignore[override]
            self, audio: np.ndarray, *args: Any, encoder_window: EncoderWindow = "short", **kwargs: Any
        ) -> tuple[Iterable[Any], Any]:
            frames = window_frames(len(audio), encoder_window)
            with _encoding_with(frames):
                segments, info = super().transcribe(audio, *args, **kwargs)
            return _segments_with(frames, segments), info

        def encode(self, features: np.ndarray) -> Any:
            frames = getattr(_window, "frames", None)
            if frames is not None and features.shape[-1] > frames:
                features = features[..., :frames]
            return super().encode(features)

    return WindowedWhisperModel
