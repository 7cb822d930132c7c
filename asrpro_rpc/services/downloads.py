"""The download service: fetch a built-in model from its hub repo into the cache, check for updates, delete.

One download per model at a time (a second request for the same model waits and then finds it there).
Files are staged in ``<models>/.downloads/<id>/`` (partial files survive for a resume) and handed to
``ModelStore.install``, which verifies the registry's SHA-256 digests and swaps the directory in
atomically: an update keeps the previous version in place until the new one has fully arrived and
verified, so a failed or cancelled update leaves the old model working (rollback by construction).
The revision a model came from is recorded in ``SOURCE_NAME`` inside its directory.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import msgspec

from .. import errors
from ..catalog.specs import ModelSpec
from ..catalog.store import ModelStore
from ..events import FinalStage, final_frame
from .models import LoadProgress, run_blocking

if TYPE_CHECKING:
    from ..catalog.hub import HubClient, RemoteFile

log = logging.getLogger(__name__)

SOURCE_NAME = ".asrpro-source.json"
"""Per model dir: where its files came from (hub, repo, commit), for ``models.check_updates``."""

DownloadProgress = Callable[..., None]
"""``progress(fraction, message=..., downloaded_bytes=..., total_bytes=..., rate_bytes_per_s=...)``"""


class ModelSource(msgspec.Struct, frozen=True, kw_only=True):
    hub_url: str
    repo: str
    commit: str | None
    downloaded_at_s: float
    """Unix time."""


class UpdateInfo(msgspec.Struct, frozen=True, kw_only=True):
    model_id: str
    installed_revision: str | None
    """The commit the cached files came from (``None``: unknown, e.g. imported by hand)."""
    latest_revision: str | None
    update_available: bool


class DeleteResult(msgspec.Struct, frozen=True):
    deleted: bool
    """False when nothing of the model was on disk."""
    freed_bytes: int


class DownloadService:
    """Downloads built-in models with progress, resume, integrity checks and cancellation."""

    def __init__(self, store: ModelStore, client: HubClient | None = None) -> None:
        self.store = store
        self._client = client
        self._locks: dict[str, anyio.Lock] = {}

    @property
    def client(self) -> HubClient:
        """The hub client, created on first use (keeps the network stack out of start-up)."""
        if self._client is None:
            from ..catalog.hub import HubClient

            self._client = HubClient()
        return self._client

    def staging_dir(self, model_id: str) -> Path:
        return self.store.models_dir / ".downloads" / model_id

    async def download(self, spec: ModelSpec, progress: DownloadProgress, *, update: bool = False) -> Path:
        """Fetch ``spec``'s files unless present (``update``: fetch the latest revision even if present);
        ``progress`` ends with a final ``stage``: ``done``, ``failed`` (with ``error``) or ``cancelled``."""
        outcome = ["downloaded"]

        def end(stage: FinalStage, kind: str | None) -> None:
            message = outcome[0] if stage == "done" else f"download {stage}"
            progress(1.0 if stage == "done" else 0.0, message=message, stage=stage, error=kind)

        with final_frame(end):
            path, outcome[0] = await self._download(spec, progress, update=update)
        return path

    async def _download(
        self, spec: ModelSpec, progress: DownloadProgress, *, update: bool
    ) -> tuple[Path, str]:
        """The model's directory, and what happened (``downloaded``, ``already downloaded``)."""
        if spec.user:
            raise errors.InvalidParams(
                f"{spec.id!r} is a registered local model; there is nothing to download.", model_id=spec.id
            )
        lock = self._locks.setdefault(spec.id, anyio.Lock())
        async with lock:
            if self.store.is_available(spec) and not (update and await self._outdated(spec)):
                return self.store.resolve_path(spec), "already downloaded"
            path = await run_blocking(lambda cancel: self._download_blocking(spec, progress, cancel))
            return path, "downloaded"

    async def fetch_for_load(self, spec: ModelSpec, progress: LoadProgress | None) -> Path:
        """Download a missing model on first use; on failure (offline), a clear ``model_not_downloaded``.

        Download progress fills 0..0.9 of the load's progress; the load itself continues from there.
        """

        def report(fraction: float, message: str = "", **_: object) -> None:
            if progress is not None:
                progress(fraction * 0.9, message)

        try:
            return await self.download(spec, report)
        except errors.DownloadFailed as exc:
            raise errors.ModelNotDownloaded(
                f"Model {spec.id!r} isn't downloaded, and downloading it failed. {exc.message}",
                model_id=spec.id,
                download_error=exc.data.get("reason"),
            ) from exc

    async def check_updates(self, specs: list[ModelSpec]) -> list[UpdateInfo]:
        """For each downloaded built-in model: the cached revision against the source's."""
        results = []
        for spec in specs:
            if spec.user or not self.store.is_available(spec):
                continue
            installed = await anyio.to_thread.run_sync(self.installed_revision, spec)
            latest = spec.revision or await anyio.to_thread.run_sync(self._latest_commit, spec)
            results.append(
                UpdateInfo(
                    model_id=spec.id,
                    installed_revision=installed,
                    latest_revision=latest,
                    update_available=latest is not None and installed != latest,
                )
            )
        return results

    def delete(self, spec: ModelSpec) -> DeleteResult:
        """Remove the model's cached files and any partial download (blocking)."""
        if spec.user:
            raise errors.InvalidParams(
                f"{spec.id!r} is a registered local model; its files are yours. Use models.unregister.",
                model_id=spec.id,
            )
        freed = _tree_bytes(self.store.model_dir(spec.id)) + _tree_bytes(self.staging_dir(spec.id))
        deleted = self.store.delete(spec)
        shutil.rmtree(self.staging_dir(spec.id), ignore_errors=True)
        return DeleteResult(deleted=deleted or freed > 0, freed_bytes=freed)

    def installed_revision(self, spec: ModelSpec) -> str | None:
        """The commit the cached files came from; a pinned model whose files verify is at its pin."""
        try:
            source = msgspec.json.decode(
                (self.store.model_dir(spec.id) / SOURCE_NAME).read_bytes(), type=ModelSource
            )
        except (OSError, msgspec.DecodeError):
            return spec.revision if spec.revision and self.store.verify(spec) else None
        return source.commit

    # --- internals -----------------------------------------------------------------------------------
    async def _outdated(self, spec: ModelSpec) -> bool:
        (info,) = await self.check_updates([spec])
        return info.update_available

    def _latest_commit(self, spec: ModelSpec) -> str | None:
        return self.client.head(spec.source, "main", spec.files[0], spec.id).commit

    def _download_blocking(
        self, spec: ModelSpec, progress: DownloadProgress, cancel: threading.Event
    ) -> Path:
        revision = spec.revision or "main"
        progress(0.0, message=f"contacting {self.client.base_url}")
        remotes = [self.client.head(spec.source, revision, name, spec.id) for name in spec.files]
        commit = remotes[0].commit or spec.revision
        if commit and all(r.commit == commit for r in remotes) and revision == "main":
            # Pin the rest of the download to the commit the first file resolved to.
            remotes = [
                msgspec.structs.replace(r, url=r.url.replace("/resolve/main/", f"/resolve/{commit}/"))
                for r in remotes
            ]
        remotes = [_with_pinned_digest(r, spec) for r in remotes]
        staging = self.staging_dir(spec.id)
        total_bytes = sum(r.size_bytes or 0 for r in remotes)
        self.store.ensure_room(2 * total_bytes)  # the staged files, then their installed copy
        meter = _Meter(total_bytes, progress)
        for remote in remotes:
            meter.file = remote.name
            self.client.fetch(remote, staging / remote.name, spec.id, meter.add, cancel)
        source = ModelSource(
            hub_url=self.client.base_url, repo=spec.source, commit=commit, downloaded_at_s=time.time()
        )
        (staging / SOURCE_NAME).write_bytes(msgspec.json.encode(source))
        progress(meter.fraction(), message="verifying and installing")
        sources = {name: [staging / name] for name in [*spec.files, SOURCE_NAME]}
        try:
            self.store.install(spec, sources)
        except errors.InvalidParams as exc:  # a pinned digest didn't match: the files are damaged
            shutil.rmtree(staging, ignore_errors=True)
            raise errors.DownloadFailed(exc.message, model_id=spec.id, reason="integrity") from exc
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()  # .downloads/, when no other download is staged
        progress(
            1.0,
            message="downloaded",
            downloaded_bytes=meter.done_bytes,
            total_bytes=meter.total_bytes,
            rate_bytes_per_s=round(meter.rate_bytes_per_s),
        )
        log.info("model downloaded", extra={"model_id": spec.id, "commit": commit, "bytes": meter.done_bytes})
        return self.store.resolve_path(spec)


def _with_pinned_digest(remote: RemoteFile, spec: ModelSpec) -> RemoteFile:
    """Prefer the registry's digest: the hub's applies to LFS files only."""
    pinned = spec.sha256.get(remote.name)
    return msgspec.structs.replace(remote, sha256=pinned) if pinned else remote


class _Meter:
    """Turns byte counts into progress reports with bytes, total and rate (over the last few seconds)."""

    WINDOW_S = 3.0

    def __init__(self, total_bytes: int, progress: DownloadProgress) -> None:
        self.total_bytes = total_bytes
        self.done_bytes = 0
        self.file = ""
        self._progress = progress
        self.rate_bytes_per_s = 0.0
        self._samples: deque[tuple[float, int]] = deque()

    def fraction(self) -> float:
        return min(self.done_bytes / self.total_bytes, 0.99) if self.total_bytes else 0.0

    def add(self, count: int) -> None:
        """``count`` more bytes (the first call may be a resumed part: it sets the base, not the rate)."""
        self.done_bytes += count
        now_s = time.monotonic()
        self._samples.append((now_s, self.done_bytes))
        while len(self._samples) > 2 and now_s - self._samples[1][0] >= self.WINDOW_S:
            self._samples.popleft()
        first_s, first_bytes = self._samples[0]
        if now_s > first_s:
            self.rate_bytes_per_s = max(0.0, (self.done_bytes - first_bytes) / (now_s - first_s))
        rate = self.rate_bytes_per_s
        self._progress(
            self.fraction(),
            message=f"downloading {self.file}: {_mb(self.done_bytes)} of {_mb(self.total_bytes)} "
            f"at {_mb(rate)}/s",
            downloaded_bytes=self.done_bytes,
            total_bytes=self.total_bytes,
            rate_bytes_per_s=round(rate),
        )


def _mb(count: float) -> str:
    return f"{count / 1e6:,.1f} MB"


def _tree_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
