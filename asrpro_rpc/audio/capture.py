"""Live microphone capture: a PortAudio callback stream, a delivery thread and a watchdog.

The audio callback only copies each block into an unbounded queue; a delivery thread converts the
device's channels to the wanted ones (mixing down or duplicating), resamples when the device runs at
another rate, and hands float32 chunks to ``on_audio``. When a
sound server drops a stream, callbacks just stop (no status flag, no exception), so the delivery thread
also watches the time of the last callback and reports a :class:`DeviceUnavailable` through ``on_error``
after everything already captured has been delivered.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from ..errors import AsrproError, DeviceUnavailable
from . import inputs as devices
from .permissions import permission_error

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Samples = npt.NDArray[np.float32]

log = logging.getLogger(__name__)

_POLL_S = 0.1
_SOURCE_CHECK_INTERVAL_S = 1.0


Quality = Literal["low", "medium", "high"]
RESAMPLER_OPTIONS: dict[str, str] = {
    "low": "filter_size=8:phase_shift=6",
    "medium": "filter_size=32:phase_shift=10",
    "high": "filter_size=128:phase_shift=14:cutoff=0.98",
}
"""libswresample settings per ``audio.quality``: longer filters let less aliasing through (each ~2 ms/s)."""


class Resampler:
    """Streaming float32 resampling (``(frames,)`` mono or ``(frames, 2)`` stereo) through libswresample."""

    def __init__(
        self, from_rate_hz: int, to_rate_hz: int, *, channels: int = 1, quality: Quality = "high"
    ) -> None:
        import av

        self._from_rate_hz = from_rate_hz
        self._channels = channels
        self._layout = "mono" if channels == 1 else "stereo"
        self._time_base = Fraction(1, from_rate_hz)
        self._pts = 0
        self._graph = av.filter.Graph()
        source = self._graph.add_abuffer(
            format="flt", sample_rate=from_rate_hz, layout=self._layout, time_base=self._time_base
        )
        resample = self._graph.add("aresample", f"{to_rate_hz}:{RESAMPLER_OPTIONS[quality]}")
        sink = self._graph.add("abuffersink")
        source.link_to(resample)
        resample.link_to(sink)
        self._graph.configure()

    def __call__(self, samples: Samples | None) -> Samples:
        """Resample the next block; ``None`` flushes what the filter still holds (the end of the audio)."""
        import av
        import numpy as np

        frame = None
        if samples is not None:
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout=self._layout)
            frame.sample_rate, frame.time_base, frame.pts = self._from_rate_hz, self._time_base, self._pts
            self._pts += len(samples)
        self._graph.push(frame)
        out = []
        while True:
            try:
                out.append(self._graph.pull().to_ndarray().reshape(-1, self._channels))
            except (BlockingIOError, EOFError):  # nothing more for now / flushed
                break
        shape = (-1,) if self._channels == 1 else (-1, self._channels)
        joined = np.concatenate(out) if out else np.zeros((0, self._channels), np.float32)
        return joined.astype(np.float32, copy=False).reshape(shape)


class InputCapture:
    """Capture float32 audio at ``sample_rate_hz`` from ``device`` (id, name or None: the default).

    ``on_audio`` gets ``(frames,)`` arrays when ``channels`` is 1, ``(frames, 2)`` when it is 2. The device
    is opened at ``device_sample_rate_hz`` (None: ``sample_rate_hz``) with ``device_channels`` (None:
    ``channels``) when it accepts them, else at its own rate or another channel count, and converted.
    ``on_audio`` and ``on_error`` run on the delivery thread, never on the audio thread. After a failure
    (device lost, callbacks stalled for ``stall_timeout_s``) ``on_error`` runs once, after every captured
    chunk has been delivered, and the stream is closed; ``stop()`` is still safe to call.
    """

    def __init__(
        self,
        device: str | None,
        sample_rate_hz: int,
        on_audio: Callable[[Samples], None],
        *,
        on_error: Callable[[AsrproError], None] | None = None,
        stall_timeout_s: float = 2.0,
        first_callback_timeout_s: float = 5.0,
        block_duration_s: float = 0.02,
        channels: int = 1,
        device_sample_rate_hz: int | None = None,
        device_channels: int | None = None,
        quality: Quality = "high",
    ) -> None:
        self.device_selector = device
        self.sample_rate_hz = sample_rate_hz
        self.channels = channels
        self.on_audio = on_audio
        self.on_error = on_error
        self.stall_timeout_s = stall_timeout_s
        self.first_callback_timeout_s = first_callback_timeout_s
        self.block_duration_s = block_duration_s
        self.device_sample_rate_hz = device_sample_rate_hz or sample_rate_hz
        """The rate asked of the device; after ``start``, the rate it runs at."""
        self.device_channels = device_channels or channels
        """The channel count asked of the device; after ``start``, the one it was opened with."""
        self.quality: Quality = quality
        self.device: devices.AudioDevice | None = None
        self.overflow_count = 0
        """Blocks the device reported as overflowed (audio lost before it reached us)."""
        self.failure: AsrproError | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._callbacks = 0
        self._last_callback_s = 0.0
        self._pulse_source: str | None = None
        self._source_checked_s = 0.0

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the device and start capturing.

        Raises:
            DeviceUnavailable: unknown device, or it refused the settings.
            PermissionDenied: the operating system refused access to the microphone.
        """
        target = devices.resolve_device(self.device_selector)
        self.device = target.device
        self._pulse_source = target.pulse_source
        self._stream = self._open(target)
        self._last_callback_s = time.monotonic()
        self._thread = threading.Thread(target=self._deliver, name="asrpro-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop capturing, deliver what is left, close the stream and join the thread (idempotent)."""
        self._stopping.set()
        self._close_stream()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- the audio thread ------------------------------------------------------------------------
    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        self._queue.put((indata.copy(), bool(status.input_overflow)))
        self._callbacks += 1
        self._last_callback_s = time.monotonic()

    def _on_finished(self) -> None:
        self._finished.set()

    # --- opening ---------------------------------------------------------------------------------
    def _device_rate(self, sd: Any, index: int, channels: int) -> int:
        try:
            sd.check_input_settings(device=index, samplerate=self.device_sample_rate_hz, channels=channels)
        except Exception:  # the device can't run at this rate: use its own and resample
            assert self.device is not None
            return int(self.device.default_sample_rate_hz)
        return self.device_sample_rate_hz

    def _open(self, target: devices.OpenTarget) -> Any:
        import sounddevice as sd

        max_channels = max(1, target.device.max_input_channels)
        wanted = min(self.device_channels, max_channels, 2)
        channel_options = [wanted] + [c for c in (1, min(2, max_channels)) if c != wanted]
        rate = self._device_rate(sd, target.portaudio_index, wanted)
        last_error: Exception | None = None
        with devices.PORTAUDIO_LOCK:
            for channels in channel_options:
                saved = os.environ.get("PULSE_SOURCE")
                if target.pulse_source is not None:
                    os.environ["PULSE_SOURCE"] = target.pulse_source  # read by libpulse when the PCM opens
                try:
                    stream = sd.InputStream(
                        device=target.portaudio_index,
                        samplerate=rate,
                        channels=channels,
                        dtype="float32",
                        blocksize=max(1, int(rate * self.block_duration_s)),
                        callback=self._callback,
                        finished_callback=self._on_finished,
                    )
                    stream.start()
                except Exception as exc:  # sd.PortAudioError / ValueError: try the next channel count
                    last_error = exc
                    continue
                finally:
                    if target.pulse_source is not None:
                        if saved is None:
                            os.environ.pop("PULSE_SOURCE", None)
                        else:
                            os.environ["PULSE_SOURCE"] = saved
                self.device_sample_rate_hz, self.device_channels = rate, channels
                devices.stream_opened()
                log.info("capturing from %s at %d Hz, %d channel(s)", target.device.id, rate, channels)
                return stream
        assert last_error is not None
        raise permission_error(last_error, target.device.id) or DeviceUnavailable(
            f"Cannot open {target.device.id} at {rate} Hz: {last_error}",
            device=target.device.id,
            sample_rate_hz=rate,
        ) from last_error

    def _close_stream(self) -> None:
        with devices.PORTAUDIO_LOCK:
            stream, self._stream = self._stream, None
            if stream is None:
                return
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            finally:
                devices.stream_closed()

    # --- the delivery thread ---------------------------------------------------------------------
    def _stalled(self) -> bool:
        limit_s = self.stall_timeout_s if self._callbacks else self.first_callback_timeout_s
        return time.monotonic() - self._last_callback_s > limit_s

    def _source_gone(self) -> bool:
        """A chosen sound-server source vanished (the server silently moves the stream to another one)."""
        now = time.monotonic()
        if self._pulse_source is None or now - self._source_checked_s < _SOURCE_CHECK_INTERVAL_S:
            return False
        self._source_checked_s = now
        from .pulse import list_sources

        return all(source.name != self._pulse_source for source in list_sources())

    def _deliver(self) -> None:
        resample = None
        if self.device_sample_rate_hz != self.sample_rate_hz:
            resample = Resampler(
                self.device_sample_rate_hz, self.sample_rate_hz, channels=self.channels, quality=self.quality
            )
        failure: AsrproError | None = None
        while True:
            try:
                block, overflowed = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self._stopping.is_set():
                    break
                if self._finished.is_set() or self._stalled():
                    failure = self._lost()
                    break
                continue
            self._hand_over(block, overflowed, resample)
            if not self._stopping.is_set() and self._source_gone():
                failure = self._lost("the source was removed")
                break
        if failure is not None:
            self._close_stream()
        while not self._queue.empty():  # blocks that arrived while the stream closed
            self._hand_over(*self._queue.get(), resample)
        if resample is not None:
            self._emit(resample(None))
        if failure is not None:
            self.failure = failure
            if self.on_error is not None:
                self.on_error(failure)

    def _lost(self, why: str | None = None) -> DeviceUnavailable:
        device_id = self.device.id if self.device else str(self.device_selector)
        why = why or ("the stream ended" if self._finished.is_set() else "audio stopped arriving")
        log.warning("capture from %s failed: %s", device_id, why)
        return DeviceUnavailable(
            f"The input device {device_id} stopped delivering audio ({why}); it may have been unplugged.",
            device=device_id,
            reason="device_lost",
        )

    def _hand_over(self, block: Any, overflowed: bool, resample: Resampler | None) -> None:
        import numpy as np

        self.overflow_count += overflowed
        if self.channels == 1:
            samples = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype="float32")
        else:  # stereo: the device's first two channels, a mono device on both
            samples = np.repeat(block, 2, axis=1) if block.shape[1] == 1 else block[:, :2]
        self._emit(resample(np.ascontiguousarray(samples)) if resample is not None else samples)

    def _emit(self, samples: Samples) -> None:
        if not len(samples):
            return
        try:
            self.on_audio(samples)
        except Exception:  # a consumer bug must not stop the capture (and lose the rest)
            log.exception("on_audio failed")
