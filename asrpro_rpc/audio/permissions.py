"""Microphone permission per platform, with guidance a person can follow.

Each platform's facts come from a small probe (``PermissionProbe``) so tests drive every branch: macOS reads
AVFoundation's authorisation status through pyobjc when installed; Linux checks whether the sound devices
can be opened, membership of the ``audio`` group and a reachable sound server; Windows reads the privacy
setting from the registry.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import msgspec

from ..errors import PermissionDenied

Status = Literal["granted", "denied", "not_determined", "restricted", "unknown"]
MACOS_SETTINGS_URL = "x-apple.systempreferences:com.apple.preference.security?Privacy_Microphone"
WINDOWS_SETTINGS_URL = "ms-settings:privacy-microphone"
_WINDOWS_CONSENT_KEY = (
    r"Software\Microsoft\Windows\CurrentVersion\CapabilityAccessManager\ConsentStore\microphone"
)
_MACOS_STATUS: dict[int, Status] = {0: "not_determined", 1: "restricted", 2: "denied", 3: "granted"}

GUIDANCE = {
    "darwin": "Allow microphone access in System Settings → Privacy & Security → Microphone for the app "
    "that runs asrpro (your terminal or the host app), then restart it.",
    "linux": "Make sure your user can open the sound devices: add it to the 'audio' group "
    "(sudo usermod -aG audio $USER, then log in again) or run a sound server (PipeWire/PulseAudio) "
    "in your session.",
    "win32": "Allow microphone access in Settings → Privacy & security → Microphone, including "
    "'Let desktop apps access your microphone'.",
}


class MicrophonePermission(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The answer to ``audio.permission``."""

    status: Status
    platform: str
    guidance: str | None = None
    """What to do when access is not granted."""
    settings_url: str | None = None
    """Opens the system's microphone privacy page (macOS, Windows)."""
    details: list[str] = msgspec.field(default_factory=list)


@dataclass
class PermissionProbe:
    """Where each platform's facts come from; the defaults read the real system."""

    platform: str = sys.platform
    macos_status: Callable[[], int | None] = field(default=lambda: _avfoundation_status())
    linux_capture_nodes: Callable[[], list[tuple[str, bool]]] = field(default=lambda: _capture_nodes())
    linux_in_audio_group: Callable[[], bool | None] = field(default=lambda: _in_audio_group())
    linux_sound_server: Callable[[], bool] = field(default=lambda: _sound_server_running())
    windows_consent: Callable[[], str | None] = field(default=lambda: _windows_consent())


def check_permission(probe: PermissionProbe | None = None) -> MicrophonePermission:
    """Whether this process may record from a microphone, and what to do if not."""
    probe = probe or PermissionProbe()
    if probe.platform == "darwin":
        return _macos(probe)
    if probe.platform.startswith("linux"):
        return _linux(probe)
    if probe.platform == "win32":
        return _windows(probe)
    return MicrophonePermission(status="unknown", platform=probe.platform)


def _macos(probe: PermissionProbe) -> MicrophonePermission:
    code = probe.macos_status()
    status: Status = "unknown" if code is None else _MACOS_STATUS.get(code, "unknown")
    details = ["pyobjc (AVFoundation) is not installed"] if code is None else []
    return MicrophonePermission(
        status=status,
        platform="darwin",
        guidance=None if status == "granted" else GUIDANCE["darwin"],
        settings_url=MACOS_SETTINGS_URL,
        details=details,
    )


def _linux(probe: PermissionProbe) -> MicrophonePermission:
    nodes = probe.linux_capture_nodes()
    in_group = probe.linux_in_audio_group()
    server = probe.linux_sound_server()
    details = [f"{path}: {'can open' if ok else 'cannot open'}" for path, ok in nodes]
    details.append(f"in the audio group: {'unknown' if in_group is None else 'yes' if in_group else 'no'}")
    details.append(f"sound server: {'running' if server else 'not found'}")
    status: Status
    if server or any(ok for _, ok in nodes):
        status = "granted"
    elif nodes:
        status = "denied"
    else:
        status = "unknown"  # no capture device at all: nothing to be refused
    return MicrophonePermission(
        status=status,
        platform="linux",
        guidance=None if status == "granted" else GUIDANCE["linux"],
        details=details,
    )


def _windows(probe: PermissionProbe) -> MicrophonePermission:
    value = probe.windows_consent()
    status: Status = {"Allow": "granted", "Deny": "denied"}.get(value or "", "unknown")
    return MicrophonePermission(
        status=status,
        platform="win32",
        guidance=None if status == "granted" else GUIDANCE["win32"],
        settings_url=WINDOWS_SETTINGS_URL,
        details=[f"privacy setting: {value or 'not set'}"],
    )


def permission_error(exc: Exception, device_id: str, platform: str = sys.platform) -> PermissionDenied | None:
    """A :class:`PermissionDenied` with guidance when opening a device failed for lack of permission."""
    text = str(exc).lower()
    refused = any(word in text for word in ("permission", "not permitted", "access denied", "-9986"))
    if isinstance(exc, PermissionError) or refused:
        key = "linux" if platform.startswith("linux") else platform
        return PermissionDenied(
            f"The system refused access to the microphone {device_id}. {GUIDANCE.get(key, '')}".strip(),
            device=device_id,
            settings_url={"darwin": MACOS_SETTINGS_URL, "win32": WINDOWS_SETTINGS_URL}.get(platform),
        )
    return None


# --- real probes -------------------------------------------------------------------------------
def _avfoundation_status() -> int | None:
    try:
        import AVFoundation  # type: ignore[import-not-found]
    except ImportError:
        return None
    return int(AVFoundation.AVCaptureDevice.authorizationStatusForMediaType_(AVFoundation.AVMediaTypeAudio))


def _capture_nodes() -> list[tuple[str, bool]]:
    snd = Path("/dev/snd")
    if not snd.is_dir():
        return []
    return [(str(p), os.access(p, os.R_OK | os.W_OK)) for p in sorted(snd.glob("pcmC*D*c"))]


def _in_audio_group() -> bool | None:
    import grp  # POSIX only

    try:
        audio = grp.getgrnam("audio")
    except KeyError:
        return None
    return audio.gr_gid in os.getgroups() or audio.gr_gid == os.getgid()


def _sound_server_running() -> bool:
    from .pulse import list_sources

    return bool(list_sources())


def _windows_consent() -> str | None:
    """``Allow``/``Deny``: a machine-wide ``Deny`` wins over the user's own setting."""
    try:
        import winreg  # type: ignore[import-not-found]
    except ImportError:
        return None
    values = {}
    for name, hive in (("machine", winreg.HKEY_LOCAL_MACHINE), ("user", winreg.HKEY_CURRENT_USER)):
        try:
            with winreg.OpenKey(hive, _WINDOWS_CONSENT_KEY) as key:
                values[name] = str(winreg.QueryValueEx(key, "Value")[0])
        except OSError:
            continue
    if values.get("machine") == "Deny":
        return "Deny"
    return values.get("user", values.get("machine"))
