"""audio.* methods end to end: the real sidecar recording the real virtual microphone."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.mounts import inside, namespaced, needs_mounts
from tests.support.sidecar import Sidecar
from tests.support.signals import at_48k, best_correlation, left_only
from tests.support.virtual_mic import VirtualMic, drop_client_streams, source_output_specs, stereo_sink


def _sidecar(mic: VirtualMic, tmp_path: Path, argv: list[str] | None = None) -> Sidecar:
    return Sidecar(
        env={
            **mic.env,
            "ASRPRO_RECORDINGS_DIR": str(tmp_path / "recordings"),
            "ASRPRO_CONFIG_DIR": str(tmp_path / "config"),
        },
        argv=argv,
    )


@pytest.fixture
def sidecar(virtual_mic: VirtualMic, tmp_path: Path) -> Iterator[Sidecar]:
    process = _sidecar(virtual_mic, tmp_path)
    yield process
    process.kill()


def _wait_for(predicate, timeout_s: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _level_arrives(sidecar: Sidecar, recording_id: str, after: int = 0) -> int:
    """Wait (deadline: fail) for an ``audio.level`` of ``recording_id`` among the notifications past the
    first ``after``: the device is delivering audio. Returns how many notifications there are then."""

    def arrived() -> bool:
        levels = [n for n in _notifications_since(sidecar, after) if n.get("method") == "audio.level"]
        return any(n["params"]["recording_id"] == recording_id for n in levels)

    assert _wait_for(arrived), f"no audio.level from {recording_id}"
    return len(sidecar.notifications)


def _notifications_since(sidecar: Sidecar, after: int) -> list[dict]:
    sidecar.call("ping")  # collects the notifications sent before its reply
    return sidecar.notifications[after:]


def _notifications(sidecar: Sidecar, method: str) -> list[dict]:
    sidecar.call("ping")  # collects the notifications sent before its reply
    return [n["params"] for n in sidecar.notifications if n.get("method") == method]


def test_records_speech_to_16k_mono_pcm16_wav(
    sidecar: Sidecar, virtual_mic: VirtualMic, speech_wav: Path, tmp_path: Path
) -> None:
    path = tmp_path / "new" / "dir" / "speech.wav"
    started = sidecar.call("audio.record.start", {"path": str(path)})
    assert started["device"] == f"pulse:{virtual_mic.source}" and started["sample_rate_hz"] == 16000
    virtual_mic.play(speech_wav).wait()
    result = sidecar.call("audio.record.stop", {"recording_id": started["recording_id"]})
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert result["ended"] == "stopped" and result["overflow_count"] == 0
    assert result["duration_s"] == pytest.approx(info.frames / 16000, abs=1e-3)
    assert result["rms_dbfs"] > -40 and 0 < result["peak"] <= 1
    recorded, _ = sf.read(path, dtype="float32")
    reference, _ = sf.read(speech_wav, dtype="float32")
    assert best_correlation(recorded, reference) > 0.95
    levels = _notifications(sidecar, "audio.level")
    assert levels and all(lv["recording_id"] == started["recording_id"] for lv in levels)
    assert max(lv["peak"] for lv in levels) > 0.1


def test_auto_named_file_and_max_duration(sidecar: Sidecar, tmp_path: Path) -> None:
    started = sidecar.call("audio.record.start", {"max_duration_s": 0.5, "levels": False})
    assert Path(started["path"]).parent == tmp_path / "recordings"
    assert _wait_for(
        lambda: any(n["kind"] == "recording_max_duration" for n in _notifications(sidecar, "notification"))
    )
    result = sidecar.call("audio.record.stop", {"recording_id": started["recording_id"]})
    assert result["ended"] == "max_duration" and result["duration_s"] == 0.5
    assert sf.info(started["path"]).frames == 8000
    assert not _notifications(sidecar, "audio.level")


def test_errors_unknown_device_bad_rate_stop_without_start(sidecar: Sidecar) -> None:
    error = sidecar.error("audio.record.start", {"device": "no such mic"})
    assert error["data"]["kind"] == "device_unavailable" and "ALSA:pulse" in error["data"]["available"]
    assert sidecar.error("audio.record.start", {"sample_rate_hz": 10})["data"]["kind"] == "invalid_params"
    error = sidecar.error("audio.record.start", {"device": "ALSA:pulse", "sample_rate_hz": 1_000_000})
    assert error["data"]["kind"] == "invalid_params"
    assert sidecar.error("audio.record.stop", {"recording_id": "rec_nope"})["data"]["kind"] == "not_found"
    assert sidecar.error("audio.record.start", {"bogus": 1})["data"]["kind"] == "invalid_params"


def test_two_recordings_at_once_are_supported(
    sidecar: Sidecar, virtual_mic: VirtualMic, speech_wav: Path, tmp_path: Path
) -> None:
    first = sidecar.call("audio.record.start", {"path": str(tmp_path / "a.wav")})
    second = sidecar.call("audio.record.start", {"path": str(tmp_path / "b.wav"), "device": "ALSA:pulse"})
    virtual_mic.play(speech_wav).wait()
    results = [
        sidecar.call("audio.record.stop", {"recording_id": r["recording_id"]}) for r in (first, second)
    ]
    assert all(r["rms_dbfs"] > -40 for r in results)


def test_removed_source_ends_the_recording_and_keeps_the_audio(
    sidecar: Sidecar, virtual_mic: VirtualMic, speech_wav: Path, tmp_path: Path
) -> None:
    module = virtual_mic.pactl(
        "load-module", "module-null-sink", "sink_name=vanishing", "rate=16000", "channels=1"
    )
    path = tmp_path / "lost.wav"
    started = sidecar.call("audio.record.start", {"path": str(path), "device": "pulse:vanishing.monitor"})
    _level_arrives(sidecar, started["recording_id"])  # a fresh null sink wakes up slowly
    virtual_mic.play(speech_wav, sink="vanishing").wait()
    virtual_mic.pactl("unload-module", module.strip())
    assert _wait_for(
        lambda: any(n["kind"] == "recording_device_lost" for n in _notifications(sidecar, "notification"))
    )
    lost = next(n for n in _notifications(sidecar, "notification") if n["kind"] == "recording_device_lost")
    assert lost["level"] == "error" and str(path) in lost["message"]
    result = sidecar.call("audio.record.stop", {"recording_id": started["recording_id"]})
    assert result["ended"] == "device_lost" and result["rms_dbfs"] > -40
    assert sf.info(path).frames / 16000 >= 3.0  # the speech is all there


def test_dropped_stream_falls_back_to_the_default_device(
    sidecar: Sidecar, virtual_mic: VirtualMic, tmp_path: Path
) -> None:
    started = sidecar.call(
        "audio.record.start",
        {"path": str(tmp_path / "fallback.wav"), "fallback_to_default": True},
    )
    seen = _level_arrives(sidecar, started["recording_id"])  # the stream is live before it is dropped
    drop_client_streams(virtual_mic)
    assert _wait_for(
        lambda: any(n["kind"] == "recording_device_switched" for n in _notifications(sidecar, "notification"))
    )
    switched = next(
        i
        for i, n in enumerate(sidecar.notifications)
        if i >= seen and n["method"] == "notification" and n["params"]["kind"] == "recording_device_switched"
    )
    _level_arrives(sidecar, started["recording_id"], after=switched + 1)  # audio from the default device
    result = sidecar.call("audio.record.stop", {"recording_id": started["recording_id"]})
    assert result["ended"] == "stopped" and result["duration_s"] > 0
    virtual_mic.restore()


def test_kill_9_mid_recording_then_the_next_start_repairs_the_wav(
    virtual_mic: VirtualMic, speech_wav: Path, tmp_path: Path
) -> None:
    first = _sidecar(virtual_mic, tmp_path)
    path = tmp_path / "crash.wav"
    first.call("audio.record.start", {"path": str(path), "levels": False})
    virtual_mic.play(speech_wav).wait()
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()
    journal = list((tmp_path / "recordings" / ".in-progress").glob("rec_*.json"))
    assert len(journal) == 1
    with path.open("r+b") as file:  # the worst case: the header update never happened
        file.seek(40)
        file.write(b"\0\0\0\0")
    second = _sidecar(virtual_mic, tmp_path)
    try:
        assert second.call("ping") is not None
        assert not journal[0].exists()
        recorded, rate = sf.read(path, dtype="float32")
        assert rate == 16000 and len(recorded) / rate >= 3.0
        reference, _ = sf.read(speech_wav, dtype="float32")
        assert best_correlation(recorded, reference) > 0.95
    finally:
        second.kill()


def test_devices_method_and_hot_swap_notification(sidecar: Sidecar, virtual_mic: VirtualMic) -> None:
    ids = [d["id"] for d in sidecar.call("audio.devices")["devices"]]
    assert f"pulse:{virtual_mic.source}" in ids
    module = virtual_mic.pactl(
        "load-module", "module-null-sink", "sink_name=plugged", "rate=16000", "channels=1"
    )
    try:
        assert _wait_for(
            lambda: any(
                "pulse:plugged.monitor" in n["added"]
                for n in _notifications(sidecar, "audio.devices_changed")
            )
        )
    finally:
        virtual_mic.pactl("unload-module", module.strip())
    assert _wait_for(
        lambda: any(
            "pulse:plugged.monitor" in n["removed"] for n in _notifications(sidecar, "audio.devices_changed")
        )
    )


def test_permission_method(sidecar: Sidecar) -> None:
    result = sidecar.call("audio.permission")
    assert result["status"] == "granted" and result["platform"] == "linux"


@pytest.mark.slow
def test_no_leaked_threads_or_streams_after_100_cycles(virtual_mic: VirtualMic, tmp_path: Path) -> None:
    from asrpro_rpc.services.audio import AudioService, RecordStartParams

    service = AudioService(lambda *_: None, recordings_root=tmp_path)
    path = str(tmp_path / "cycle.wav")
    service.stop_recording(service.start_recording(RecordStartParams(path=path)).recording_id)  # warm up
    threads_before, fds_before = threading.active_count(), len(os.listdir("/proc/self/fd"))
    for _ in range(100):
        service.stop_recording(service.start_recording(RecordStartParams(path=path)).recording_id)
    service.close()
    assert threading.active_count() <= threads_before
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 2
    assert "protocol-native.c" not in virtual_mic.pactl("list", "short", "source-outputs")


def test_audio_settings_drive_the_next_recording_and_request_params_win(
    virtual_mic: VirtualMic, speech_wav: Path, tmp_path: Path
) -> None:
    """The settings file selects a stereo sink's monitor at 48 kHz float32; params override each one."""
    config = tmp_path / "config"
    config.mkdir()
    with stereo_sink(virtual_mic) as monitor:
        audio = {"input_device": monitor, "sample_rate_hz": 48000, "channels": 2, "format": "float32"}
        (config / "config.json").write_text(json.dumps({"schema_version": 1, "audio": audio}))
        sidecar = _sidecar(virtual_mic, tmp_path)
        try:
            path = tmp_path / "settings.wav"
            started = sidecar.call("audio.record.start", {"path": str(path)})
            assert _format(started) == (monitor, 48000, 2, "float32")
            assert "float32le 2ch 48000Hz" in source_output_specs(virtual_mic)  # the device runs so
            assert _wait_for(lambda: _notifications(sidecar, "audio.level"))  # the fresh sink is awake
            virtual_mic.play(left_only(speech_wav, tmp_path), sink="stereo48").wait()
            result = sidecar.call("audio.record.stop", {"recording_id": started["recording_id"]})
            info = sf.info(path)
            assert (info.samplerate, info.channels, info.subtype) == (48000, 2, "FLOAT")
            assert _format(result) == (monitor, 48000, 2, "float32")
            recorded, _ = sf.read(path, dtype="float32")
            reference, _ = sf.read(speech_wav, dtype="float32")
            assert best_correlation(recorded[:, 0], at_48k(reference)) > 0.9
            assert np.abs(recorded[:, 1]).max() < 1e-3  # the right channel stayed silent

            # a change applies to the next recording; what a request passes wins over the settings
            sidecar.call("config.set", {"values": {"audio": {"sample_rate_hz": 22050}}})
            params = {"device": f"pulse:{virtual_mic.source}", "levels": False}
            started = sidecar.call(
                "audio.record.start",
                {**params, "path": str(tmp_path / "a.wav"), "channels": 1, "format": "pcm16"},
            )
            assert _format(started) == (f"pulse:{virtual_mic.source}", 22050, 1, "pcm16")
            sidecar.call("audio.record.stop", {"recording_id": started["recording_id"]})
            info = sf.info(tmp_path / "a.wav")
            assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
            started = sidecar.call(
                "audio.record.start", {**params, "path": str(tmp_path / "b.wav"), "sample_rate_hz": 16000}
            )
            assert _format(started)[1:] == (16000, 2, "float32")
            sidecar.call("audio.record.stop", {"recording_id": started["recording_id"]})
        finally:
            sidecar.kill()


def _format(result: dict) -> tuple[str, int, int, str]:
    return result["device"], result["sample_rate_hz"], result["channels"], result["format"]


def test_a_missing_input_device_setting_says_where_it_came_from(
    virtual_mic: VirtualMic, tmp_path: Path
) -> None:
    sidecar = _sidecar(virtual_mic, tmp_path)
    try:
        sidecar.call("config.set", {"values": {"audio": {"input_device": "Unplugged USB mic"}}})
        error = sidecar.error("audio.record.start", {"levels": False})
        assert error["data"]["kind"] == "device_unavailable"
        assert error["data"]["setting"] == "audio.input_device" and "audio.input_device" in error["message"]
        assert f"pulse:{virtual_mic.source}" in error["data"]["available"]
        started = sidecar.call(
            "audio.record.start", {"device": f"pulse:{virtual_mic.source}", "levels": False}
        )
        sidecar.call("audio.record.stop", {"recording_id": started["recording_id"]})
    finally:
        sidecar.kill()


@needs_mounts
def test_a_recording_that_fills_the_disk_stops_cleanly_with_a_valid_wav(
    virtual_mic: VirtualMic, tmp_path: Path
) -> None:
    """On a 64 KiB tmpfs (2 s of 16 kHz pcm16) the recording ends on its own with a notification; stop
    returns what fits, a valid WAV; starting another on the full disk answers disk_full, on a read-only
    dir permission_denied."""
    full, read_only = tmp_path / "full", tmp_path / "read-only"
    full.mkdir()
    read_only.mkdir()
    sidecar = _sidecar(
        virtual_mic, tmp_path, argv=namespaced(tmpfs=[(full, 64 << 10)], read_only=[read_only])
    )
    try:
        params = {"sample_rate_hz": 16000, "channels": 1, "format": "pcm16", "levels": False}
        started = sidecar.call("audio.record.start", {"path": str(full / "rec.wav"), **params})
        ended = sidecar.wait_for_notification(
            lambda n: n["method"] == "notification" and n["params"]["kind"] == "recording_disk_full"
        )["params"]
        assert ended["level"] == "error" and str(full / "rec.wav") in ended["message"]
        result = sidecar.call("audio.record.stop", {"recording_id": started["recording_id"]})
        assert result["ended"] == "disk_full" and 1.0 < result["duration_s"] <= 2.1
        recorded, rate = sf.read(inside(sidecar.process.pid, full / "rec.wav"), dtype="int16")
        assert rate == 16000 and abs(len(recorded) - result["duration_s"] * 16000) <= 8
        error = sidecar.error("audio.record.start", {"path": str(full / "more.wav"), **params})
        assert error["code"] == -32017 and error["data"]["resource"] == "disk", error
        error = sidecar.error("audio.record.start", {"path": str(read_only / "rec.wav"), **params})
        assert error["code"] == -32008 and "read-only" in error["message"], error
        assert not list((tmp_path / "recordings" / ".in-progress").glob("rec_*.json"))
    finally:
        sidecar.kill()
