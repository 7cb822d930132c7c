"""decode_audio on real media: every container we accept, every way a file can be unreadable, and memory."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from asrpro_rpc.audio.decode import DURATION_SETTING, decode_audio, open_audio, probe_duration_s
from asrpro_rpc.errors import AudioUnreadable, FileNotFound
from asrpro_rpc.samples import sample_path
from tests.support.signals import best_correlation

SAMPLE_RATE_HZ = 16000


def read_wav(path: Path) -> np.ndarray:
    """The reference: PCM16 read with the standard library, independent of the decoder."""
    with wave.open(str(path), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768


def check_speech(samples: np.ndarray, speech_wav: Path, min_correlation: float) -> None:
    reference = read_wav(speech_wav)
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert samples.flags.c_contiguous and samples.flags.writeable
    assert abs(len(samples) - len(reference)) / SAMPLE_RATE_HZ < 0.1
    assert 0.1 < np.abs(samples).max() <= 1.0
    assert best_correlation(samples, reference, max_lag=4000) > min_correlation


def test_wav_matches_the_reference_exactly(speech_wav: Path) -> None:
    samples = decode_audio(speech_wav)
    np.testing.assert_allclose(samples, read_wav(speech_wav), atol=1e-6)


@pytest.mark.parametrize(
    ("name", "codec", "rate_hz", "layout", "bit_rate"),
    [
        ("speech.mp3", "libmp3lame", 16000, "mono", 32000),
        ("speech.ogg", "libopus", 16000, "mono", 24000),
        ("speech.flac", "flac", 16000, "mono", None),
        ("speech_44k_stereo.flac", "flac", 44100, "stereo", None),
        ("speech_44k_stereo.wav", "pcm_s16le", 44100, "stereo", None),
        ("speech_48k.m4a", "aac", 48000, "mono", 64000),
    ],
)
def test_formats_decode_to_16k_mono(
    speech_encoded: Callable[..., Path],
    speech_wav: Path,
    name: str,
    codec: str,
    rate_hz: int,
    layout: str,
    bit_rate: int | None,
) -> None:
    path = speech_encoded(name, codec, sample_rate_hz=rate_hz, layout=layout, bit_rate=bit_rate)
    check_speech(decode_audio(path), speech_wav, min_correlation=0.97 if bit_rate else 0.999)


def test_mp3_fixture(speech_mp3: Path, speech_wav: Path) -> None:
    check_speech(decode_audio(speech_mp3), speech_wav, min_correlation=0.97)


def test_video_with_audio_uses_the_audio(speech_video: Path, speech_wav: Path) -> None:
    check_speech(decode_audio(speech_video), speech_wav, min_correlation=0.97)


def test_other_rates_on_request(speech_wav: Path) -> None:
    samples = decode_audio(speech_wav, sample_rate_hz=8000)
    assert abs(len(samples) - len(read_wav(speech_wav)) / 2) < 100


def test_silence_decodes_to_zeros(silence_wav: Path) -> None:
    samples = decode_audio(silence_wav)
    assert len(samples) == 3 * SAMPLE_RATE_HZ
    assert not samples.any()


def test_bundled_sample_decodes() -> None:
    # Not compared with fresh espeak-ng output: another espeak-ng version speaks differently.
    samples = decode_audio(sample_path())
    assert len(samples) / SAMPLE_RATE_HZ == pytest.approx(3.7, abs=0.1)
    assert 0.3 < np.abs(samples).max() <= 1.0
    assert sample_path().stat().st_size < 10_000


def test_probe_duration(speech_wav: Path, speech_video: Path, video_only: Path, not_audio: Path) -> None:
    assert probe_duration_s(speech_wav) == pytest.approx(len(read_wav(speech_wav)) / SAMPLE_RATE_HZ, abs=0.01)
    assert probe_duration_s(speech_video) == pytest.approx(3.7, abs=0.2)
    assert probe_duration_s(video_only) is None
    assert probe_duration_s(not_audio) is None
    assert probe_duration_s("/nonexistent/recording.wav") is None


# --- errors ------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "no such recording.wav"
    with pytest.raises(FileNotFound) as caught:
        decode_audio(missing)
    assert str(missing) in caught.value.message
    assert caught.value.wire_data() == {"kind": "file_not_found", "path": str(missing)}


def unreadable(path: Path | str) -> AudioUnreadable:
    with pytest.raises(AudioUnreadable) as caught:
        decode_audio(path)
    assert caught.value.kind == "audio_unreadable"
    assert str(path) in caught.value.message
    return caught.value


def test_directory(tmp_path: Path) -> None:
    assert unreadable(tmp_path).data["reason"] == "is_directory"


def test_empty_file(empty_file: Path) -> None:
    error = unreadable(empty_file)
    assert error.data["reason"] == "empty_file"
    assert "empty" in error.message


def test_not_media(not_audio: Path) -> None:
    assert unreadable(not_audio).data["reason"] == "not_media"


def test_video_without_audio(video_only: Path) -> None:
    error = unreadable(video_only)
    assert error.data["reason"] == "no_audio_stream"
    assert "no audio track" in error.message


def test_corrupt_file(corrupt_audio: Path) -> None:
    assert unreadable(corrupt_audio).data["reason"] == "corrupt"


DECODE_AND_REPORT = """
import sys
from asrpro_rpc.audio.decode import decode_audio
from asrpro_rpc.errors import AudioUnreadable
try:
    decode_audio(sys.argv[1])
except AudioUnreadable as exc:
    print(exc.data["reason"], exc.message)
"""


def test_permission_denied(speech_wav: Path, tmp_path: Path) -> None:
    """A file its reader may not open. Root (how CI runs) reads any file, so there the decode runs in a
    child that setpriv has stripped of the capabilities that override file permissions: the kernel then
    refuses it exactly as it refuses a user (an unprivileged uid could not run this venv's Python)."""
    locked = tmp_path / "locked.wav"
    locked.write_bytes(speech_wav.read_bytes())
    locked.chmod(0)
    if os.geteuid() != 0:
        assert unreadable(locked).data["reason"] == "permission_denied"
        return
    unprivileged = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-all"]
    child = subprocess.run(
        [*unprivileged, sys.executable, "-c", DECODE_AND_REPORT, str(locked)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    reason, _, message = child.stdout.strip().partition(" ")
    assert reason == "permission_denied" and str(locked) in message, child.stdout


def test_partly_damaged_file_keeps_what_decodes(
    speech_mp3: Path, speech_wav: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = bytearray(speech_mp3.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 1500] = np.random.default_rng(1).bytes(1500)
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="asrpro_rpc.audio.decode"):
        samples = decode_audio(damaged)
    reference = read_wav(speech_wav)
    assert len(reference) / 3 < len(samples) < len(reference) * 1.05
    assert best_correlation(samples[:SAMPLE_RATE_HZ], reference[:SAMPLE_RATE_HZ], max_lag=4000) > 0.9
    assert "damaged" in caplog.text


def test_truncated_file_keeps_the_start(speech_encoded: Callable[..., Path], tmp_path: Path) -> None:
    data = speech_encoded("speech.flac", "flac").read_bytes()
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(data[: len(data) // 2])
    duration_s = len(decode_audio(truncated)) / SAMPLE_RATE_HZ
    assert 1.0 < duration_s < 3.0


@pytest.mark.parametrize("rate_hz", [1, 8, 999, 800_000])
def test_absurd_header_rates_are_refused_before_decoding(
    lying_rate_wav: Callable[[int], Path], rate_hz: int
) -> None:
    """1 Hz resampled to 16 kHz would turn 137 KB into 19 hours of samples (4.4 GB)."""
    error = unreadable(lying_rate_wav(rate_hz))
    assert error.data["reason"] == "sample_rate" and error.data["sample_rate_hz"] == rate_hz
    assert "sample rate" in error.message


def test_the_lowest_accepted_rate_decodes(lying_rate_wav: Callable[[int], Path], speech_wav: Path) -> None:
    samples = decode_audio(lying_rate_wav(1000))
    assert len(samples) == 16 * len(read_wav(speech_wav))


def test_a_header_over_the_duration_cap_is_refused_at_open(speech_wav: Path) -> None:
    with pytest.raises(AudioUnreadable) as caught:
        open_audio(speech_wav, max_duration_s=1.0)
    assert caught.value.data["reason"] == "too_long" and caught.value.data["setting"] == DURATION_SETTING
    assert DURATION_SETTING in caught.value.message
    assert sum(map(len, open_audio(speech_wav, max_duration_s=60.0))) == len(read_wav(speech_wav))


def test_blocks_stream_in_order_and_stay_small(long_audio_factory: Callable[[float], Path]) -> None:
    audio = open_audio(long_audio_factory(2))
    assert audio.duration_s == pytest.approx(120.0, abs=0.01)
    sizes = [len(block) for block in audio]
    assert sum(sizes) == 120 * SAMPLE_RATE_HZ and max(sizes) <= SAMPLE_RATE_HZ


# --- the system ffmpeg fallback ----------------------------------------------------------------


def fake_ffmpeg(folder: Path, body: str) -> str:
    """A stand-in ``ffmpeg`` executable (none is installed here); returns a PATH that finds it first."""
    script = folder / "ffmpeg"
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def test_ffmpeg_fallback_reads_its_float_pipe(
    not_audio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = """
        import sys
        import numpy as np
        args = sys.argv[1:]
        assert args[args.index("-ar") + 1] == "16000" and args[args.index("-f") + 1] == "f32le"
        sys.stdout.buffer.write(np.linspace(-0.5, 0.5, 1_200_001, dtype="<f4").tobytes())
        """
    monkeypatch.setenv("PATH", fake_ffmpeg(tmp_path, body))
    samples = decode_audio(not_audio)  # 75 s: more than the buffer first reserved, so it grows
    np.testing.assert_array_equal(samples, np.linspace(-0.5, 0.5, 1_200_001, dtype=np.float32))


def test_ffmpeg_fallback_past_the_duration_cap_stops_with_too_long(
    not_audio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No header to check: what decodes is counted, and decoding stops at the cap."""
    body = """
        import sys
        import numpy as np
        sys.stdout.buffer.write(np.zeros(1_200_000, dtype="<f4").tobytes())
        """
    monkeypatch.setenv("PATH", fake_ffmpeg(tmp_path, body))
    audio = open_audio(not_audio, max_duration_s=60.0)
    assert audio.duration_s is None
    with pytest.raises(AudioUnreadable) as caught:
        for _ in audio:
            pass
    assert caught.value.data["reason"] == "too_long"


def test_ffmpeg_fallback_failure_is_unreadable(
    not_audio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", fake_ffmpeg(tmp_path, "import sys\nsys.exit(1)\n"))
    assert unreadable(not_audio).data["reason"] == "not_media"


# --- memory ------------------------------------------------------------------------------------

_PEAK_RSS_SCRIPT = """
import resource, sys
from asrpro_rpc.audio.decode import decode_audio
decode_audio(sys.argv[1])  # warm up: imports, codec tables
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
samples = decode_audio(sys.argv[2])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(samples.nbytes, after - before)
"""


def test_thirty_minutes_peak_memory_near_output_size(
    long_audio_factory: Callable[[float], Path], speech_wav: Path
) -> None:
    long_wav = long_audio_factory(30)
    run = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS_SCRIPT, str(speech_wav), str(long_wav)],
        capture_output=True,
        text=True,
        check=True,
    )
    output_bytes, peak_growth_bytes = map(int, run.stdout.split())
    assert output_bytes == 30 * 60 * SAMPLE_RATE_HZ * 4
    # A list of chunks plus a concatenated copy would need twice the output.
    assert peak_growth_bytes < 1.3 * output_bytes


def test_format_change_mid_stream_keeps_decoding(speech_encoded: Callable[..., Path], tmp_path: Path) -> None:
    """mp3 frames describe themselves: a spliced (or damaged) file can switch rate and layout midway."""
    first = speech_encoded("splice-a.mp3", "mp3", sample_rate_hz=16000, layout="mono")
    second = speech_encoded("splice-b.mp3", "mp3", sample_rate_hz=44100, layout="stereo")
    spliced = tmp_path / "spliced.mp3"
    spliced.write_bytes(first.read_bytes() + second.read_bytes())
    one_s = len(decode_audio(first)) / SAMPLE_RATE_HZ
    assert len(decode_audio(spliced)) / SAMPLE_RATE_HZ > 1.8 * one_s
