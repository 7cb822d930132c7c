"""System services: health, resources, low-memory warnings, single instance, signals, parent death, leaks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from asrpro_rpc.catalog.specs import find_spec
from asrpro_rpc.events import NotificationMessage
from asrpro_rpc.services.models import EngineStatus
from asrpro_rpc.services.system import MemoryUsage, SystemService
from asrpro_rpc.system.hardware import GpuMemory
from asrpro_rpc.system.instance import InstanceLock, lock_path, read_info
from tests.support.sidecar import Sidecar, sidecar_env

FAST = {"temperature": 0.0, "beam_size": 1, "language": "en", "condition_on_previous_text": False}


def _env(tmp_path: Path) -> dict[str, str]:
    return sidecar_env(tmp_path, ASRPRO_OFFLINE="1")


@pytest.fixture
def sidecar(start_sidecar: Callable[..., Sidecar]) -> Sidecar:
    return start_sidecar("--allow-multiple", env={"ASRPRO_OFFLINE": "1"})


# --- health and resources --------------------------------------------------------------------------
def test_health_and_resources_over_the_wire(sidecar: Sidecar, tmp_path: Path) -> None:
    health = sidecar.call("system.health")
    assert health["status"] in ("ok", "degraded") and health["pid"] == sidecar.process.pid
    assert health["model"]["state"] == "unloaded" and health["uptime_s"] >= 0 and health["last_error"] is None
    resources = sidecar.call("system.resources")
    process = resources["process"]
    assert process["pid"] == sidecar.process.pid and process["rss_bytes"] > 10 << 20
    assert process["threads"] >= 1 and process["open_files"] >= 3 and resources["engine"] is None
    assert 0 < resources["memory"]["available_bytes"] <= resources["memory"]["total_bytes"]
    assert resources["disk"]["free_bytes"] > 0 and str(tmp_path) in resources["disk"]["path"]
    assert isinstance(resources["gpus"], list)


def _service(notes: list[tuple[str, Any]], available_bytes: int, gpus: list[GpuMemory]) -> SystemService:
    return SystemService(
        models_dir=Path("/"),
        engine_status=lambda: EngineStatus(state="unloaded"),
        notify=lambda method, params: notes.append((method, params)),
        gpu_probe=lambda: gpus,
        memory_probe=lambda: MemoryUsage(
            total_bytes=8 << 30, available_bytes=available_bytes, used_percent=50
        ),
    )


def test_low_memory_warns_before_a_load_that_would_not_fit() -> None:
    notes: list[tuple[str, Any]] = []
    large = find_spec("whisper-large-v3")
    _service(notes, available_bytes=16 << 30, gpus=[]).check_before_load(large, "cpu")
    assert notes == []
    _service(notes, available_bytes=1 << 30, gpus=[]).check_before_load(large, "cpu")
    ((method, params),) = notes
    assert method == "notification" and params.kind == "low_memory" and params.level == "warning"
    assert "Whisper Large V3" in params.message and "RAM" in params.message


def test_gpu_loads_are_checked_against_free_gpu_memory() -> None:
    notes: list[tuple[str, Any]] = []
    small_gpu = GpuMemory(
        index=0, name="Tiny GPU", total_bytes=2 << 30, free_bytes=1 << 30, used_bytes=1 << 30
    )
    service = _service(notes, available_bytes=64 << 30, gpus=[small_gpu])
    service.check_before_load(find_spec("whisper-large-v3"), "cuda")
    assert len(notes) == 1 and "GPU Tiny GPU" in notes[0][1].message
    service.check_before_load(find_spec("whisper-large-v3"), "cpu")  # plenty of RAM
    assert len(notes) == 1


def test_low_memory_makes_health_degraded_and_errors_are_remembered() -> None:
    service = _service([], available_bytes=100 << 20, gpus=[])
    health = service.health()
    assert health.status == "degraded" and "Low memory" in health.warnings[0]
    service.observe("notification", NotificationMessage("error", "engine crashed", "engine_crashed"))
    service.observe("notification", NotificationMessage("info", "fine"))
    last = service.health().last_error
    assert last is not None and last.kind == "engine_crashed" and last.message == "engine crashed"


# --- single instance --------------------------------------------------------------------------------
def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asrpro_rpc", "serve", *args],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _lock_info(env: dict[str, str]) -> Any:
    return json.loads(next(Path(env["ASRPRO_RUNTIME_DIR"]).glob("instance-*.lock")).read_text())


def test_second_instance_is_refused_then_replaces_the_first(tmp_path: Path) -> None:
    env = _env(tmp_path)
    first = Sidecar(env=env)
    try:
        first.call("initialize")
        info = _lock_info(env)
        assert info["pid"] == first.process.pid and info["http_port"] is None
        refused = _serve(env)
        assert refused.returncode == 3
        assert f"pid {first.process.pid}" in refused.stderr and "--replace" in refused.stderr
        assert _serve(env, "--allow-multiple").returncode != 3  # serves (stdin is closed: EOF ends it)

        second = Sidecar("--replace", env=env)
        try:
            second.call("initialize")
            assert first.process.wait(30) == 0  # the first shut down gracefully (SIGTERM)
            assert _lock_info(env)["pid"] == second.process.pid
            assert second.shutdown() == 0
            assert list(Path(env["ASRPRO_RUNTIME_DIR"]).iterdir()) == []  # the lock went with it
        finally:
            second.kill()
    finally:
        first.kill()


def test_kill_9_leaves_a_stale_lock_that_the_next_start_takes_over(tmp_path: Path) -> None:
    env = _env(tmp_path)
    crashed = Sidecar(env=env)
    crashed.call("initialize")
    crashed.process.send_signal(signal.SIGKILL)
    crashed.process.wait(10)
    assert _lock_info(env)["pid"] == crashed.process.pid  # left behind
    scratch = list(Path(env["TMPDIR"]).iterdir())
    assert [p.name.startswith(f"asrpro-{crashed.process.pid}-") for p in scratch] == [True]
    successor = Sidecar(env=env)
    try:
        successor.call("initialize")
        assert _lock_info(env)["pid"] == successor.process.pid
        assert not any(p.exists() for p in scratch)  # the crashed run's temp dir was swept
    finally:
        successor.kill()


def test_lock_is_per_settings_dir_and_records_the_http_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASRPRO_RUNTIME_DIR", str(tmp_path / "run"))
    assert lock_path(tmp_path / "a") != lock_path(tmp_path / "b")
    lock = InstanceLock(lock_path(tmp_path / "a"))
    info = lock.acquire()
    assert info.pid == os.getpid()
    lock.update(http_port=8765)
    recorded = read_info(lock.path)
    assert recorded is not None and recorded.http_port == 8765
    lock.release()
    assert not lock.path.exists()
    with InstanceLock(lock_path(tmp_path / "a")) as again:
        assert again.path.exists()


# --- signals and parent death ------------------------------------------------------------------------
def test_sigterm_during_a_transcription_exits_0_without_temp_files(
    tmp_path: Path, tiny_whisper_dir: Path, long_audio_factory: Callable[[float], Path]
) -> None:
    """SIGTERM lands while a five-minute file is mid-way (progress seen, no answer yet): the request gets
    exactly one answer — its transcript if it finished within the signal's 1 s grace, else -32800 — then
    the process exits 0 and leaves no files behind."""
    env = _env(tmp_path)
    sidecar = Sidecar(env=env)
    try:
        sidecar.call("models.register", {"id": "tiny", "path": str(tiny_whisper_dir)})
        params = {"path": str(long_audio_factory(5.0)), "model": "tiny", **FAST, "max_new_tokens": 16}
        request_id = sidecar.request("transcribe.file", params)
        deadline = time.monotonic() + 120
        while True:  # until part of the file is transcribed and the rest is still to do
            message = sidecar.next_message(max(0.0, deadline - time.monotonic()))
            assert message.get("id") != request_id, f"the transcription ended before the signal: {message}"
            params = message.get("params") or {}
            if message.get("method") == "transcription.progress" and params.get("stage") == "transcribing":
                if 0 < params["progress"] < 1:
                    break
        sidecar.process.send_signal(signal.SIGTERM)
        assert sidecar.process.wait(30) == 0
        replies = [m for m in _drain(sidecar) if m.get("id") == request_id]
        assert len(replies) == 1, replies
        assert "result" in replies[0] or replies[0]["error"]["code"] == -32800, replies
        assert list(Path(env["TMPDIR"]).iterdir()) == []
        assert list(Path(env["ASRPRO_RUNTIME_DIR"]).iterdir()) == []
    finally:
        sidecar.kill()


def _drain(sidecar: Sidecar) -> list[dict[str, Any]]:
    """Every message left on an exited sidecar's stdout."""
    messages = []
    while True:
        try:
            messages.append(sidecar.next_message(10))
        except EOFError:
            return messages


PARENT = """
import os, subprocess, sys
child = subprocess.Popen([sys.executable, "-m", "asrpro_rpc", "serve", "--allow-multiple"],
                         stdout=subprocess.DEVNULL, env={**os.environ, "ASRPRO_PARENT_PID": str(os.getpid())})
print(child.pid, flush=True)
"""


def test_the_sidecar_exits_when_its_parent_dies(tmp_path: Path) -> None:
    """The sidecar's stdin stays open (this test holds it), so only the parent watch can end it."""
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, **_env(tmp_path)},
        text=True,
    )
    assert parent.stdout is not None and parent.stdin is not None
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        assert parent.wait(30) == 0
        child.wait(30)  # not our child: psutil cannot tell its exit code (the log says 0)
        assert not child.is_running()
    finally:
        parent.stdin.close()


# --- leaks ---------------------------------------------------------------------------------------------
def _counts(pid: int) -> tuple[int, int]:
    process = psutil.Process(pid)
    return process.num_fds(), process.num_threads()


MIX: list[tuple[str, Any]] = [
    ("ping", None),
    ("system.health", None),
    ("models.list", None),
    ("system.resources", None),
    ("transcribe.file", {"path": "/nonexistent/audio.wav"}),
    ("no.such.method", None),
    ("models.get", {"model": "whisper-bsae"}),
    ("models.download", {"model": "whisper-small"}),
]


def _round(sidecar: Sidecar, count: int) -> None:
    for batch_start in range(0, count, 50):
        size = min(50, count - batch_start)
        pending = {sidecar.request(*MIX[(batch_start + i) % len(MIX)]) for i in range(size)}
        while pending:  # replies come in any order
            message = sidecar.next_message()
            assert isinstance(message, dict)
            pending.discard(message.get("id"))


def test_no_fd_thread_or_temp_file_leaks_after_a_thousand_requests(sidecar: Sidecar, tmp_path: Path) -> None:
    _round(sidecar, 200)  # warm up: thread pools, imports, caches
    fds_before, threads_before = _counts(sidecar.process.pid)
    _round(sidecar, 1000)
    fds_after, threads_after = _counts(sidecar.process.pid)
    assert fds_after <= fds_before + 1, (fds_before, fds_after)
    assert threads_after <= threads_before + 2, (threads_before, threads_after)
    (scratch,) = Path(tmp_path / "tmp").iterdir()
    assert list(scratch.iterdir()) == []
    assert sidecar.shutdown() == 0
    assert list(Path(tmp_path / "tmp").iterdir()) == []
