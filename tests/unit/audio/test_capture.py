"""InputCapture, devices, WAV writing/repair and permissions, in-process, on the real virtual microphone."""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrpro_rpc.audio import permissions
from asrpro_rpc.audio.capture import InputCapture, Resampler
from asrpro_rpc.audio.inputs import list_input_devices, resolve_device
from asrpro_rpc.audio.permissions import MACOS_SETTINGS_URL, PermissionProbe, check_permission
from asrpro_rpc.audio.wavfile import WavWriter, repair_wav
from asrpro_rpc.errors import DeviceUnavailable, PermissionDenied
from tests.support.signals import at_48k, best_correlation, left_only
from tests.support.virtual_mic import VirtualMic, drop_client_streams, stereo_sink


def capture_while_playing(
    mic: VirtualMic, wav: Path, sample_rate_hz: int = 16000, **kwargs: object
) -> tuple[np.ndarray, InputCapture]:
    chunks: list[np.ndarray] = []
    capture = InputCapture(None, sample_rate_hz, chunks.append, **kwargs)  # type: ignore[arg-type]
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
        delivering = threading.Event()
        capture = InputCapture("pulse:second.monitor", 16000, lambda c: (chunks.append(c), delivering.set()))
        capture.start()
        assert delivering.wait(15), "no audio from the new sink's monitor"  # a fresh null sink wakes slowly
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


def _capture_once_awake(
    mic: VirtualMic, device: str, wav: Path, rate: int, channels: int
) -> tuple[np.ndarray, InputCapture]:
    """Capture ``device`` while ``wav`` plays into ``stereo48``, starting once audio flows."""
    chunks: list[np.ndarray] = []
    first = threading.Event()

    def on_audio(chunk: np.ndarray) -> None:
        chunks.append(chunk)
        first.set()

    capture = InputCapture(device, rate, on_audio, channels=channels, device_channels=2)
    capture.start()
    assert first.wait(10)  # the fresh sink is awake
    mic.play(wav, sink="stereo48").wait()
    capture.stop()
    return np.concatenate(chunks), capture


def test_capture_in_stereo_at_the_devices_rate(
    virtual_mic: VirtualMic, speech_wav: Path, tmp_path: Path
) -> None:
    """Two channels at 48 kHz, kept apart; a mono delivery of the same device mixes them down."""
    reference, _ = sf.read(speech_wav, dtype="float32")
    left = left_only(speech_wav, tmp_path)
    with stereo_sink(virtual_mic) as device:
        stereo, capture = _capture_once_awake(virtual_mic, device, left, 48000, 2)
        assert (capture.device_sample_rate_hz, capture.device_channels) == (48000, 2)
        assert stereo.shape[1] == 2 and best_correlation(stereo[:, 0], at_48k(reference)) > 0.9
        assert np.abs(stereo[:, 1]).max() < 1e-3
        mono, capture = _capture_once_awake(virtual_mic, device, left, 16000, 1)
        assert (capture.device_sample_rate_hz, capture.device_channels) == (16000, 2)
        assert mono.ndim == 1 and best_correlation(mono, reference) > 0.9


def _tone_through(quality: str, frequency_hz: float) -> float:
    """The level (dB) of a 48 kHz tone after resampling to 16 kHz in 20 ms blocks."""
    t = np.arange(48000) / 48000
    tone = (0.5 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
    resample = Resampler(48000, 16000, quality=quality)  # type: ignore[arg-type]
    out = np.concatenate([*(resample(tone[i : i + 960]) for i in range(0, len(tone), 960)), resample(None)])
    assert abs(len(out) - 16000) <= 1
    steady = out[1000:-1000]
    return float(20 * np.log10(np.sqrt(np.mean(steady**2)) / (0.5 / np.sqrt(2))))


def test_resampler_quality_sets_how_much_aliasing_gets_through() -> None:
    """audio.quality picks the filter: 8.6 kHz can't exist at 16 kHz and must not fold back into it."""
    aliased = {quality: _tone_through(quality, 8600) for quality in ("low", "medium", "high")}
    assert aliased["high"] < aliased["medium"] < aliased["low"]
    assert aliased["high"] < -80
    assert abs(_tone_through("high", 1000)) < 0.1  # speech frequencies pass unchanged


def test_resampler_keeps_stereo_channels_apart() -> None:
    t = np.arange(4800) / 48000
    left = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    resample = Resampler(48000, 16000, channels=2)
    out = np.concatenate([resample(np.stack([left, np.zeros_like(left)], axis=1)), resample(None)])
    assert out.shape[1] == 2 and np.abs(out[:, 1]).max() < 1e-4 and np.abs(out[:, 0]).max() > 0.9


@pytest.mark.parametrize(
    ("channels", "sample_format", "subtype"),
    [(2, "pcm16", "PCM_16"), (2, "float32", "FLOAT"), (1, "float32", "FLOAT")],
)
def test_wav_writer_stereo_and_float_files_repair_too(
    tmp_path: Path, channels: int, sample_format: str, subtype: str
) -> None:
    path = tmp_path / "f.wav"
    writer = WavWriter(path, 48000, channels=channels, sample_format=sample_format)  # type: ignore[arg-type]
    samples = np.random.default_rng(1).uniform(-0.9, 0.9, (4800, channels)).astype(np.float32)
    writer.write(samples if channels == 2 else samples[:, 0])
    info = sf.info(path)  # valid while still open
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (48000, channels, subtype, 4800)
    writer.write(samples if channels == 2 else samples[:, 0])
    writer.close()
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 0)  # a torn header: the sizes never updated
    path.write_bytes(bytes(data) + b"\x01\x02\x03")
    assert repair_wav(path)
    recorded, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == 48000 and recorded.shape == (9600, channels)
    tolerance = 0 if sample_format == "float32" else 2 / 32767  # PCM16: one step, and the scale
    assert np.abs(recorded[:4800] - samples[:, :channels]).max() <= tolerance
