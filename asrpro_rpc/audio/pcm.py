"""Raw mono PCM bytes (what ``stream.push`` and in-memory transcriptions carry) as float32 samples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

Encoding = Literal["pcm16", "f32"]
"""Little-endian int16 (``pcm16``) or float32 (``f32``) samples."""


def samples_from_bytes(data: bytes, encoding: Encoding) -> np.ndarray:
    """``data`` as float32 samples in [-1, 1].

    Raises:
        ValueError: ``data`` is not a whole number of samples.
    """
    import numpy as np

    if encoding == "f32":
        if len(data) % 4:
            raise ValueError("float32 audio must be a whole number of 4-byte samples")
        return np.frombuffer(data, dtype="<f4").astype(np.float32)
    if len(data) % 2:
        raise ValueError("PCM16 audio must be a whole number of 2-byte samples")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
