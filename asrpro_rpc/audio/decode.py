"""Decode any audio or video file to mono float32 samples at a fixed rate, streamed in blocks.

PyAV (bundled FFmpeg) does the work; a system ``ffmpeg`` binary is tried only when PyAV cannot open
the file at all. ``open_audio`` checks the file and its header at once and then yields small blocks as
they decode, so a reader that keeps a bounded window (the engines: ``engines.chunking.Audio``) needs
memory for that window only, whatever the file's length or its header claims. ``decode_audio`` collects
the whole file into one buffer (short files, tests and benches). Failures raise
:class:`~asrpro_rpc.errors.FileNotFound` or :class:`~asrpro_rpc.errors.AudioUnreadable` with
``data.reason`` one of ``is_directory``, ``empty_file``, ``permission_denied``, ``not_media``,
``no_audio_stream``, ``corrupt``, ``sample_rate`` (the stream's rate is outside
``MIN_SAMPLE_RATE_HZ``..``MAX_SAMPLE_RATE_HZ``), ``too_long`` (over the caller's duration cap, by the
header or by what decodes).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from asrpro_rpc.errors import AudioUnreadable, FileNotFound
from asrpro_rpc.system.files import special_file_kind

if TYPE_CHECKING:
    import av
    import av.container
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

MIN_SAMPLE_RATE_HZ = 1000
"""Slower than any real recording (telephony is 8 kHz): a header claiming less is damaged or hostile, and
resampling it to 16 kHz would multiply a tiny file into hours of samples."""
MAX_SAMPLE_RATE_HZ = 768_000
"""The fastest rate audio interfaces record."""
DURATION_SETTING = "model.max_audio_duration_s"
"""The setting that caps one request's audio (named in the ``too_long`` error)."""

_UNKNOWN_DURATION_BUFFER_S = 60.0
_MAX_PREALLOCATED_S = 4 * 3600.0
_FFMPEG_READ_BYTES = 1 << 18
_COMPLETE_FRACTION = 0.9
"""Decoding less than this share of the declared duration is logged as a damaged file."""


class AudioStream:
    """An opened file's audio: iterate once for float32 blocks at the rate asked for; ``close`` when done.

    ``duration_s`` is the header's claim (None when unknown), for progress; what decodes may differ.
    """

    def __init__(self, blocks: Iterator[npt.NDArray[np.float32]], duration_s: float | None) -> None:
        self._blocks = blocks
        self.duration_s = duration_s

    def __iter__(self) -> Iterator[npt.NDArray[np.float32]]:
        return self._blocks

    def close(self) -> None:
        """Stop decoding and release the file (or the ffmpeg process) now."""
        close = getattr(self._blocks, "close", None)
        if close is not None:
            close()


def open_audio(
    path: str | os.PathLike[str], sample_rate_hz: int = 16000, *, max_duration_s: float | None = None
) -> AudioStream:
    """Open the first audio stream of ``path`` for decoding to mono float32 at ``sample_rate_hz``.

    Everything the header can tell is checked here (the file, an audio stream, its rate, its claimed
    duration against ``max_duration_s``); decoding more than ``max_duration_s`` raises ``too_long`` from
    the iteration. A file that is corrupt part-way yields the audio decoded before and around the damage
    (with a warning in the log); it fails only when nothing decodes.
    """
    import av

    file = _check_file(path)
    limit = _SampleLimit(file, sample_rate_hz, max_duration_s)
    try:
        container = av.open(str(file), metadata_errors="ignore")
    except av.error.FileNotFoundError:
        raise FileNotFound(f"Audio file not found: {file}", path=str(file)) from None
    except av.error.PermissionError:
        raise _unreadable(file, "permission_denied", "permission denied") from None
    except av.FFmpegError as exc:
        if shutil.which("ffmpeg") is None:
            raise _unreadable(file, "not_media", "it is not an audio or video format we can read") from exc
        log.info("PyAV could not open %s (%s); trying the ffmpeg binary", file, exc)
        return AudioStream(_ffmpeg_blocks(file, sample_rate_hz, limit), None)
    try:
        if not container.streams.audio:
            raise _unreadable(file, "no_audio_stream", "it has no audio track")
        stream = container.streams.audio[0]
        rate = stream.rate or stream.sample_rate or 0
        if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
            raise AudioUnreadable(
                f"Cannot read audio from {file}: its header claims a sample rate of {rate} Hz, outside "
                f"{MIN_SAMPLE_RATE_HZ}-{MAX_SAMPLE_RATE_HZ} Hz (the file is damaged or not real audio).",
                path=str(file),
                reason="sample_rate",
                sample_rate_hz=rate,
            )
        duration_s = _duration_s(container, stream)
        if duration_s is not None:
            limit.check(duration_s)
    except BaseException:
        container.close()
        raise
    return AudioStream(_pyav_blocks(file, container, stream, sample_rate_hz, duration_s, limit), duration_s)


def decode_audio(path: str | os.PathLike[str], sample_rate_hz: int = 16000) -> npt.NDArray[np.float32]:
    """The whole of ``open_audio(path)`` in one array (peak memory near the output size)."""
    audio = open_audio(path, sample_rate_hz)
    expected_s = min(audio.duration_s or _UNKNOWN_DURATION_BUFFER_S, _MAX_PREALLOCATED_S)
    buffer = _SampleBuffer(int(expected_s * sample_rate_hz) + sample_rate_hz // 10)
    for block in audio:
        buffer.append(block)
    return buffer.result()


def probe_duration_s(path: str | os.PathLike[str]) -> float | None:
    """The first audio stream's duration from the container header, or None when unknown or unreadable."""
    import av

    try:
        with av.open(os.fspath(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                return None
            return _duration_s(container, container.streams.audio[0])
    except (av.FFmpegError, OSError):
        return None


class _SampleBuffer:
    """A float32 buffer that grows geometrically and is trimmed in place when done."""

    def __init__(self, capacity: int) -> None:
        import numpy as np

        self._samples = np.empty(max(capacity, 1), dtype=np.float32)
        self.size = 0

    def append(self, chunk: npt.NDArray[np.float32]) -> None:
        end = self.size + len(chunk)
        if end > len(self._samples):
            # realloc: large blocks move with mremap, without a second copy alive.
            self._samples.resize(max(end, len(self._samples) * 3 // 2), refcheck=False)
        self._samples[self.size : end] = chunk
        self.size = end

    def result(self) -> npt.NDArray[np.float32]:
        if self.size < len(self._samples):
            self._samples.resize(self.size, refcheck=False)
        return self._samples


class _SampleLimit:
    """Counts decoded samples and raises ``too_long`` past ``max_duration_s`` (None: no cap)."""

    def __init__(self, file: Path, sample_rate_hz: int, max_duration_s: float | None) -> None:
        self._file = file
        self._max_duration_s = max_duration_s
        self._max_samples = None if max_duration_s is None else int(max_duration_s * sample_rate_hz)
        self.samples = 0

    def add(self, block: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.samples += len(block)
        if self._max_samples is not None and self.samples > self._max_samples:
            self.check(float("inf"))
        return block

    def check(self, duration_s: float) -> None:
        if self._max_duration_s is None or duration_s <= self._max_duration_s:
            return
        claim = "more audio than that" if duration_s == float("inf") else f"{duration_s:.0f} s of audio"
        raise AudioUnreadable(
            f"Cannot transcribe {self._file}: it holds {claim}, over the {self._max_duration_s:g} s "
            f"({self._max_duration_s / 3600:g} h) per request that setting {DURATION_SETTING} allows; "
            "split the file or raise the setting.",
            path=str(self._file),
            reason="too_long",
            max_duration_s=self._max_duration_s,
            setting=DURATION_SETTING,
        )


def _check_file(path: str | os.PathLike[str]) -> Path:
    file = Path(path)
    try:
        stat = file.stat()
    except FileNotFoundError:
        raise FileNotFound(f"Audio file not found: {file}", path=str(file)) from None
    except PermissionError:
        raise _unreadable(file, "permission_denied", "permission denied") from None
    if file.is_dir():
        raise _unreadable(file, "is_directory", "it is a directory, not a file")
    if not file.is_file():
        raise _unreadable(file, "not_a_regular_file", f"it is {special_file_kind(stat.st_mode)}, not a file")
    if stat.st_size == 0:
        raise _unreadable(file, "empty_file", "the file is empty (0 bytes)")
    return file


def _unreadable(file: Path, reason: str, why: str) -> AudioUnreadable:
    return AudioUnreadable(f"Cannot read audio from {file}: {why}.", path=str(file), reason=reason)


def _duration_s(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    import av

    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _pyav_blocks(
    file: Path,
    container: av.container.InputContainer,
    stream: av.AudioStream,
    sample_rate_hz: int,
    duration_s: float | None,
    limit: _SampleLimit,
) -> Iterator[npt.NDArray[np.float32]]:
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate_hz)
    bad_packets = 0
    with container:
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    bad_packets += 1
                    continue
                for frame in frames:
                    try:
                        converted = resampler.resample(frame)
                    except ValueError:  # the format changed mid-stream (a damaged or spliced file)
                        for out in resampler.resample(None):
                            yield limit.add(out.to_ndarray()[0])
                        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate_hz)
                        converted = resampler.resample(frame)
                    for out in converted:
                        yield limit.add(out.to_ndarray()[0])
        except av.FFmpegError as exc:
            bad_packets += 1
            log.debug("demuxing %s stopped: %s", file, exc)
        for out in resampler.resample(None):
            yield limit.add(out.to_ndarray()[0])
    decoded_s = limit.samples / sample_rate_hz
    if limit.samples == 0 and (bad_packets or (duration_s or 0.0) > 0.0):
        raise _unreadable(file, "corrupt", "the file is damaged and no audio could be decoded")
    if bad_packets or (duration_s is not None and decoded_s < _COMPLETE_FRACTION * duration_s):
        log.warning(
            "%s is damaged or truncated: decoded %.1f s of %s s (%d unreadable packet(s) skipped)",
            file,
            decoded_s,
            "unknown" if duration_s is None else f"{duration_s:.1f}",
            bad_packets,
        )


def _ffmpeg_blocks(file: Path, sample_rate_hz: int, limit: _SampleLimit) -> Iterator[npt.NDArray[np.float32]]:
    """Decode through a system ``ffmpeg`` to a float32 pipe (formats the bundled FFmpeg lacks)."""
    import numpy as np

    command = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(file), "-vn", "-ac", "1"]
    command += ["-ar", str(sample_rate_hz), "-f", "f32le", "-"]
    # ffmpeg's own messages go to our stderr, which is the log; stdout carries the samples.
    with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        try:
            while chunk := process.stdout.read(_FFMPEG_READ_BYTES):
                yield limit.add(np.frombuffer(chunk, dtype=np.float32, count=len(chunk) // 4))
        finally:
            if process.poll() is None:
                process.kill()
    if limit.samples == 0:
        raise _unreadable(file, "not_media", "it is not an audio or video format we can read")
    if process.returncode != 0:
        log.warning("ffmpeg exited with %d decoding %s; kept what decoded", process.returncode, file)
