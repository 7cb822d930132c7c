"""Long audio as bounded windows cut at quiet points, read from a stream, so an engine's memory is
O(window) whatever the file's length.

``Audio`` wraps the decoder's blocks (or one in-memory array) and yields windows in order; engines
transcribe each window on its own and shift its timestamps by the window's start. A cut is placed in the
last ``search_s`` seconds before each nominal boundary, at the quietest moment (lowest short-term energy)
or, with ``silero_cut_finder``, in the middle of the longest pause the VAD hears, so words are rarely
split. Only the window in use and the one being filled are ever held (the lookahead is the search range).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
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
SAMPLE_RATE_HZ = 16000
_FRAME_S = 0.1
_ARRAY_BLOCK_S = 10.0


class Audio:
    """16 kHz mono float32 audio to transcribe, read once as windows (``windows``).

    ``expected_s`` is the length the source announced (a header's claim; None when unknown), for
    progress; ``read_s`` is what has been read so far (the whole duration once ``windows`` is done).
    """

    def __init__(self, blocks: Iterable[np.ndarray], expected_s: float | None) -> None:
        self._blocks = blocks
        self.expected_s = expected_s
        self.read_samples = 0

    @classmethod
    def from_array(cls, samples: np.ndarray) -> Audio:
        """In-memory samples (``TranscribeAudio``, tests), read in blocks as a decoder yields them."""
        block = int(_ARRAY_BLOCK_S * SAMPLE_RATE_HZ)
        blocks = (samples[i : i + block] for i in range(0, len(samples), block))
        return cls(blocks, len(samples) / SAMPLE_RATE_HZ)

    @property
    def read_s(self) -> float:
        return self.read_samples / SAMPLE_RATE_HZ

    def fraction(self, position_s: float) -> float | None:
        """How far ``position_s`` is into the announced length (below 1), or None when that is unknown."""
        if not self.expected_s:
            return None
        return min(position_s / self.expected_s, 0.99)

    def windows(
        self, window_s: float = WINDOW_S, search_s: float = SEARCH_S, find_cut: CutFinder | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(start_sample, samples)`` covering the audio in order, each at most ``window_s`` long.

        ``find_cut`` picks each cut inside its search range (default: the quietest frame); it is called
        only when the audio is longer than one window. Audio with no samples is one empty window.
        """
        import numpy as np

        window = int(window_s * SAMPLE_RATE_HZ)
        search = min(window - 1, max(int(_FRAME_S * SAMPLE_RATE_HZ), int(search_s * SAMPLE_RATE_HZ)))
        finder = find_cut or quietest_cut
        # Blocks are copied into the next window's own array as they arrive: besides the window the
        # engine is working on, only the one being filled is alive.
        filling = np.empty(window + 1, dtype=np.float32)
        size = start = 0
        for block in self._blocks:
            self.read_samples += len(block)
            while len(block):
                taken = min(len(block), len(filling) - size)
                filling[size : size + taken] = block[:taken]
                size += taken
                block = block[taken:]
                if size <= window:
                    continue
                # more follows this window: cut it at a quiet point, carry the rest into a new array
                lo = window - search
                cut = lo + min(max(finder(filling[lo:window], SAMPLE_RATE_HZ), 1), search)
                full, filling = filling, np.empty(window + 1, dtype=np.float32)
                size -= cut
                filling[:size] = full[cut : cut + size]
                done = full[:cut]
                del full
                yield start, done
                del done
                start += cut
        if size or start == 0:
            filling.resize(size, refcheck=False)
            yield start, filling


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
