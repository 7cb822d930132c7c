"""Comparing recorded or decoded audio with the reference it came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def best_correlation(samples: np.ndarray, reference: np.ndarray, max_lag: int | None = None) -> float:
    """Pearson r of ``samples`` and ``reference`` at the lag (within ``max_lag`` samples either way, or any)
    where they line up best: codecs and sound servers add delay. 0.0 when too little overlaps or all is
    silent."""
    n = len(samples) + len(reference)
    size = 1 << (n - 1).bit_length()
    cross = np.fft.irfft(np.fft.rfft(samples, size) * np.conj(np.fft.rfft(reference, size)), size)
    limit = min(max_lag if max_lag is not None else n, len(samples) - 1)
    back = min(max_lag if max_lag is not None else n, len(reference) - 1)
    lags = [*range(limit + 1), *range(-back, 0)]
    lag = max(lags, key=lambda k: cross[k])
    a, b = (samples[lag:], reference) if lag >= 0 else (samples, reference[-lag:])
    length = min(len(a), len(b))
    if length < 100 or a[:length].std() == 0 or b[:length].std() == 0:
        return 0.0
    return float(np.corrcoef(a[:length], b[:length])[0, 1])


def left_only(wav: Path, tmp_path: Path) -> Path:
    """``wav`` as a stereo file: the speech on the left, silence on the right."""
    mono, rate = sf.read(wav, dtype="float32")
    path = tmp_path / "left.wav"
    sf.write(path, np.stack([mono, np.zeros_like(mono)], axis=1), rate)
    return path


def at_48k(samples: np.ndarray) -> np.ndarray:
    return np.interp(np.arange(len(samples) * 3) / 3, np.arange(len(samples)), samples)
