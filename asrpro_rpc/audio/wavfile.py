"""Crash-safe PCM16 mono WAV files: a writer that keeps the header valid, and a header repair.

The standard library's ``wave`` writer patches the RIFF and data sizes after every write, so a file cut
short by a crash (kill -9) is already a valid WAV of what was written. If the process died between the
samples and the header update, :func:`repair_wav` recomputes both sizes from the file's length.
"""

from __future__ import annotations

import logging
import struct
import wave
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

_HEADER_SCAN_BYTES = 1 << 16


class WavWriter:
    """Appends float32 samples in -1..1 as 16-bit PCM; the header is valid after every ``write``."""

    def __init__(self, path: Path, sample_rate_hz: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sample_rate_hz = sample_rate_hz
        self.frames_written = 0
        self._file = wave.open(str(path), "wb")  # noqa: SIM115 - closed in close()
        self._file.setnchannels(1)
        self._file.setsampwidth(2)
        self._file.setframerate(sample_rate_hz)
        self._file.writeframes(b"")  # the header, now

    def write(self, samples: npt.NDArray[np.float32]) -> None:
        import numpy as np

        pcm = np.clip(np.rint(samples * 32767.0), -32768, 32767).astype("<i2")
        self._file.writeframes(pcm.tobytes())
        self.frames_written += len(pcm)

    def close(self) -> None:
        self._file.close()

    @property
    def duration_s(self) -> float:
        return self.frames_written / self.sample_rate_hz


def repair_wav(path: Path) -> bool:
    """Make the RIFF and data chunk sizes match the file's length; True when something was fixed.

    A trailing partial sample frame is cut off. Files that are not RIFF/WAVE are left alone.
    """
    with path.open("r+b") as file:
        head = file.read(_HEADER_SCAN_BYTES)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        block_align, offset = 1, 12
        while offset + 8 <= len(head):
            chunk_id, size = head[offset : offset + 4], struct.unpack("<I", head[offset + 4 : offset + 8])[0]
            if chunk_id == b"fmt " and offset + 22 <= len(head):
                block_align = max(1, struct.unpack("<H", head[offset + 20 : offset + 22])[0])
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
    log.info("repaired the WAV header of %s (%d bytes of audio)", path, data_bytes)
    return True
