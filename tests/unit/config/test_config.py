"""The configuration service: persistence, validation, migration, recovery, locking, hot reload, methods."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import msgspec
import platformdirs
import platformdirs.macos
import platformdirs.unix
import platformdirs.windows
import pytest

from asrpro_rpc import errors
from asrpro_rpc.config import file as config_store
from asrpro_rpc.config.service import ConfigService, announce_changes
from asrpro_rpc.config.settings import SCHEMA_VERSION, Settings, migrate
from asrpro_rpc.events import NotificationMessage
from asrpro_rpc.methods import config as config_methods
from asrpro_rpc.protocol.session import Session
from asrpro_rpc.system import paths
from tests.support.sidecar import Sidecar

NON_DEFAULTS: dict[str, dict[str, Any]] = {
    "device": {
        "preferred": "cuda",
        "cuda_index": 1,
        "compute_type": "float16",
        "cpu_threads": 4,
        "max_concurrent_transcriptions": 3,
    },
    "server": {
        "http_enabled": True,
        "host": "0.0.0.0",
        "port": 9000,
        "auto_start": True,
        "api_token": "s3cret",
        "max_upload_mb": 100,
        "header_timeout_s": 5.0,
        "body_timeout_s": 60.0,
        "max_connections_per_client": 16,
    },
    "ui": {"theme": "dark", "opacity": 0.75, "animations": False},
    "audio": {
        "sample_rate_hz": 48000,
        "channels": 2,
        "format": "float32",
        "quality": "low",
        "input_device": "USB Microphone",
    },
    "model": {
        "selected_id": "parakeet-tdt-0.6b",
        "auto_unload": False,
        "auto_unload_timeout_s": 60.0,
        "prefer_gpu": False,
        "max_audio_duration_s": 3600.0,
        "cache_directory": "/data/models",
        "aliases": {"whisper-1": "selected", "gpt-4o-transcribe": "whisper-large-v3-turbo"},
    },
    "hotkey": {"combination": "Alt+Space", "overlay": False, "auto_paste": False},
}


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document))


class Recorder:
    """Collects subscriber calls (changes and warnings)."""

    def __init__(self, service: ConfigService) -> None:
        self.changes: list[list[str]] = []
        self.warnings: list[NotificationMessage] = []
        service.subscribe(lambda keys, settings: self.changes.append(keys))
        service.subscribe_warnings(self.warnings.append)


# --- persistence and validation -------------------------------------------------------------------
def test_first_open_writes_defaults(tmp_path: Path) -> None:
    service = ConfigService.open(tmp_path / "cfg")
    assert service.path == tmp_path / "cfg" / "config.json"
    assert service.settings == Settings()
    assert service.warnings == []
    document = read_json(service.path)
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["model"]["selected_id"] == "whisper-base"
    assert document["model"]["auto_unload"] is True
    assert document["model"]["auto_unload_timeout_s"] == 300
    assert document["device"]["max_concurrent_transcriptions"] == 2
    assert document["server"]["host"] == "127.0.0.1"
    assert document["audio"]["sample_rate_hz"] == 16000


@pytest.mark.parametrize("category", list(NON_DEFAULTS))
def test_round_trip_every_category(tmp_path: Path, category: str) -> None:
    service = ConfigService.open(tmp_path)
    recorder = Recorder(service)
    settings = service.set({category: NON_DEFAULTS[category]})
    assert msgspec.to_builtins(getattr(settings, category)) == NON_DEFAULTS[category]
    assert recorder.changes == [[f"{category}.{key}" for key in NON_DEFAULTS[category]]]
    assert read_json(service.path)[category] == NON_DEFAULTS[category]
    reopened = ConfigService.open(tmp_path)
    assert reopened.settings == settings
    assert reopened.warnings == []
    assert service.reset(category) == Settings()
    assert ConfigService.open(tmp_path).settings == Settings()


def test_set_is_partial_and_reset_all(tmp_path: Path) -> None:
    service = ConfigService.open(tmp_path)
    service.set({"ui": {"opacity": 0.5}})
    settings = service.set({"ui": {"theme": "light"}, "model": {"auto_unload_timeout_s": 10}})
    assert (settings.ui.opacity, settings.ui.theme, settings.model.auto_unload_timeout_s) == (
        0.5,
        "light",
        10.0,
    )
    recorder = Recorder(service)
    assert service.set({"ui": {"theme": "light"}}) == settings
    assert recorder.changes == []  # nothing changed, nothing announced
    assert service.reset() == Settings()
    assert recorder.changes == [["ui.theme", "ui.opacity", "model.auto_unload_timeout_s"]]


def test_invalid_update_names_every_path_and_changes_nothing(tmp_path: Path) -> None:
    service = ConfigService.open(tmp_path)
    before = service.path.read_bytes()
    with pytest.raises(errors.InvalidConfig) as caught:
        service.set(
            {
                "ui": {"opacity": 0.5},
                "audio": {"sample_rate_hz": 12345},
                "server": {"port": 70000, "colour": "red"},
                "model": {"auto_unload": "yes"},
                "sound": {},
            }
        )
    problems = {e["path"]: e["message"] for e in caught.value.data["errors"]}
    assert problems["audio.sample_rate_hz"] == (
        "must be one of 8000, 16000, 22050, 24000, 32000, 44100, 48000 (got 12345)"
    )
    assert problems["server.port"] == "must be an integer between 1 and 65535 (got 70000)"
    assert problems["server.colour"].startswith("unknown setting (known: http_enabled, host, port")
    assert problems["model.auto_unload"] == 'must be true or false (got "yes")'
    assert problems["sound"].startswith("unknown settings category")
    assert "ui.opacity" not in problems
    assert "audio.sample_rate_hz: must be one of" in caught.value.message
    assert service.settings == Settings()
    assert service.path.read_bytes() == before
    with pytest.raises(errors.InvalidConfig, match="Unknown settings category 'sound'"):
        service.reset("sound")


def test_unknown_keys_from_a_newer_version_are_kept(tmp_path: Path) -> None:
    write_json(
        tmp_path / "config.json",
        {
            "schema_version": SCHEMA_VERSION + 1,
            "audio": {"sample_rate_hz": 44100, "noise_gate_db": -40},
            "telemetry": {"enabled": False},
        },
    )
    service = ConfigService.open(tmp_path)
    assert service.settings.audio.sample_rate_hz == 44100
    assert service.warnings == []
    service.set({"audio": {"channels": 2}})
    service.reset("audio")
    document = read_json(service.path)
    assert document["schema_version"] == SCHEMA_VERSION + 1  # a newer version must not migrate again
    assert document["audio"]["noise_gate_db"] == -40
    assert document["audio"]["channels"] == 1
    assert document["telemetry"] == {"enabled": False}


def test_invalid_values_in_the_file_fall_back_and_the_rest_is_kept(tmp_path: Path) -> None:
    original = {
        "schema_version": SCHEMA_VERSION,
        "audio": {"sample_rate_hz": 12345, "channels": 2},
        "ui": "dark",
        "model": {"auto_unload_timeout_s": 42},
    }
    write_json(tmp_path / "config.json", original)
    service = ConfigService.open(tmp_path)
    assert service.settings.audio.sample_rate_hz == 16000
    assert service.settings.audio.channels == 2
    assert service.settings.model.auto_unload_timeout_s == 42
    [warning] = service.warnings
    assert (warning.level, warning.kind) == ("warning", "config_invalid")
    assert "audio.sample_rate_hz: must be one of 8000, 16000" in warning.message
    assert 'ui: must be an object (got "dark")' in warning.message
    assert read_json(tmp_path / "config.json") == original  # loading never rewrites the user's file


# --- recovery and migration -----------------------------------------------------------------------
@pytest.mark.parametrize("content", [b'{"audio": {"channels": 2', b"", b"[1, 2]", b"\xff\xfe garbage"])
def test_corrupted_file_is_moved_aside_with_a_warning(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "config.json").write_bytes(content)
    service = ConfigService.open(tmp_path)
    assert service.settings == Settings()
    [backup] = tmp_path.glob("config.json.corrupt-*")
    assert backup.read_bytes() == content
    [warning] = service.warnings
    assert (warning.level, warning.kind) == ("warning", "config_corrupt")
    assert str(backup) in warning.message
    assert read_json(service.path)["schema_version"] == SCHEMA_VERSION
    assert ConfigService.open(tmp_path).warnings == []


def test_a_syntax_error_is_reported_with_its_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{\n  "ui": {\n    "opacity": 0.5,\n  }\n}\n')
    [warning] = ConfigService.open(tmp_path).warnings
    assert "at line 4, column 3" in warning.message


def test_an_unusable_config_dir_still_gives_settings_and_a_warning(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    service = ConfigService.open(tmp_path / "not-a-dir")
    assert service.settings == Settings()
    [warning] = service.warnings
    assert (warning.level, warning.kind) == ("warning", "config_unavailable")
    with pytest.raises(OSError):
        service.set({"ui": {"opacity": 0.5}})
    assert service.settings == Settings()


LEGACY = {
    "audio": {"sample_rate": 44100, "channels": 2},
    "model": {"selected_model": "whisper-small", "auto_unload_enabled": False, "auto_unload_minutes": 5},
    "device": {"device": "cpu"},
    "server": {"api_key": "k", "enabled": True},
    "hotkey": {"shortcut": "Ctrl+Alt+R"},
    "ui": {"show_animations": False, "window_x": 10},
}


def _assert_legacy_values(settings: Settings) -> None:
    assert settings.audio.sample_rate_hz == 44100
    assert settings.audio.channels == 2
    assert settings.model.selected_id == "whisper-small"
    assert settings.model.auto_unload is False
    assert settings.model.auto_unload_timeout_s == 300.0
    assert settings.device.preferred == "cpu"
    assert (settings.server.api_token, settings.server.http_enabled) == ("k", True)
    assert settings.hotkey.combination == "Ctrl+Alt+R"
    assert settings.ui.animations is False


def test_migration_from_the_legacy_directory_is_idempotent(tmp_path: Path) -> None:
    legacy_dir, config_dir = tmp_path / ".asrpro", tmp_path / "config"
    legacy_dir.mkdir()
    write_json(legacy_dir / "config.json", LEGACY)
    legacy_bytes = (legacy_dir / "config.json").read_bytes()
    service = ConfigService.open(config_dir, legacy_dirs=[legacy_dir])
    _assert_legacy_values(service.settings)
    [notice] = service.warnings
    assert (notice.level, notice.kind) == ("info", "config_migrated")
    backup = config_dir / "config.json.legacy.bak"
    assert backup.read_bytes() == legacy_bytes
    assert str(backup) in notice.message
    assert (legacy_dir / "config.json").read_bytes() == legacy_bytes  # the old app's file is untouched
    document = read_json(config_dir / "config.json")
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["ui"]["window_x"] == 10
    assert "sample_rate" not in document["audio"]
    migrated_bytes = (config_dir / "config.json").read_bytes()

    again = ConfigService.open(config_dir, legacy_dirs=[legacy_dir])
    assert again.warnings == []
    assert again.settings == service.settings
    assert (config_dir / "config.json").read_bytes() == migrated_bytes
    assert sorted(p.name for p in config_dir.glob("config.json.*bak*")) == ["config.json.legacy.bak"]


def test_an_older_schema_in_place_is_upgraded_with_a_backup(tmp_path: Path) -> None:
    write_json(tmp_path / "config.json", LEGACY)
    old_bytes = (tmp_path / "config.json").read_bytes()
    service = ConfigService.open(tmp_path)
    _assert_legacy_values(service.settings)
    assert (tmp_path / "config.json.v0.bak").read_bytes() == old_bytes
    assert [w.kind for w in service.warnings] == ["config_migrated"]
    assert read_json(service.path)["schema_version"] == SCHEMA_VERSION
    assert ConfigService.open(tmp_path).warnings == []


def test_migrate_is_idempotent_and_the_new_spelling_wins() -> None:
    document = {"audio": {"sample_rate": 8000, "sample_rate_hz": 22050}}
    once = migrate(document)
    assert once == {"schema_version": SCHEMA_VERSION, "audio": {"sample_rate_hz": 22050}}
    assert migrate(once) == once


def test_corrupt_legacy_file_is_not_imported(tmp_path: Path) -> None:
    legacy_dir = tmp_path / "legacy"
    legacy_dir.mkdir()
    (legacy_dir / "settings.json").write_text("{nope")
    service = ConfigService.open(tmp_path / "config", legacy_dirs=[legacy_dir])
    assert service.settings == Settings()
    assert [w.kind for w in service.warnings] == ["config_corrupt"]
    assert (legacy_dir / "settings.json").read_text() == "{nope"


# --- locking and atomicity ------------------------------------------------------------------------
WRITER = r"""
import os
import sys
import time
from pathlib import Path

from asrpro_rpc.system import files as durable
from asrpro_rpc.config.service import ConfigService

config_dir, mode, count, pause_at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
service = ConfigService.open(config_dir)


def pause(*args, **kwargs):
    # stop inside a write so the parent can kill -9 us exactly there
    sys.stdout.write("paused\n")
    sys.stdout.flush()
    time.sleep(600)


if pause_at == "fsync":  # the temp file is written, not yet renamed
    os.fsync = pause
elif pause_at == "dir-fsync":  # renamed, the directory entry not yet flushed
    durable.fsync_directory = pause
sys.stdout.write("ready\n")
sys.stdout.flush()
sys.stdin.readline()
i = 0
while count == 0 or i < count:
    i += 1
    if mode == "port":
        # the hotkey's key is tied to the port: a file mixing two versions would break the tie
        service.set({"server": {"port": 1000 + i}, "hotkey": {"combination": f"Ctrl+F{i % 24 + 1}"}})
    else:
        service.set({"model": {"auto_unload_timeout_s": i}})
    sys.stdout.write(f"{i}\n")
    sys.stdout.flush()
"""


def spawn_writer(config_dir: Path, mode: str, count: int, pause_at: str = "") -> subprocess.Popen[str]:
    """A process that opens the settings, says ``ready``, and on a line from stdin starts writing."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(config_dir), mode, str(count), pause_at],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline() == "ready\n"
    return writer


def go(writer: subprocess.Popen[str]) -> None:
    assert writer.stdin is not None
    writer.stdin.write("go\n")
    writer.stdin.flush()


def assert_whole(path: Path) -> int:
    """The file parses and is one consistent version; returns the writer's counter in it."""
    document = read_json(path)
    port = document["server"]["port"]
    if port != 8765:
        assert document["hotkey"]["combination"] == f"Ctrl+F{(port - 1000) % 24 + 1}"
    return port - 1000 if port != 8765 else 0


def test_kill_9_mid_write_leaves_the_old_or_the_new_file(tmp_path: Path) -> None:
    ConfigService.open(tmp_path)
    for kill_after in (3, 11, 17, 29, 40):
        writer = spawn_writer(tmp_path, "port", 0)
        go(writer)
        assert writer.stdout is not None
        last_printed = 0
        for _ in range(kill_after):
            last_printed = int(writer.stdout.readline())
            assert assert_whole(tmp_path / "config.json") >= last_printed - 1
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        for line in writer.stdout:  # lines printed before the kill but not read yet
            last_printed = int(line)
        in_file = assert_whole(tmp_path / "config.json")
        assert last_printed <= in_file <= last_printed + 1  # what was reported saved, or the write after it
        reopened = ConfigService.open(tmp_path)  # also removes temp files the killed writer left
        assert reopened.settings.server.port == 1000 + in_file
        assert list(tmp_path.glob(".config.json.*.tmp")) == []


@pytest.mark.parametrize(("pause_at", "expected_port"), [("fsync", 8765), ("dir-fsync", 1001)])
def test_kill_9_at_each_step_of_a_write(tmp_path: Path, pause_at: str, expected_port: int) -> None:
    ConfigService.open(tmp_path)
    writer = spawn_writer(tmp_path, "port", 1, pause_at)
    go(writer)
    assert writer.stdout is not None
    assert writer.stdout.readline() == "paused\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert read_json(tmp_path / "config.json")["server"]["port"] == expected_port
    temp_files = list(tmp_path.glob(".config.json.*.tmp"))
    assert len(temp_files) == (1 if pause_at == "fsync" else 0)
    assert ConfigService.open(tmp_path).settings.server.port == expected_port
    assert list(tmp_path.glob(".config.json.*.tmp")) == []


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    ConfigService.open(tmp_path)
    count = 100
    writers = [spawn_writer(tmp_path, "port", count), spawn_writer(tmp_path, "timeout", count)]
    for writer in writers:  # both have loaded the settings before either writes
        go(writer)
    observed: list[int] = []
    while any(w.poll() is None for w in writers):
        observed.append(assert_whole(tmp_path / "config.json"))
    assert [w.wait() for w in writers] == [0, 0]
    final = ConfigService.open(tmp_path).settings
    assert final.server.port == 1000 + count
    assert final.model.auto_unload_timeout_s == count  # neither writer overwrote the other's key
    assert observed == sorted(observed)


def test_two_services_in_one_directory_see_each_others_changes(tmp_path: Path) -> None:
    first, second = ConfigService.open(tmp_path), ConfigService.open(tmp_path)
    recorder = Recorder(second)
    first.set({"ui": {"opacity": 0.25}})
    settings = second.set({"audio": {"channels": 2}})
    assert (settings.ui.opacity, settings.audio.channels) == (0.25, 2)
    assert recorder.changes == [["ui.opacity", "audio.channels"]]
    assert ConfigService.open(tmp_path).settings == settings


def test_a_held_lock_makes_writers_wait_then_fail_busy(tmp_path: Path) -> None:
    service = ConfigService.open(tmp_path, lock_timeout_s=0.05)
    with config_store.exclusive_lock(service.lock_path):
        with pytest.raises(errors.Busy, match="locked by another program"):
            service.set({"ui": {"opacity": 0.5}})
    assert service.set({"ui": {"opacity": 0.5}}).ui.opacity == 0.5


def test_threads_setting_concurrently_all_land(tmp_path: Path) -> None:
    service = ConfigService.open(tmp_path)
    keys = ["cuda_index", "cpu_threads", "max_concurrent_transcriptions"]

    def bump(key: str) -> None:
        for value in range(1, 11):
            service.set({"device": {key: value}})

    threads = [threading.Thread(target=bump, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    device = ConfigService.open(tmp_path).settings.device
    assert (device.cuda_index, device.cpu_threads, device.max_concurrent_transcriptions) == (10, 10, 10)


# --- hot reload -------------------------------------------------------------------------------------
def edit_externally(service: ConfigService, **changes: dict[str, Any]) -> None:
    """Another program rewrites the file (plainly, not atomically, as many editors do)."""
    document = read_json(service.path)
    for category, values in changes.items():
        document[category] = {**document[category], **values}
    write_json(service.path, document)


def test_reload_applies_an_external_edit_and_ignores_our_own_writes(tmp_path: Path) -> None:
    service = ConfigService.open(tmp_path)
    recorder = Recorder(service)
    service.set({"ui": {"opacity": 0.5}})
    assert service.reload() == []
    edit_externally(service, model={"auto_unload_timeout_s": 30}, audio={"channels": 2})
    assert service.reload() == ["audio.channels", "model.auto_unload_timeout_s"]
    assert service.settings.model.auto_unload_timeout_s == 30
    assert service.reload() == []
    assert recorder.changes == [["ui.opacity"], ["audio.channels", "model.auto_unload_timeout_s"]]


def test_an_invalid_external_edit_is_rejected_once_and_the_last_good_settings_stay(tmp_path: Path) -> None:
    service = ConfigService.open(tmp_path)
    recorder = Recorder(service)
    edit_externally(service, audio={"sample_rate_hz": 1234, "channels": 2})
    assert service.reload() == []
    assert service.reload() == []
    [warning] = recorder.warnings
    assert (warning.level, warning.kind) == ("warning", "config_rejected")
    assert "audio.sample_rate_hz: must be one of" in warning.message
    assert service.settings == Settings()
    service.path.write_text("{ half an edit")
    assert service.reload() == []
    assert [w.kind for w in recorder.warnings] == ["config_rejected", "config_rejected"]
    write_json(service.path, {"schema_version": SCHEMA_VERSION, "audio": {"channels": 2}})
    assert service.reload() == ["audio.channels"]
    assert recorder.changes == [["audio.channels"]]


def test_set_over_a_corrupted_file_backs_it_up_first(tmp_path: Path) -> None:
    service = ConfigService.open(tmp_path)
    recorder = Recorder(service)
    service.path.write_text("{ broken by hand")
    assert service.set({"ui": {"opacity": 0.5}}).ui.opacity == 0.5
    [backup] = tmp_path.glob("config.json.corrupt-*")
    assert backup.read_text() == "{ broken by hand"
    [warning] = recorder.warnings
    assert warning.kind == "config_corrupt"
    assert f"moved to {backup}; the settings in force were saved in its place" in warning.message
    assert read_json(service.path)["ui"]["opacity"] == 0.5


@pytest.mark.anyio
async def test_watch_picks_up_external_edits(tmp_path: Path) -> None:
    service = ConfigService.open(tmp_path)
    seen: list[list[str]] = []
    changed = anyio.Event()

    def on_change(keys: list[str], settings: Settings) -> None:
        seen.append(keys)
        if settings.model.auto_unload_timeout_s == 5:
            changed.set()

    service.subscribe(on_change)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(lambda: service.watch(poll_interval_s=0.01, settle_s=0.01))
        await service.aset({"ui": {"opacity": 0.5}})
        for timeout_s in (20, 15, 10, 5):  # a burst of edits: the watcher may see any, must end on the last
            edit_externally(service, model={"auto_unload_timeout_s": timeout_s})
        with anyio.fail_after(20):
            await changed.wait()
        task_group.cancel_scope.cancel()
    assert seen[0] == ["ui.opacity"]
    assert all(keys == ["model.auto_unload_timeout_s"] for keys in seen[1:])
    assert service.settings.model.auto_unload_timeout_s == 5


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- paths ---------------------------------------------------------------------------------------
def _fake_windows_folders(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    folders = {
        "CSIDL_APPDATA": r"C:\Users\ada\AppData\Roaming",
        "CSIDL_LOCAL_APPDATA": r"C:\Users\ada\AppData\Local",
    }
    monkeypatch.setattr(platformdirs.windows, "get_win_folder", folders.__getitem__)
    monkeypatch.setattr(platformdirs, "PlatformDirs", platformdirs.windows.Windows)
    return folders


@pytest.fixture
def no_path_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (
        "ASRPRO_CONFIG_DIR",
        "ASRPRO_CACHE_DIR",
        "ASRPRO_MODELS_DIR",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_linux_paths(monkeypatch: pytest.MonkeyPatch, no_path_overrides: Path) -> None:
    monkeypatch.setattr(platformdirs, "PlatformDirs", platformdirs.unix.Unix)
    assert paths.config_dir() == no_path_overrides / ".config" / "asrpro"
    assert paths.cache_dir() == no_path_overrides / ".cache" / "asrpro"
    monkeypatch.setenv("XDG_CONFIG_HOME", "/xdg/config")
    assert paths.config_dir() == Path("/xdg/config/asrpro")
    monkeypatch.setenv("ASRPRO_CONFIG_DIR", "/override")
    assert paths.config_dir() == Path("/override")


def test_macos_paths(monkeypatch: pytest.MonkeyPatch, no_path_overrides: Path) -> None:
    monkeypatch.setattr(platformdirs, "PlatformDirs", platformdirs.macos.MacOS)
    assert paths.config_dir() == no_path_overrides / "Library" / "Application Support" / "asrpro"
    assert paths.cache_dir() == no_path_overrides / "Library" / "Caches" / "asrpro"


def test_windows_config_dir_is_roaming_appdata(
    monkeypatch: pytest.MonkeyPatch, no_path_overrides: Path
) -> None:
    folders = _fake_windows_folders(monkeypatch)
    assert paths.config_dir() == Path(folders["CSIDL_APPDATA"]) / "asrpro"


def test_windows_cache_dir(monkeypatch: pytest.MonkeyPatch, no_path_overrides: Path) -> None:
    folders = _fake_windows_folders(monkeypatch)
    assert paths.cache_dir() == Path(folders["CSIDL_LOCAL_APPDATA"]) / "asrpro" / "Cache"


def test_model_cache_defaults_to_the_platform_cache(no_path_overrides: Path) -> None:
    settings = Settings()
    assert settings.model.cache_path() == paths.models_dir()
    custom = msgspec.structs.replace(settings.model, cache_directory="~/models")
    assert custom.cache_path() == no_path_overrides / "models"


# --- methods ------------------------------------------------------------------------------------
async def call_methods(service: ConfigService, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run requests through an in-process Session; return every message it sent, in order."""
    sent: list[dict[str, Any]] = []
    session = Session(
        config_methods.METHODS, SimpleNamespace(config=service), lambda b: sent.append(json.loads(b))
    )
    service.subscribe(announce_changes(session.notify))
    send, receive = anyio.create_memory_object_stream[Any](16)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(session.serve, receive)
        for number, request in enumerate(requests, 1):
            await send.send([json.dumps({"jsonrpc": "2.0", "id": number, **request}).encode()])
            with anyio.fail_after(20):
                while not any(m.get("id") == number for m in sent):
                    await anyio.sleep(0.005)
        await send.send(None)
    return sent


@pytest.mark.anyio
async def test_config_methods(tmp_path: Path) -> None:
    service = ConfigService.open(tmp_path)
    sent = await call_methods(
        service,
        [
            {"method": "config.get", "params": {"category": "model"}},
            {"method": "config.set", "params": {"values": {"model": {"auto_unload_timeout_s": 60}}}},
            {"method": "config.set", "params": {"values": {"audio": {"sample_rate_hz": 1}}}},
            {"method": "config.reset", "params": {"category": "model"}},
            {"method": "config.path"},
            {"method": "config.get"},
            {"method": "config.get", "params": {"category": "nope"}},
        ],
    )
    replies = {m["id"]: m for m in sent if "id" in m}
    assert replies[1]["result"] == {"model": msgspec.to_builtins(Settings().model)}
    assert replies[2]["result"]["model"]["auto_unload_timeout_s"] == 60
    error = replies[3]["error"]
    assert (error["code"], error["data"]["kind"]) == (-32010, "invalid_config")
    assert error["data"]["errors"][0]["path"] == "audio.sample_rate_hz"
    assert replies[4]["result"] == msgspec.to_builtins(Settings())
    assert replies[5]["result"] == {"path": str(service.path), "directory": str(tmp_path)}
    assert replies[6]["result"] == msgspec.to_builtins(Settings())
    assert replies[7]["error"]["code"] == -32602
    changed = [(i, m["params"]) for i, m in enumerate(sent) if m.get("method") == "config.changed"]
    assert [params for _, params in changed] == [{"keys": ["model.auto_unload_timeout_s"]}] * 2
    # each announcement precedes the reply to the request that caused it
    positions = {m["id"]: i for i, m in enumerate(sent) if "id" in m}
    assert changed[0][0] < positions[2] and positions[3] < changed[1][0] < positions[4]


def test_external_edit_is_announced_over_stdio(tmp_path: Path) -> None:
    sidecar = Sidecar(env={"ASRPRO_CONFIG_DIR": str(tmp_path)})
    try:
        sidecar.call("initialize", {})
        path = Path(sidecar.call("config.path")["path"])
        assert path == tmp_path / "config.json"
        document = read_json(path)
        document["model"]["auto_unload_timeout_s"] = 42
        write_json(path, document)
        while not any(n["method"] == "config.changed" for n in sidecar.notifications):
            sidecar.notifications.append(sidecar.next_message())
        [announcement] = [n for n in sidecar.notifications if n["method"] == "config.changed"]
        assert announcement["params"] == {"keys": ["model.auto_unload_timeout_s"]}
        assert sidecar.call("config.get", {"category": "model"})["model"]["auto_unload_timeout_s"] == 42
        assert sidecar.shutdown() == 0
    finally:
        sidecar.kill()


# --- the hotkey grammar -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "combination",
    ["CommandOrControl+Shift+Space", "Alt+Space", "ctrl+alt+r", "Super+Plus", "AltGr+num5", "F13", "Ctrl+/"],
)
def test_hotkey_combinations_that_are_accepted(tmp_path: Path, combination: str) -> None:
    service = ConfigService.open(tmp_path)
    assert service.set({"hotkey": {"combination": combination}}).hotkey.combination == combination


@pytest.mark.parametrize(
    ("combination", "problem"),
    [
        ("Banana+Q+Q", "'Banana' is not a modifier"),
        ("Ctrl+Q+Q", "'Q' is a key: a combination has one key, at the end"),
        ("Ctrl+Shift", "it ends with the modifier 'Shift', not a key"),
        ("Ctrl+Control+A", "Control repeats a modifier"),
        ("Ctrl++", "an empty part (write + as Plus)"),
        ("Q", "'Q' needs a modifier (only F1-F24 and media keys work alone)"),
        ("Alt+Banana", "'Banana' is not a key"),
        ("Command+Option+Space", "Command is a macOS modifier, not one on Linux"),
    ],
)
def test_hotkey_grammar_refusals_name_the_path_and_what_is_allowed(
    tmp_path: Path, combination: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    service = ConfigService.open(tmp_path)
    with pytest.raises(errors.InvalidConfig) as caught:
        service.set({"hotkey": {"combination": combination}})
    assert caught.value.data["path"] == "hotkey.combination"
    message = caught.value.data["errors"][0]["message"]
    assert problem in message and f"(got {json.dumps(combination)})" in message
    assert (
        "modifiers on Linux: CommandOrControl, CmdOrCtrl, Control, Ctrl, Alt, Shift, Super, Meta, AltGr"
        in message
    )
    assert "keys: A-Z, 0-9, F1-F24, Space" in message
    assert service.settings.hotkey == Settings().hotkey  # nothing changed


def test_hotkey_modifiers_follow_the_platform() -> None:
    from asrpro_rpc.config.hotkey import hotkey_grammar, hotkey_problem

    assert hotkey_problem("Command+Option+Space", "darwin") is None
    assert hotkey_problem("AltGr+A", "darwin") == "AltGr is a Linux or Windows modifier, not one on macOS"
    mac = "CommandOrControl, CmdOrCtrl, Control, Ctrl, Alt, Shift, Super, Meta, Command, Cmd, Option;"
    assert f"modifiers on macOS: {mac}" in hotkey_grammar("darwin")
    assert hotkey_problem("Super+Space", "win32") is None


def test_an_invalid_hotkey_in_the_file_falls_back_and_is_reported(tmp_path: Path) -> None:
    write_json(tmp_path / "config.json", {"schema_version": 1, "hotkey": {"combination": "Banana+Q+Q"}})
    service = ConfigService.open(tmp_path)
    assert service.settings.hotkey.combination == Settings().hotkey.combination
    [warning] = service.warnings
    assert (
        warning.kind == "config_invalid"
        and "hotkey.combination: must be modifiers and one key" in warning.message
    )


def test_hotkey_refusal_over_the_wire(tmp_path: Path) -> None:
    sidecar = Sidecar(env={"ASRPRO_CONFIG_DIR": str(tmp_path)})
    try:
        error = sidecar.error("config.set", {"values": {"hotkey": {"combination": "Banana+Q+Q"}}})
        assert (error["code"], error["data"]["kind"], error["data"]["path"]) == (
            -32010,
            "invalid_config",
            "hotkey.combination",
        )
        assert "'Banana' is not a modifier" in error["message"] and "modifiers on Linux" in error["message"]
        ui = sidecar.call("config.set", {"values": {"ui": {"theme": "dark"}, "hotkey": {"overlay": False}}})
        assert ui["ui"]["theme"] == "dark" and not ui["hotkey"]["overlay"]
        announced = [n["params"] for n in sidecar.notifications if n.get("method") == "config.changed"]
        assert announced == [{"keys": ["ui.theme", "hotkey.overlay"]}]  # stored and announced for the host
    finally:
        sidecar.kill()
