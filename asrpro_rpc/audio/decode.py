"""Decode any audio or video file to mono float32 samples at a fixed rate.

PyAV (bundled FFmpeg) does the work; a system ``ffmpeg`` binary is tried only when PyAV cannot open
the file at all. Samples stream into one buffer sized from the container's duration (grown
geometrically if that was short, trimmed at the end), so peak memory stays near the output size:
an hour at 16 kHz is 230 MB. Failures raise :class:`~asrpro_rpc.errors.FileNotFound` or
:class:`~asrpro_rpc.errors.AudioUnreadable` with ``data.reason`` one of ``is_directory``,
``empty_file``, ``permission_denied``, ``not_media``, ``no_audio_stream``, ``corrupt``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
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

_UNKNOWN_DURATION_BUFFER_S = 60.0
_MAX_PREALLOCATED_S = 4 * 3600.0
_FFMPEG_READ_BYTES = 1 << 18
_COMPLETE_FRACTION = 0.9
"""Decoding less than this share of the declared duration is logged as a damaged file."""


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


def decode_audio(path: str | os.PathLike[str], sample_rate_hz: int = 16000) -> npt.NDArray[np.float32]:
    """Decode the first audio stream of ``path`` to mono float32 at ``sample_rate_hz``.

    A file that is corrupt part-way returns the audio decoded before and around the damage
    (with a warning in the log); it fails only when nothing decodes.
    """
    import av

    file = _check_file(path)
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
        return _decode_with_ffmpeg(file, sample_rate_hz)
    with container:
        if not container.streams.audio:
            raise _unreadable(file, "no_audio_stream", "it has no audio track")
        return _decode_stream(file, container, container.streams.audio[0], sample_rate_hz)


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


def _decode_stream(
    file: Path, container: av.container.InputContainer, stream: av.AudioStream, sample_rate_hz: int
) -> npt.NDArray[np.float32]:
    import av

    duration_s = _duration_s(container, stream)
    expected_s = min(duration_s or _UNKNOWN_DURATION_BUFFER_S, _MAX_PREALLOCATED_S)
    buffer = _SampleBuffer(int(expected_s * sample_rate_hz) + sample_rate_hz // 10)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate_hz)
    bad_packets = 0
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
                        buffer.append(out.to_ndarray()[0])
                    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate_hz)
                    converted = resampler.resample(frame)
                for out in converted:
                    buffer.append(out.to_ndarray()[0])
    except av.FFmpegError as exc:
        bad_packets += 1
        log.debug("demuxing %s stopped: %s", file, exc)
    for out in resampler.resample(None):
        buffer.append(out.to_ndarray()[0])
    decoded_s = buffer.size / sample_rate_hz
    if buffer.size == 0 and (bad_packets or (duration_s or 0.0) > 0.0):
        raise _unreadable(file, "corrupt", "the file is damaged and no audio could be decoded")
    if bad_packets or (duration_s is not None and decoded_s < _COMPLETE_FRACTION * duration_s):
        log.warning(
            "%s is damaged or truncated: decoded %.1f s of %s s (%d unreadable packet(s) skipped)",
            file,
            decoded_s,
            "unknown" if duration_s is None else f"{duration_s:.1f}",
            bad_packets,
        )
    return buffer.result()


def _decode_with_ffmpeg(file: Path, sample_rate_hz: int) -> npt.NDArray[np.float32]:
    """Decode through a system ``ffmpeg`` to a float32 pipe (formats the bundled FFmpeg lacks)."""
    import numpy as np

    command = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(file), "-vn", "-ac", "1"]
    command += ["-ar", str(sample_rate_hz), "-f", "f32le", "-"]
    buffer = _SampleBuffer(int(_UNKNOWN_DURATION_BUFFER_S * sample_rate_hz))
    # ffmpeg's own messages go to our stderr, which is the log; stdout carries the samples.
    with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        while chunk := process.stdout.read(_FFMPEG_READ_BYTES):
            buffer.append(np.frombuffer(chunk, dtype=np.float32, count=len(chunk) // 4))
    if buffer.size == 0:
        raise _unreadable(file, "not_media", "it is not an audio or video format we can read")
    if process.returncode != 0:
        log.warning("ffmpeg exited with %d decoding %s; kept what decoded", process.returncode, file)
    return buffer.result()
