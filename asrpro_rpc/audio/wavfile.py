"""Crash-safe WAV files (16-bit PCM or 32-bit float, mono or stereo): a writer that keeps the header valid,
and a header repair.

The writer patches the RIFF, ``fact`` and data sizes after every write, so a file cut short by a crash
(kill -9) is already a valid WAV of what was written. If the process died between the samples and the
header update, :func:`repair_wav` recomputes the sizes from the file's length.
"""

from __future__ import annotations

import errno
import logging
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

SampleFormat = Literal["pcm16", "float32"]
_HEADER_SCAN_BYTES = 1 << 16
_PCM, _IEEE_FLOAT = 1, 3


class WavWriter:
    """Appends float32 samples in -1..1 (``(frames,)`` or ``(frames, channels)``) as ``sample_format``.

    The header is valid after every ``write``; a write the disk can't hold raises OSError and leaves the
    file as it was before it. Float files carry the ``fact`` chunk non-PCM WAVs need.
    """

    def __init__(
        self, path: Path, sample_rate_hz: int, *, channels: int = 1, sample_format: SampleFormat = "pcm16"
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sample_rate_hz = sample_rate_hz
        self.channels = channels
        self.sample_format: SampleFormat = sample_format
        self.frames_written = 0
        width = 2 if sample_format == "pcm16" else 4
        self._block_align = width * channels
        rate_bytes = sample_rate_hz * self._block_align
        if sample_format == "pcm16":
            fmt, fact = (
                struct.pack("<HHIIHH", _PCM, channels, sample_rate_hz, rate_bytes, self._block_align, 16),
                b"",
            )
        else:  # non-PCM: an 18-byte fmt (cbSize 0) and a fact chunk holding the frame count
            fmt = struct.pack(
                "<HHIIHHH", _IEEE_FLOAT, channels, sample_rate_hz, rate_bytes, self._block_align, 32, 0
            )
            fact = b"fact" + struct.pack("<II", 4, 0)
        chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + fact
        self._fact_at = 12 + len(chunks) - 4 if fact else None
        self._data_at = 12 + len(chunks) + 8
        self._file = path.open("wb", buffering=0)  # noqa: SIM115 - closed in close()
        try:
            self._write_all(
                b"RIFF" + struct.pack("<I", self._data_at - 8) + b"WAVE" + chunks + b"data" + bytes(4)
            )
        except OSError:
            self._file.close()
            path.unlink(missing_ok=True)
            raise

    def write(self, samples: npt.NDArray[np.float32]) -> None:
        import numpy as np

        if self.sample_format == "pcm16":
            data = np.clip(np.rint(samples * 32767.0), -32768, 32767).astype("<i2")
        else:
            data = np.clip(samples, -1.0, 1.0).astype("<f4")
        good_bytes = self._data_at + self.frames_written * self._block_align
        self._file.seek(good_bytes)
        try:
            self._write_all(data.tobytes())
        except OSError:  # a full disk: the file keeps every whole chunk before this one, and stays valid
            self._file.truncate(good_bytes)
            raise
        self.frames_written += len(data)
        data_bytes = self.frames_written * self._block_align
        self._file.seek(4)
        self._file.write(struct.pack("<I", self._data_at - 8 + data_bytes))
        if self._fact_at is not None:
            self._file.seek(self._fact_at)
            self._file.write(struct.pack("<I", self.frames_written))
        self._file.seek(self._data_at - 4)
        self._file.write(struct.pack("<I", data_bytes))

    def _write_all(self, data: bytes) -> None:
        """Write ``data`` at the current offset; raises OSError (ENOSPC…) if not all of it fits."""
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            if not written:
                raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
            view = view[written:]

    def close(self) -> None:
        self._file.close()

    @property
    def duration_s(self) -> float:
        return self.frames_written / self.sample_rate_hz


def repair_wav(path: Path) -> bool:
    """Make the RIFF, data (and ``fact``) sizes match the file's length; True when something was fixed.

    A trailing partial sample frame is cut off. Files that are not RIFF/WAVE are left alone.
    """
    with path.open("r+b") as file:
        head = file.read(_HEADER_SCAN_BYTES)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        block_align, offset, fact_at = 1, 12, None
        while offset + 8 <= len(head):
            chunk_id, size = head[offset : offset + 4], struct.unpack("<I", head[offset + 4 : offset + 8])[0]
            if chunk_id == b"fmt " and offset + 22 <= len(head):
                block_align = max(1, struct.unpack("<H", head[offset + 20 : offset + 22])[0])
            if chunk_id == b"fact" and size >= 4:
                fact_at = offset + 8
            if chunk_id == b"data":
                break
            offset += 8 + size + (size & 1)
        else:
            return False
        file.seek(0, 2)
        data_start = offset + 8
        data_bytes = max(0, file.tell() - data_start)
        data_bytes -= data_bytes % block_align
        riff_size = data_start + data_bytes - 8
        old_riff, old_data = (
            struct.unpack("<I", head[4:8])[0],
            struct.unpack("<I", head[offset + 4 : offset + 8])[0],
        )
        if (old_riff, old_data) == (riff_size, data_bytes) and file.tell() == data_start + data_bytes:
            return False
        file.truncate(data_start + data_bytes)
        file.seek(4)
        file.write(struct.pack("<I", riff_size))
        file.seek(offset + 4)
        file.write(struct.pack("<I", data_bytes))
        if fact_at is not None:
            file.seek(fact_at)
            file.write(struct.pack("<I", data_bytes // block_align))
    log.info("repaired the WAV header of %s (%d bytes of audio)", path, data_bytes)
    return True
