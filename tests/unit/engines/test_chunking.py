"""Long audio is read as bounded windows cut at quiet points, whatever its length."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import numpy as np

from asrpro_rpc.engines.chunking import SAMPLE_RATE_HZ, Audio

RATE = SAMPLE_RATE_HZ


def bounds(audio: Audio, **kwargs: float) -> list[tuple[int, int]]:
    return [(start, start + len(samples)) for start, samples in audio.windows(**kwargs)]


def test_short_audio_is_one_window() -> None:
    audio = np.zeros(RATE * 10, dtype=np.float32)
    assert bounds(Audio.from_array(audio)) == [(0, len(audio))]
    assert bounds(Audio.from_array(audio[:0])) == [(0, 0)]


def test_windows_cover_everything_in_order_and_cut_in_silence() -> None:
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.3, RATE * 700).astype(np.float32)
    audio[RATE * 290 : RATE * 291] = 0.0  # a quiet second inside the search range of the first cut
    windows = list(Audio.from_array(audio).windows(window_s=300, search_s=20))
    cuts = [(start, start + len(samples)) for start, samples in windows]
    assert cuts[0][0] == 0 and cuts[-1][1] == len(audio)
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:], strict=False))
    assert all(end - start <= 300 * RATE for start, end in cuts)
    assert RATE * 290 <= cuts[0][1] <= RATE * 291
    np.testing.assert_array_equal(np.concatenate([samples for _, samples in windows]), audio)


def test_streamed_blocks_give_the_same_windows_as_one_array() -> None:
    rng = np.random.default_rng(1)
    audio = rng.normal(0, 0.3, RATE * 130).astype(np.float32)
    sizes = rng.integers(1, 40_000, 400)
    edges = np.minimum(np.cumsum(np.concatenate([[0], sizes])), len(audio))
    blocks = [audio[a:b] for a, b in zip(edges, [*edges[1:-1], len(audio)], strict=False)]
    streamed = Audio(blocks, None)
    assert bounds(streamed, window_s=30, search_s=5) == bounds(
        Audio.from_array(audio), window_s=30, search_s=5
    )
    assert streamed.read_samples == len(audio) and streamed.fraction(1.0) is None


def test_memory_is_one_window_whatever_the_length() -> None:
    """Three hours of one-second blocks, decoded lazily: peak allocation stays within two windows (the one
    in use and the one being filled), not the 691 MB of the whole."""

    def three_hours() -> Iterator[np.ndarray]:
        for _ in range(3 * 3600):
            yield np.zeros(RATE, dtype=np.float32)

    window_bytes = 300 * RATE * 4
    tracemalloc.start()
    try:
        audio = Audio(three_hours(), 3 * 3600.0)
        count = 0
        for _start, samples in audio.windows():
            count += 1
            del samples  # as the engines do: done with a window before asking for the next
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count >= 36 and audio.read_s == 3 * 3600.0
    assert peak < 2 * window_bytes + 4 * RATE * 4, peak / 2**20
