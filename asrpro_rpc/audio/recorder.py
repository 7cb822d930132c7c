"""One recording: an :class:`InputCapture` feeding a crash-safe WAV file, with levels and hot-swap.

The file has the recording's rate, channels and sample format; the device is opened in that format when
it accepts it (else converted on the way).

Capture's audio thread only queues copies; its delivery thread writes each chunk to disk, so a slow disk
grows the queue instead of dropping audio. A journal entry names the file while it is being written, so
:func:`recover_interrupted` can repair files left by a crash on the next start.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

from ..errors import AsrproError
from .capture import InputCapture, Quality
from .notifications import AudioLevel
from .wavfile import SampleFormat, WavWriter, repair_wav

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

EndReason = Literal["stopped", "max_duration", "device_lost", "disk_full"]
LEVEL_INTERVAL_S = 0.05
"""``audio.level`` at most every 50 ms (~20 Hz)."""


def _dbfs(value: float) -> float:
    return round(20 * math.log10(value), 1) if value > 0 else -120.0


class RecordingResult(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to ``audio.record.stop``."""

    recording_id: str
    path: str
    duration_s: float
    sample_rate_hz: int
    channels: int
    format: SampleFormat
    """``pcm16`` (16-bit integer) or ``float32`` samples in the WAV file."""
    device: str
    """Id of the device recorded last (it changes after a fallback to the default device)."""
    peak: float
    """Highest absolute sample, 0..1."""
    peak_dbfs: float
    rms_dbfs: float
    overflow_count: int
    """Blocks the device reported as overflowed (audio lost before it reached the sidecar)."""
    ended: EndReason


class Recording:
    """Records ``device`` into ``path`` until :meth:`stop`, ``max_duration_s`` or the device is lost.

    ``on_event(kind, message, level)`` reports what ends or changes a recording on its own;
    with ``fallback_to_default`` a lost device is replaced by the default one and the file goes on.
    """

    def __init__(
        self,
        path: Path,
        *,
        device: str | None,
        sample_rate_hz: int,
        channels: int = 1,
        sample_format: SampleFormat = "pcm16",
        quality: Quality = "high",
        journal_dir: Path,
        max_duration_s: float | None = None,
        fallback_to_default: bool = False,
        on_level: Callable[[AudioLevel], None] | None = None,
        on_event: Callable[[str, str, str], None] | None = None,
        stall_timeout_s: float = 2.0,
    ) -> None:
        self.id = f"rec_{uuid.uuid4().hex[:12]}"
        self.path = path
        self.sample_rate_hz = sample_rate_hz
        self.channels = channels
        self.sample_format: SampleFormat = sample_format
        self.quality: Quality = quality
        self.max_frames = None if max_duration_s is None else int(max_duration_s * sample_rate_hz)
        self.fallback_to_default = fallback_to_default
        self.on_level = on_level
        self.on_event = on_event
        self.stall_timeout_s = stall_timeout_s
        self._journal = journal_dir / f"{self.id}.json"
        self._lock = threading.Lock()
        self._writer: WavWriter | None = None
        self._capture = self._new_capture(device)
        self._overflows_before = 0
        self._peak = 0.0
        self._sum_squares = 0.0
        self._level_peak = self._level_sum_squares = 0.0
        self._level_values = 0
        self._level_sent_at = -math.inf
        self._ended: EndReason | None = None
        self._finishing = False
        self._result: RecordingResult | None = None

    def _new_capture(self, device: str | None) -> InputCapture:
        return InputCapture(
            device,
            self.sample_rate_hz,
            self._on_audio,
            on_error=self._on_capture_error,
            stall_timeout_s=self.stall_timeout_s,
            channels=self.channels,
            quality=self.quality,
        )

    @property
    def device_id(self) -> str:
        device = self._capture.device
        return device.id if device else str(self._capture.device_selector)

    @property
    def finished(self) -> bool:
        return self._result is not None

    def start(self) -> None:
        """Create the file (and its journal entry) and start capturing; raises as InputCapture.start."""
        self._journal.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._journal.write_text(json.dumps({"path": str(self.path)}))
            self._writer = WavWriter(
                self.path, self.sample_rate_hz, channels=self.channels, sample_format=self.sample_format
            )
            self._capture.start()
        except BaseException:
            if self._writer is not None:
                self._writer.close()
                self.path.unlink(missing_ok=True)
            self._journal.unlink(missing_ok=True)
            raise

    def stop(self) -> RecordingResult:
        """Stop (if still running), finish the file and return what was recorded (idempotent)."""
        return self._finish("stopped")

    # --- delivery thread -------------------------------------------------------------------------
    def _on_audio(self, samples: npt.NDArray[np.float32]) -> None:
        import numpy as np

        writer = self._writer
        if writer is None or self._ended is not None:
            return
        if self.max_frames is not None:
            samples = samples[: max(0, self.max_frames - writer.frames_written)]
        try:
            writer.write(samples)
        except OSError as exc:  # the disk is full (or gone): keep what is written, a valid WAV
            self._end_soon(
                "disk_full",
                f"The disk is full ({exc.strerror}); the recording stopped. "
                f"The audio recorded so far is in {self.path}.",
                "error",
            )
            return
        peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
        squares = float(np.vdot(samples, samples))
        self._peak = max(self._peak, peak)
        self._sum_squares += squares
        self._level(peak, squares, samples.size)
        if self.max_frames is not None and writer.frames_written >= self.max_frames:
            self._end_soon("max_duration", "Recording reached its maximum duration.", "info")

    def _level(self, peak: float, squares: float, count: int) -> None:
        """Accumulate ``count`` sample values (every channel) and send a level when one is due."""
        self._level_peak = max(self._level_peak, peak)
        self._level_sum_squares += squares
        self._level_values += count
        now = time.monotonic()
        if self.on_level is None or now - self._level_sent_at < LEVEL_INTERVAL_S or not self._level_values:
            return
        rms = math.sqrt(self._level_sum_squares / self._level_values)
        level = AudioLevel(
            self.id, round(self._level_peak, 4), round(rms, 4), _dbfs(self._level_peak), _dbfs(rms)
        )
        self._level_sent_at, self._level_peak, self._level_sum_squares, self._level_values = now, 0.0, 0.0, 0
        self.on_level(level)

    def _on_capture_error(self, error: AsrproError) -> None:
        if self._ended is not None or self._finishing:
            return
        if self.fallback_to_default:
            lost = self.device_id
            self._overflows_before += self._capture.overflow_count
            replacement = self._new_capture(None)
            try:
                replacement.start()
            except AsrproError as exc:
                log.warning("no default device to fall back to: %s", exc.message)
            else:
                self._capture = replacement
                message = f"{error.message} Recording {self.id} goes on with {self.device_id}."
                self._event("recording_device_switched", message, "warning")
                log.info("recording %s moved from %s to %s", self.id, lost, self.device_id)
                return
        self._end_soon(
            "device_lost", f"{error.message} The audio recorded so far is in {self.path}.", "error"
        )

    def _end_soon(self, reason: EndReason, message: str, level: str) -> None:
        """End from the delivery thread: finishing joins that thread, so do it on another one."""
        self._ended = reason
        threading.Thread(
            target=self._finish, args=(reason, message, level), name="asrpro-record-end", daemon=True
        ).start()

    def _event(self, kind: str, message: str, level: str) -> None:
        if self.on_event is not None:
            self.on_event(kind, message, level)

    # --- finishing -------------------------------------------------------------------------------
    def _finish(self, reason: EndReason, message: str | None = None, level: str = "info") -> RecordingResult:
        with self._lock:
            if self._result is not None:
                return self._result
            self._finishing = True
            while True:  # a fallback may swap the capture while the old one stops
                capture = self._capture
                capture.stop()
                if capture is self._capture:
                    break
            self._ended = self._ended or reason
            assert self._writer is not None
            self._writer.close()
            self._journal.unlink(missing_ok=True)
            frames = self._writer.frames_written
            rms = math.sqrt(self._sum_squares / (frames * self.channels)) if frames else 0.0
            self._result = RecordingResult(
                recording_id=self.id,
                path=str(self.path),
                duration_s=round(self._writer.duration_s, 3),
                sample_rate_hz=self.sample_rate_hz,
                channels=self.channels,
                format=self.sample_format,
                device=self.device_id,
                peak=round(self._peak, 4),
                peak_dbfs=_dbfs(self._peak),
                rms_dbfs=_dbfs(rms),
                overflow_count=self._overflows_before + self._capture.overflow_count,
                ended=self._ended,
            )
        log.info(
            "recording %s ended (%s): %.2f s in %s",
            self.id,
            self._ended,
            frames / self.sample_rate_hz,
            self.path,
        )
        if message is not None:
            self._event(f"recording_{reason}", f"Recording {self.id}: {message}", level)
        return self._result


def recover_interrupted(journal_dir: Path) -> list[Path]:
    """Repair the WAV files of recordings a crash interrupted; returns their paths."""
    recovered = []
    for entry in sorted(journal_dir.glob("rec_*.json")) if journal_dir.is_dir() else []:
        try:
            path = Path(json.loads(entry.read_text())["path"])
            if path.is_file():
                repair_wav(path)
                recovered.append(path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("cannot recover the recording listed in %s: %s", entry, exc)
        entry.unlink(missing_ok=True)
    if recovered:
        log.warning(
            "recovered %d interrupted recording(s): %s", len(recovered), ", ".join(map(str, recovered))
        )
    return recovered
