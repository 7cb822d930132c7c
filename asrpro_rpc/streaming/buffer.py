"""A growing window of stream audio kept as chunks (no copy per push), addressed by stream sample index."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


class AudioWindow:
    """Float32 samples ``[start, end)`` of a stream; old samples are dropped with ``drop_before``."""

    def __init__(self) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self.start = 0
        """Stream sample index of the oldest sample held."""
        self.end = 0
        """Stream sample index just past the newest sample (= samples received so far)."""

    def append(self, audio: np.ndarray) -> None:
        if len(audio):
            self._chunks.append(audio)
            self.end += len(audio)

    def drop_before(self, sample: int) -> None:
        """Forget samples before ``sample`` (whole chunks only drop; a partial one is sliced)."""
        while self._chunks and self.start < sample:
            head = self._chunks[0]
            if self.start + len(head) <= sample:
                self._chunks.popleft()
                self.start += len(head)
            else:
                self._chunks[0] = head[sample - self.start :]
                self.start = sample

    def view(self, start: int, end: int) -> np.ndarray:
        """A copy of samples ``[start, end)`` clipped to what is held."""
        import numpy as np

        start, end = max(start, self.start), min(end, self.end)
        if end <= start:
            return np.zeros(0, dtype=np.float32)
        if len(self._chunks) > 1:
            self._chunks = deque([np.concatenate(list(self._chunks))])
        joined = self._chunks[0]
        return np.array(joined[start - self.start : end - self.start], dtype=np.float32)
