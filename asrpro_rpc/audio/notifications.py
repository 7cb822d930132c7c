"""The audio room's notification payloads: recording levels and input-device hot-swap."""

from __future__ import annotations

import msgspec

from .inputs import AudioDevice


class AudioLevel(msgspec.Struct, frozen=True):
    """The level of a recording's last ~50 ms, for a VU meter (0..1 and dBFS)."""

    recording_id: str
    peak: float
    rms: float
    peak_dbfs: float
    rms_dbfs: float


class AudioDevicesChanged(msgspec.Struct, frozen=True):
    devices: list[AudioDevice]
    """The whole new list, as ``audio.devices`` returns it."""
    added: list[str]
    removed: list[str]


AUDIO_NOTIFICATIONS: list[tuple[str, type[msgspec.Struct], str]] = [
    ("audio.level", AudioLevel, "A recording's level at ~20 Hz (peak and RMS, linear and dBFS)."),
    ("audio.devices_changed", AudioDevicesChanged, "Input devices appeared or disappeared (hot-swap)."),
]
