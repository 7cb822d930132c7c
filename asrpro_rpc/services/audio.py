"""The audio service: input devices (with hot-swap announcements), recordings and microphone permission.

Nothing here imports sounddevice or numpy at module level; PortAudio starts on the first audio call.
Several recordings may run at once (each opens its own stream). Recordings interrupted by a crash are
repaired when the service starts. Each recording reads the ``audio`` settings when it starts; what its
request passes wins.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import msgspec

from ..audio import inputs as audio_devices
from ..audio.inputs import AudioDevice
from ..audio.notifications import AudioDevicesChanged
from ..audio.permissions import MicrophonePermission, PermissionProbe, check_permission
from ..audio.recorder import Recording, RecordingResult, recover_interrupted
from ..audio.wavfile import SampleFormat
from ..config.settings import AudioSettings
from ..errors import DeviceUnavailable, InvalidParams, NotFound, shown
from ..events import NotificationMessage, Notify
from ..system.paths import recording_journal_dir, recordings_dir

log = logging.getLogger(__name__)


class RecordStartParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``audio.record.start``."""

    device: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    """A device id or name from ``audio.devices``; omitted: ``audio.input_device``, else the default input."""
    path: str | None = None
    """The WAV file to write (parent directories are created); omitted: a new file in the recordings dir."""
    sample_rate_hz: int | None = None
    """The file's rate, asked of the device (resampled if it refuses); omitted: ``audio.sample_rate_hz``."""
    channels: Annotated[int, msgspec.Meta(ge=1, le=2)] | None = None
    """1 (mono) or 2 (stereo); omitted: ``audio.channels``."""
    format: SampleFormat | None = None
    """``pcm16`` or ``float32`` samples in the file; omitted: ``audio.format``."""
    max_duration_s: float | None = None
    """End the recording on its own after this long (a ``notification`` says so)."""
    fallback_to_default: bool = False
    """If the device disappears, go on recording from the default device into the same file."""
    levels: bool = True
    """Send ``audio.level`` notifications (~20 Hz)."""


class RecordStartResult(msgspec.Struct, frozen=True, kw_only=True):
    recording_id: str
    path: str
    device: str
    sample_rate_hz: int
    channels: int
    format: SampleFormat


class RecordStopParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    recording_id: str


def input_device_error(error: DeviceUnavailable) -> DeviceUnavailable:
    """``error`` for a device the ``audio.input_device`` setting named, saying so."""
    return DeviceUnavailable(
        f"{error.message} The device comes from the audio.input_device setting: pass device, or change "
        "the setting (config.set, null for the system default).",
        **{**error.data, "setting": "audio.input_device"},
    )


class AudioService:
    """Devices, recordings and permission; ``notify(method, params)`` reaches the hosts.

    ``settings()`` gives the ``audio`` settings in force (read at each recording's start).
    """

    def __init__(
        self,
        notify: Notify,
        *,
        settings: Callable[[], AudioSettings] = AudioSettings,
        recordings_root: Path | None = None,
        device_poll_interval_s: float = 2.0,
        permission_probe: PermissionProbe | None = None,
    ) -> None:
        self._notify = notify
        self._settings = settings
        self.recordings_root = recordings_root or recordings_dir()
        self.journal_dir = recording_journal_dir(self.recordings_root)
        self.device_poll_interval_s = device_poll_interval_s
        self._permission_probe = permission_probe
        self._recordings: dict[str, Recording] = {}
        self._lock = threading.Lock()
        self._known_ids: list[str] | None = None
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.recovered = recover_interrupted(self.journal_dir)

    # --- devices ---------------------------------------------------------------------------------
    def devices(self, refresh: bool = False) -> list[AudioDevice]:
        """The input devices; ``refresh`` re-reads PortAudio's list (when no stream is open)."""
        if refresh:
            audio_devices.reinitialize_portaudio()
        found = audio_devices.list_input_devices()
        self._announce(found)
        self._ensure_watcher()
        return found

    def _announce(self, found: list[AudioDevice]) -> None:
        ids = [d.id for d in found]
        with self._lock:
            before, self._known_ids = self._known_ids, ids
        if before is None or before == ids:
            return
        added = [i for i in ids if i not in before]
        removed = [i for i in before if i not in ids]
        log.info("audio devices changed: +%s -%s", added, removed)
        self._notify("audio.devices_changed", AudioDevicesChanged(found, added, removed))

    def _ensure_watcher(self) -> None:
        with self._lock:
            if self._watcher is not None or self._watch_stop.is_set():
                return
            self._watcher = threading.Thread(target=self._watch, name="asrpro-device-watch", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        while not self._watch_stop.wait(self.device_poll_interval_s):
            try:
                audio_devices.reinitialize_portaudio()
                self._announce(audio_devices.list_input_devices())
            except Exception:  # a scan failing now must not end the watch
                log.exception("device scan failed")

    # --- recording -------------------------------------------------------------------------------
    def start_recording(self, params: RecordStartParams) -> RecordStartResult:
        """Start a recording; raises DeviceUnavailable / PermissionDenied when the device can't open."""
        settings = self._settings()
        rate = settings.sample_rate_hz if params.sample_rate_hz is None else params.sample_rate_hz
        if rate < 1000 or rate > 384_000:
            raise InvalidParams(f"sample_rate_hz must be 1000..384000, not {rate}.", field="sample_rate_hz")
        if params.max_duration_s is not None and params.max_duration_s <= 0:
            raise InvalidParams("max_duration_s must be positive.", field="max_duration_s")
        device = params.device or settings.input_device
        recording = Recording(
            Path(os.path.expanduser(params.path)) if params.path else self._auto_path(),
            device=device,
            sample_rate_hz=rate,
            channels=params.channels or settings.channels,
            sample_format=params.format or settings.format,
            quality=settings.quality,
            journal_dir=self.journal_dir,
            max_duration_s=params.max_duration_s,
            fallback_to_default=params.fallback_to_default,
            on_level=(lambda level: self._notify("audio.level", level)) if params.levels else None,
            on_event=self._on_recording_event,
        )
        try:
            recording.start()
        except DeviceUnavailable as exc:
            if params.device is None and device is not None:
                raise input_device_error(exc) from exc
            raise
        with self._lock:
            self._recordings[recording.id] = recording
        self._ensure_watcher()
        return RecordStartResult(
            recording_id=recording.id,
            path=str(recording.path),
            device=recording.device_id,
            sample_rate_hz=recording.sample_rate_hz,
            channels=recording.channels,
            format=recording.sample_format,
        )

    def stop_recording(self, recording_id: str) -> RecordingResult:
        """Stop a recording (or collect one that ended on its own) and return what it holds."""
        with self._lock:
            recording = self._recordings.pop(recording_id, None)
        if recording is None:
            raise NotFound(
                f"No recording {shown(recording_id)}: it was never started or was already stopped."
            )
        return recording.stop()

    def finished(self, recording_id: str) -> bool:
        """Whether a recording ended (on its own or stopped); unknown ids count as finished."""
        with self._lock:
            recording = self._recordings.get(recording_id)
        return recording is None or recording.finished

    def _auto_path(self) -> Path:
        import datetime

        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        return self.recordings_root / f"recording-{stamp}.wav"

    def _on_recording_event(self, kind: str, message: str, level: str) -> None:
        self._notify("notification", NotificationMessage(level, message, kind))  # type: ignore[arg-type]

    # --- permission ------------------------------------------------------------------------------
    def permission(self) -> MicrophonePermission:
        return check_permission(self._permission_probe)

    def close(self) -> None:
        """Stop every recording (their files stay valid) and the device watch."""
        self._watch_stop.set()
        with self._lock:
            recordings, self._recordings = list(self._recordings.values()), {}
        for recording in recordings:
            recording.stop()
        if self._watcher is not None:
            self._watcher.join()
