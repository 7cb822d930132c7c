"""InputCapture, devices, WAV writing/repair and permissions, in-process, on the real virtual microphone."""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrpro_rpc.audio import permissions
from asrpro_rpc.audio.capture import InputCapture
from asrpro_rpc.audio.inputs import list_input_devices, resolve_device
from asrpro_rpc.audio.permissions import MACOS_SETTINGS_URL, PermissionProbe, check_permission
from asrpro_rpc.audio.wavfile import WavWriter, repair_wav
from asrpro_rpc.errors import DeviceUnavailable, PermissionDenied
from tests.support.signals import best_correlation
from tests.support.virtual_mic import VirtualMic, drop_client_streams


def capture_while_playing(mic: VirtualMic, wav: Path, **kwargs: object) -> tuple[np.ndarray, InputCapture]:
    chunks: list[np.ndarray] = []
    capture = InputCapture(None, 16000, chunks.append, **kwargs)  # type: ignore[arg-type]
    capture.start()
    mic.play(wav).wait()
    capture.stop()
    return np.concatenate(chunks), capture


def test_devices_list_portaudio_and_sound_server_sources(virtual_mic: VirtualMic) -> None:
    devices = {d.id: d for d in list_input_devices()}
    assert "ALSA:pulse" in devices
    mic = devices[f"pulse:{virtual_mic.source}"]
    assert mic.is_default and mic.backend == "pulse" and not mic.is_monitor
    assert devices[f"pulse:{virtual_mic.sink}.monitor"].is_monitor
    assert [d.id for d in devices.values() if d.is_default] == [mic.id]
    assert 16000 in devices["ALSA:pulse"].supported_sample_rates_hz
    assert resolve_device(virtual_mic.source).device.id == mic.id  # by name
    assert resolve_device(mic.id).pulse_source == virtual_mic.source  # by id


def test_unknown_device_lists_what_exists(virtual_mic: VirtualMic) -> None:
    with pytest.raises(DeviceUnavailable) as caught:
        InputCapture("no such microphone", 16000, lambda _: None).start()
    assert "ALSA:pulse" in caught.value.data["available"]
    with pytest.raises(DeviceUnavailable, match="several"):
        resolve_device("ul")  # part of "pulse", "default" and "Null Input"


def test_capture_delivers_float32_mono_that_matches_what_was_played(
    virtual_mic: VirtualMic, speech_wav: Path
) -> None:
    reference, _ = sf.read(speech_wav, dtype="float32")
    recorded, capture = capture_while_playing(virtual_mic, speech_wav)
    assert recorded.dtype == np.float32 and recorded.ndim == 1
    assert best_correlation(recorded, reference) > 0.95
    assert capture.failure is None and capture.overflow_count == 0
    assert not capture.active


def test_capture_resamples_when_the_device_runs_at_another_rate(
    virtual_mic: VirtualMic, speech_wav: Path
) -> None:
    reference, _ = sf.read(speech_wav, dtype="float32")
    recorded, capture = capture_while_playing(virtual_mic, speech_wav, device_sample_rate_hz=48000)
    assert capture.device_sample_rate_hz == 48000
    assert best_correlation(recorded, reference) > 0.9


def test_records_a_chosen_sound_server_source(virtual_mic: VirtualMic, speech_wav: Path) -> None:
    """Speech played into a second sink reaches a capture of that sink's monitor, not the default mic."""
    module = virtual_mic.pactl(
        "load-module", "module-null-sink", "sink_name=second", "rate=16000", "channels=1"
    )
    try:
        chunks: list[np.ndarray] = []
        capture = InputCapture("pulse:second.monitor", 16000, chunks.append)
        capture.start()
        time.sleep(0.3)  # a fresh null sink wakes up slowly
        virtual_mic.play(speech_wav, sink="second").wait()
        capture.stop()
        recorded = np.concatenate(chunks)
        assert float(np.sqrt(np.mean(recorded**2))) > 0.01
    finally:
        virtual_mic.pactl("unload-module", module.strip())


def test_watchdog_reports_a_stream_the_server_dropped(virtual_mic: VirtualMic) -> None:
    errors: list[DeviceUnavailable] = []
    reported = threading.Event()
    capture = InputCapture(
        None,
        16000,
        lambda _: None,
        on_error=lambda e: (errors.append(e), reported.set()),
        stall_timeout_s=1.0,
    )  # type: ignore[func-returns-value]
    capture.start()
    try:
        drop_client_streams(virtual_mic)
        assert reported.wait(10)
        assert errors[0].data["reason"] == "device_lost"
        assert capture.failure is errors[0]
    finally:
        capture.stop()
        virtual_mic.restore()


def test_wav_writer_header_is_valid_after_every_write(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "a.wav"
    writer = WavWriter(path, 16000)
    writer.write(np.full(1600, 0.5, np.float32))
    info = sf.info(path)  # while still open: the header already counts the samples
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 1600)
    writer.close()


def test_repair_wav_fixes_torn_sizes_and_trailing_half_sample(tmp_path: Path) -> None:
    path = tmp_path / "torn.wav"
    writer = WavWriter(path, 16000)
    writer.write(np.linspace(-0.5, 0.5, 8000, dtype=np.float32))
    writer.close()
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 36)
    data[40:44] = struct.pack("<I", 0)  # as if the process died before the header update
    path.write_bytes(bytes(data) + b"\x01")  # and half a sample frame
    assert repair_wav(path)
    assert sf.info(path).frames == 8000
    assert not repair_wav(path)


def test_repair_wav_leaves_other_files_alone(tmp_path: Path) -> None:
    path = tmp_path / "not.wav"
    path.write_bytes(b"hello world, not a wav file")
    assert not repair_wav(path)


@pytest.mark.parametrize(
    ("code", "status"),
    [(None, "unknown"), (0, "not_determined"), (1, "restricted"), (2, "denied"), (3, "granted")],
)
def test_permission_macos(code: int | None, status: str) -> None:
    result = check_permission(PermissionProbe(platform="darwin", macos_status=lambda: code))
    assert result.status == status and result.settings_url == MACOS_SETTINGS_URL
    assert (result.guidance is None) == (status == "granted")


@pytest.mark.parametrize(
    ("nodes", "server", "status"),
    [
        ([("/dev/snd/pcmC0D0c", True)], False, "granted"),
        ([("/dev/snd/pcmC0D0c", False)], True, "granted"),
        ([("/dev/snd/pcmC0D0c", False)], False, "denied"),
        ([], False, "unknown"),
    ],
)
def test_permission_linux(nodes: list[tuple[str, bool]], server: bool, status: str) -> None:
    probe = PermissionProbe(
        platform="linux",
        linux_capture_nodes=lambda: nodes,
        linux_in_audio_group=lambda: False,
        linux_sound_server=lambda: server,
    )
    result = check_permission(probe)
    assert result.status == status
    assert "in the audio group: no" in result.details
    if status != "granted":
        assert "audio" in (result.guidance or "")


@pytest.mark.parametrize(("value", "status"), [("Allow", "granted"), ("Deny", "denied"), (None, "unknown")])
def test_permission_windows(value: str | None, status: str) -> None:
    result = check_permission(PermissionProbe(platform="win32", windows_consent=lambda: value))
    assert result.status == status and result.settings_url == "ms-settings:privacy-microphone"


def test_permission_on_this_machine_with_the_virtual_mic(virtual_mic: VirtualMic) -> None:
    assert check_permission().status == "granted"  # the sound server is reachable


def test_open_refused_by_the_system_becomes_permission_denied() -> None:
    error = permissions.permission_error(OSError("Access denied by the system"), "mic", platform="darwin")
    assert isinstance(error, PermissionDenied)
    assert error.data["settings_url"] == MACOS_SETTINGS_URL and "Privacy & Security" in error.message
    assert permissions.permission_error(ValueError("Invalid sample rate"), "mic") is None
