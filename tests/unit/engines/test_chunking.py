"""Long audio is cut into bounded windows at quiet points."""

from __future__ import annotations

import numpy as np

from asrpro_rpc.engines.chunking import window_bounds


def test_short_audio_is_one_window() -> None:
    audio = np.zeros(16000 * 10, dtype=np.float32)
    assert window_bounds(audio) == [(0, len(audio))]


def test_windows_cover_everything_in_order_and_cut_in_silence() -> None:
    rate = 16000
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.3, rate * 700).astype(np.float32)
    audio[rate * 290 : rate * 291] = 0.0  # a quiet second inside the search range of the first cut
    bounds = window_bounds(audio, rate, window_s=300, search_s=20)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(audio)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert all(end - start <= 300 * rate for start, end in bounds)
    assert rate * 290 <= bounds[0][1] <= rate * 291
