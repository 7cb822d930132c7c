"""Model downloads against a hub on loopback: progress, resume, integrity, cancel, offline, updates, delete.

``FakeHub`` speaks the slice of the Hugging Face hub the downloader uses (``HEAD``/``GET`` on
``/{repo}/resolve/{revision}/{file}`` with ``X-Repo-Commit``, ``X-Linked-Size``, ``X-Linked-Etag`` and
``Range``), serving tiny files from memory, and can drop connections, corrupt bodies or stall on demand.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from asrpro_rpc import errors
from asrpro_rpc.catalog.hub import HubClient
from asrpro_rpc.catalog.specs import find_spec
from asrpro_rpc.catalog.store import ModelStore
from asrpro_rpc.services.downloads import SOURCE_NAME, DownloadService
from tests.support.sidecar import Sidecar

SMALL = find_spec("whisper-small")  # unpinned: files come with the hub's digests only
TINY_EN = find_spec("whisper-tiny.en")  # pinned revision and SHA-256 digests in the registry


class FakeHub:
    """A threaded HTTP server on 127.0.0.1 serving ``files[(repo, name)]`` at commit ``commit``."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], bytes] = {}
        self.commit = "a" * 40
        self.drop_after: dict[str, int] = {}
        """File name -> bytes to send before dropping the connection (once)."""
        self.corrupt: set[str] = set()
        """File names served with a flipped byte (the advertised digest stays the real one)."""
        self.stall = threading.Event()
        """While set, bodies stop after their first chunk until it is cleared."""
        self.requests: list[tuple[str, str, str | None]] = []
        """(method, path, Range header) of every request."""
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                hub.serve(self, body=False)

            def do_GET(self) -> None:
                try:
                    hub.serve(self, body=True)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client went away (a cancelled download)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, repo: str, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            self.files[(repo, name)] = data

    def serve(self, handler: BaseHTTPRequestHandler, *, body: bool) -> None:
        self.requests.append((handler.command, handler.path, handler.headers.get("Range")))
        parts = handler.path.lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve" or parts[3] not in ("main", self.commit):
            handler.send_error(404)
            return
        repo, name = "/".join(parts[:2]), "/".join(parts[4:])
        data = self.files.get((repo, name))
        if data is None:
            handler.send_error(404)
            return
        digest = hashlib.sha256(data).hexdigest()
        if name in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = 0
        if body and (wanted := handler.headers.get("Range")):
            start = int(wanted.removeprefix("bytes=").split("-")[0])
        handler.send_response(206 if start else 200)
        handler.send_header("X-Repo-Commit", self.commit)
        handler.send_header("X-Linked-Size", str(len(data)))
        handler.send_header("X-Linked-Etag", f'"{digest}"')
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(len(data) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if not body:
            return
        payload = data[start:]
        limit = self.drop_after.pop(name, None)
        if limit is not None:
            handler.wfile.write(payload[:limit])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        for offset in range(0, len(payload), 64 << 10):
            handler.wfile.write(payload[offset : offset + (64 << 10)])
            handler.wfile.flush()
            while self.stall.is_set():
                time.sleep(0.01)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stall.clear()
        self.server.shutdown()
        self.server.server_close()


def _model_files(seed: bytes, size: int = 300_000) -> dict[str, bytes]:
    blob = hashlib.sha256(seed).digest() * (size // 32 + 1)
    return {
        "config.json": b'{"seed": "' + seed + b'"}',
        "model.bin": blob[:size],
        "tokenizer.json": b"{}",
        "vocabulary.txt": b"a\nb\n",
    }


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models", tmp_path / "models.json")


@pytest.fixture
def service(store: ModelStore, hub: FakeHub) -> DownloadService:
    return DownloadService(store, HubClient(hub.url))


class Reports:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def __call__(self, fraction: float, **fields: Any) -> None:
        self.items.append({"progress": fraction, **fields})


def _download(service: DownloadService, spec: Any, reports: Reports | None = None, **kwargs: Any) -> Path:
    return anyio.run(lambda: service.download(spec, reports or Reports(), **kwargs))


def _dir_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")}


# --- the happy path -----------------------------------------------------------------------------
def test_download_installs_verified_files_with_progress(
    service: DownloadService, store: ModelStore, hub: FakeHub
) -> None:
    files = _model_files(b"v1")
    hub.add(SMALL.source, files)
    reports = Reports()
    path = _download(service, SMALL, reports)
    assert path == store.model_dir(SMALL.id) and _dir_files(path) == files
    total = sum(len(v) for v in files.values())
    sized = [r for r in reports.items if "downloaded_bytes" in r]
    assert sized[-1]["downloaded_bytes"] == total and all(r["total_bytes"] == total for r in sized)
    assert [r["downloaded_bytes"] for r in sized] == sorted(r["downloaded_bytes"] for r in sized)
    assert all(r.get("rate_bytes_per_s", 0) >= 0 for r in sized) and reports.items[-1]["progress"] == 1.0
    assert service.installed_revision(SMALL) == hub.commit
    assert not service.staging_dir(SMALL.id).exists()
    # files after the first are fetched at the commit the first resolved to, not a moving "main"
    assert any(f"/resolve/{hub.commit}/model.bin" in path for _, path, _ in hub.requests)
    again = Reports()
    _download(service, SMALL, again)
    assert again.items == [{"progress": 1.0, "message": "already downloaded", "stage": "done", "error": None}]


# --- resume ------------------------------------------------------------------------------------
def test_dropped_connection_resumes_with_range(service: DownloadService, hub: FakeHub) -> None:
    files = _model_files(b"drop")
    hub.add(SMALL.source, files)
    hub.drop_after["model.bin"] = 100_000
    path = _download(service, SMALL)
    assert (path / "model.bin").read_bytes() == files["model.bin"]
    ranges = [r for method, p, r in hub.requests if method == "GET" and p.endswith("model.bin")]
    assert ranges == [None, "bytes=100000-"]


class _WatchedHubClient(HubClient):
    """The real client, telling the test when a fetch has failed (how an abandoned worker thread ends)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.ended: list[tuple[str, BaseException | None]] = []
        self.fetch_failed = threading.Event()

    def fetch(self, remote: Any, *args: Any, **kwargs: Any) -> Path:
        try:
            path = super().fetch(remote, *args, **kwargs)
        except BaseException as exc:
            self.ended.append((remote.name, exc))
            self.fetch_failed.set()
            raise
        self.ended.append((remote.name, None))
        return path


def test_cancel_keeps_the_part_and_the_next_download_resumes(store: ModelStore, hub: FakeHub) -> None:
    client = _WatchedHubClient(hub.url)
    service = DownloadService(store, client)
    files = _model_files(b"cancel", size=2_000_000)
    hub.add(SMALL.source, files)
    hub.stall.set()
    reports = Reports()

    async def cancel_midway() -> None:
        with anyio.move_on_after(30) as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(service.download, SMALL, reports)
                while not any(r.get("downloaded_bytes", 0) > 50_000 for r in reports.items):
                    await anyio.sleep(0.01)
                group.cancel_scope.cancel()
        assert not scope.cancelled_caught

    anyio.run(cancel_midway)
    assert reports.items[-1]["stage"] == "cancelled"  # the progress stream's final frame
    hub.stall.clear()
    # The cancelled caller was released at once; its worker thread sees the cancel and ends on its own.
    # Resuming before it has ended would race it for the part file, so wait for that end.
    assert client.fetch_failed.wait(30), "the abandoned download worker never ended"
    assert [(name, type(exc)) for name, exc in client.ended][-1] == ("model.bin", errors.RequestCancelled)
    assert not store.is_available(SMALL)
    part = service.staging_dir(SMALL.id) / "model.bin.part"
    kept = part.stat().st_size
    assert 0 < kept < len(files["model.bin"])
    hub.requests.clear()
    path = _download(service, SMALL)
    assert _dir_files(path) == files
    ranges = [r for method, p, r in hub.requests if method == "GET" and p.endswith("model.bin")]
    assert ranges and ranges[0] is not None and int(ranges[0].split("=")[1].rstrip("-")) >= kept


# --- integrity -----------------------------------------------------------------------------------
def test_corrupt_file_is_rejected_and_the_cache_untouched(
    service: DownloadService, store: ModelStore, hub: FakeHub
) -> None:
    hub.add(SMALL.source, _model_files(b"corrupt"))
    hub.corrupt.add("model.bin")
    with pytest.raises(errors.DownloadFailed) as caught:
        _download(service, SMALL)
    assert caught.value.data["reason"] == "integrity" and "model.bin" in caught.value.message
    assert not store.is_available(SMALL)
    assert not (service.staging_dir(SMALL.id) / "model.bin.part").exists()


def test_registry_digests_apply_to_pinned_models(service: DownloadService, hub: FakeHub) -> None:
    hub.commit = TINY_EN.revision or ""
    hub.add(TINY_EN.source, _model_files(b"not the real tiny.en"))
    with pytest.raises(errors.DownloadFailed) as caught:
        _download(service, TINY_EN)
    assert caught.value.data["reason"] == "integrity"


def test_missing_file_is_a_clear_http_error(service: DownloadService, hub: FakeHub) -> None:
    files = _model_files(b"partial repo")
    del files["vocabulary.txt"]
    hub.add(SMALL.source, files)
    with pytest.raises(errors.DownloadFailed) as caught:
        _download(service, SMALL)
    assert caught.value.data["reason"] == "not_found" and "404" in caught.value.message


# --- offline -------------------------------------------------------------------------------------
def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_offline_is_a_clear_error(store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    service = DownloadService(store, HubClient(_closed_port_url()))
    with pytest.raises(errors.DownloadFailed) as caught:
        _download(service, SMALL)
    assert caught.value.data["reason"] == "offline"
    assert "asrpro models import DIR --model whisper-small" in caught.value.message
    monkeypatch.setenv("ASRPRO_OFFLINE", "1")
    with pytest.raises(errors.DownloadFailed, match="ASRPRO_OFFLINE"):
        _download(DownloadService(store, HubClient("http://127.0.0.1:9")), SMALL)


def test_load_falls_back_to_model_not_downloaded_offline(store: ModelStore) -> None:
    service = DownloadService(store, HubClient(_closed_port_url()))
    with pytest.raises(errors.ModelNotDownloaded) as caught:
        anyio.run(service.fetch_for_load, SMALL, None)
    assert caught.value.data["download_error"] == "offline"


# --- updates, rollback, delete ---------------------------------------------------------------------
def test_update_replaces_only_after_the_new_version_verifies(
    service: DownloadService, store: ModelStore, hub: FakeHub
) -> None:
    old = _model_files(b"old")
    hub.add(SMALL.source, old)
    _download(service, SMALL)
    (info,) = anyio.run(service.check_updates, [SMALL])
    assert not info.update_available and info.installed_revision == info.latest_revision == hub.commit

    hub.commit, new = "b" * 40, _model_files(b"new")
    hub.add(SMALL.source, new)
    (info,) = anyio.run(service.check_updates, [SMALL])
    assert info.update_available and info.installed_revision == "a" * 40 and info.latest_revision == "b" * 40

    hub.corrupt.add("model.bin")  # the update fails: the old version stays, intact
    with pytest.raises(errors.DownloadFailed):
        _download(service, SMALL, update=True)
    assert _dir_files(store.model_dir(SMALL.id)) == old

    hub.corrupt.clear()
    _download(service, SMALL, update=True)
    assert _dir_files(store.model_dir(SMALL.id)) == new
    assert service.installed_revision(SMALL) == "b" * 40
    assert [p.name for p in store.models_dir.iterdir()] == [SMALL.id]  # no staging or old copies left


def test_delete_frees_the_model_and_partials(
    service: DownloadService, store: ModelStore, hub: FakeHub
) -> None:
    hub.add(SMALL.source, _model_files(b"delete"))
    _download(service, SMALL)
    result = service.delete(SMALL)
    assert result.deleted and result.freed_bytes >= 300_000
    assert not store.is_available(SMALL) and not store.model_dir(SMALL.id).exists()
    assert service.delete(SMALL).deleted is False
    assert (store.model_dir(SMALL.id) / SOURCE_NAME).exists() is False


# --- through the real sidecar ----------------------------------------------------------------------
def test_sidecar_downloads_then_loads_on_first_use(
    hub: FakeHub, tiny_whisper_dir: Path, tmp_path: Path
) -> None:
    """models.download over the wire; a load of a missing model downloads it first (whisper-large-v3's
    file layout matches the tiny random model, which stands in for it here)."""
    hub.add(SMALL.source, _model_files(b"wire"))
    large = find_spec("whisper-large-v3")
    hub.add(large.source, {name: (tiny_whisper_dir / name).read_bytes() for name in large.files})
    env = {
        "ASRPRO_HUB_URL": hub.url,
        "ASRPRO_MODELS_DIR": str(tmp_path / "models"),
        "ASRPRO_CONFIG_DIR": str(tmp_path / "config"),
    }
    sidecar = Sidecar("--allow-multiple", env=env)
    try:
        info = sidecar.call("models.download", {"model": SMALL.id})
        assert info["available"]
        progress = [n["params"] for n in sidecar.notifications if n["method"] == "model.progress"]
        assert progress[-1]["progress"] == 1.0 and progress[-1]["stage"] == "done"  # the final frame
        assert any(p.get("total_bytes") and p.get("rate_bytes_per_s") is not None for p in progress)
        (update,) = sidecar.call("models.check_updates", {"model": SMALL.id})
        assert update["installed_revision"] == hub.commit and not update["update_available"]

        sidecar.notifications.clear()
        loaded = sidecar.call("models.load", {"model": large.id})
        assert loaded["ready"] and loaded["available"]
        loads = [n["params"] for n in sidecar.notifications if n["method"] == "model.progress"]
        messages = [p["message"] for p in loads]
        assert messages[0].startswith("contacting http://127.0.0.1") and messages[-1] == "ready", messages
        assert [p["stage"] for p in loads if "stage" in p] == ["done"]  # one final frame: the load's

        deleted = sidecar.call("models.delete", {"model": large.id})
        assert deleted["deleted"] and sidecar.call("models.status")["state"] == "unloaded"
        assert not sidecar.call("models.get", {"model": large.id})["available"]
        error = sidecar.error("models.download", {"model": "whisper-medium"})
        assert error["data"]["kind"] == "download_failed" and error["data"]["reason"] == "not_found"
    finally:
        sidecar.kill()


def test_cli_models_download(hub: FakeHub, tmp_path: Path) -> None:
    hub.add(SMALL.source, _model_files(b"cli"))
    env = {
        **os.environ,
        "ASRPRO_HUB_URL": hub.url,
        "ASRPRO_MODELS_DIR": str(tmp_path / "models"),
        "ASRPRO_CONFIG_DIR": str(tmp_path / "config"),
    }
    command = [sys.executable, "-m", "asrpro_rpc", "models", "download", SMALL.id]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "models" / SMALL.id / "model.bin").is_file() and "ready in" in done.stderr
    offline = subprocess.run(
        [*command[:-1], "whisper-tiny"], env={**env, "ASRPRO_OFFLINE": "1"}, capture_output=True, text=True
    )
    assert offline.returncode == 1 and "ASRPRO_OFFLINE" in offline.stderr
