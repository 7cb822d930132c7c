"""Settings faults through the real process: a hostile settings file, a read-only or full settings dir,
oversized values."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.mounts import fill, inside, namespaced, needs_mounts
from tests.support.sidecar import Sidecar
from tests.support.waiting import wait_until

DEEP = b"[" * 5000 + b"]" * 5000
TOKEN = "secret-token-1"


def _notification(sidecar: Sidecar, kind: str) -> dict:
    """The first ``notification`` of ``kind``, already received or still to come."""

    def matches(message: dict) -> bool:
        return message["method"] == "notification" and message["params"].get("kind") == kind

    seen = [n for n in sidecar.notifications if matches(n)]
    return (seen[0] if seen else sidecar.wait_for_notification(matches))["params"]


def test_deeply_nested_settings_file_is_set_aside_at_start(
    start_sidecar: Callable[..., Sidecar], tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.json").write_bytes(b'{"schema_version": 1, "ui": {"theme": ' + DEEP + b"}}")
    sidecar = start_sidecar("--allow-multiple")
    warning = _notification(sidecar, "config_corrupt")
    assert "nested too deeply" in warning["message"]
    assert sidecar.call("config.get")["ui"]["theme"] == "system"
    assert list(config.glob("config.json.corrupt-*"))
    assert json.loads((config / "config.json").read_text())["schema_version"] == 1  # defaults, rewritten


def test_deeply_nested_edit_while_running_is_rejected_and_the_sidecar_lives(
    start_sidecar: Callable[..., Sidecar], tmp_path: Path
) -> None:
    sidecar = start_sidecar("--allow-multiple")
    sidecar.call("config.set", {"values": {"ui": {"theme": "dark"}}})
    slow = sidecar.request("ping", {"delay_s": 0.5})
    temp = tmp_path / "config" / "edit.tmp"
    temp.write_bytes(b'{"schema_version": 1, "ui": ' + DEEP + b"}")
    os.replace(temp, tmp_path / "config" / "config.json")
    warning = _notification(sidecar, "config_rejected")
    assert "nested too deeply" in warning["message"]
    assert sidecar.response(slow)["result"]["pong"] is True
    assert sidecar.call("config.get")["ui"]["theme"] == "dark"  # the settings in force stay


def test_oversized_setting_values_are_refused_naming_the_field(start_sidecar: Callable[..., Sidecar]) -> None:
    sidecar = start_sidecar("--allow-multiple")
    error = sidecar.error("config.set", {"values": {"audio": {"input_device": "x" * (20 << 20)}}})
    assert error["data"]["kind"] == "invalid_config" and error["data"]["path"] == "audio.input_device"
    assert len(error["message"]) < 1000
    assert sidecar.call("config.get")["audio"]["input_device"] is None


@needs_mounts
def test_read_only_settings_dir_serves_the_file_s_token_from_the_first_request(tmp_path: Path) -> None:
    """``serve --http`` with a read-only settings dir: the token in the file guards the very first
    request, the dir is reported (notification, health) and config.set answers permission_denied."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"schema_version": 1, "server": {"api_token": TOKEN}}))
    (tmp_path / "tmp").mkdir()
    env = {"ASRPRO_CONFIG_DIR": str(config), "TMPDIR": str(tmp_path / "tmp")}
    sidecar = Sidecar(
        env=env, argv=namespaced("--allow-multiple", "--http", "127.0.0.1:0", read_only=[config])
    )
    try:
        assert sidecar.call("config.get")["server"]["api_token"] is not None  # the very first request
        url = wait_until(lambda: sidecar.call("http.status")["url"])
        assert sidecar.call("http.status")["token_required"] is True
        assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 401
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert "could not be saved" in _notification(sidecar, "config_unavailable")["message"]
        health = sidecar.call("system.health")
        assert health["status"] == "degraded" and any(
            "Settings can't be saved" in w for w in health["warnings"]
        )
        error = sidecar.error("config.set", {"values": {"ui": {"theme": "dark"}}})
        assert error["code"] == -32008 and error["data"]["kind"] == "permission_denied"
        assert "read-only" in error["message"]
        assert sidecar.call("config.get")["server"]["api_token"] is not None  # the last good settings
    finally:
        sidecar.kill()


@needs_mounts
def test_full_settings_disk_answers_disk_full_and_keeps_the_settings(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    env = {"ASRPRO_CONFIG_DIR": str(config)}
    sidecar = Sidecar(env=env, argv=namespaced("--allow-multiple", tmpfs=[(config, 64 << 10)]))
    try:
        sidecar.call("config.set", {"values": {"ui": {"theme": "light"}}})
        assert fill(inside(sidecar.process.pid, config)) > 0
        error = sidecar.error("config.set", {"values": {"ui": {"theme": "dark"}}})
        assert error["code"] == -32017, error
        assert error["data"]["kind"] == "disk_full" and error["data"]["resource"] == "disk"
        assert sidecar.call("config.get")["ui"]["theme"] == "light"
        assert any("Settings can't be saved" in w for w in sidecar.call("system.health")["warnings"])
        (inside(sidecar.process.pid, config) / "filler").unlink()
        sidecar.call("config.set", {"values": {"ui": {"theme": "dark"}}})
        assert sidecar.call("system.health")["warnings"] == []
    finally:
        sidecar.kill()


@pytest.mark.parametrize("value", [1e308, -1e30, [0.2, 5.0]])
def test_temperature_out_of_range_is_refused(start_sidecar: Callable[..., Sidecar], value: object) -> None:
    error = start_sidecar("--allow-multiple").error(
        "transcribe.file", {"path": "/x.wav", "temperature": value}
    )
    assert error["code"] == -32602 and "temperature" in error["data"]["path"]
