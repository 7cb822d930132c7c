"""Model downloads over HTTP(S) from the Hugging Face hub (or a mirror), with resume and integrity checks.

Blocking code for worker threads (stdlib ``urllib`` only, so the core stays light). File metadata comes
from a ``HEAD`` on ``{base}/{repo}/resolve/{revision}/{file}`` without following the redirect, as
huggingface_hub does: ``X-Repo-Commit`` (the commit), ``X-Linked-Size`` / ``Content-Length`` (the size) and,
for LFS files, ``X-Linked-Etag`` (the SHA-256). Bodies are fetched with ``Range`` to resume a ``.part``
file kept beside a small JSON note of what it is part of, hashed as they arrive, and checked against the
size and digest before ``ModelStore.install`` moves them into the cache.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import msgspec

from .. import __version__, errors

log = logging.getLogger(__name__)

DEFAULT_HUB_URL = "https://huggingface.co"
_CHUNK_BYTES = 256 << 10
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RETRIES = 4
"""Resumed attempts per file after a dropped connection, before giving up."""


def hub_url() -> str:
    """The hub base URL: ``$ASRPRO_HUB_URL`` (a mirror) or ``https://huggingface.co``."""
    return (os.environ.get("ASRPRO_HUB_URL") or DEFAULT_HUB_URL).rstrip("/")


def offline_mode() -> bool:
    """``$ASRPRO_OFFLINE`` (1/true/yes): never touch the network (like ``HF_HUB_OFFLINE``)."""
    return os.environ.get("ASRPRO_OFFLINE", "").lower() in ("1", "true", "yes")


class RemoteFile(msgspec.Struct, frozen=True, kw_only=True):
    """One file of a model on the hub, as its ``HEAD`` describes it."""

    name: str
    url: str
    commit: str | None
    """The commit the revision resolved to (``X-Repo-Commit``)."""
    size_bytes: int | None
    sha256: str | None
    """Known only for LFS files (``X-Linked-Etag``)."""


class _PartNote(msgspec.Struct, frozen=True):
    """Written beside ``<file>.part``: a partial file is resumed only if it belongs to the same content."""

    url: str
    commit: str | None
    size_bytes: int | None
    sha256: str | None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class HubClient:
    """HTTP access to one hub (or mirror). ``head_timeout_s`` is short so an offline machine fails fast."""

    def __init__(
        self, base_url: str | None = None, *, head_timeout_s: float = 5.0, read_timeout_s: float = 30.0
    ) -> None:
        self.base_url = (base_url or hub_url()).rstrip("/")
        self.head_timeout_s = head_timeout_s
        self.read_timeout_s = read_timeout_s
        self._headers = {"User-Agent": f"asrpro-rpc/{__version__}", "Accept-Encoding": "identity"}
        if token := os.environ.get("HF_TOKEN"):
            self._headers["Authorization"] = f"Bearer {token}"
        self._head_opener = urllib.request.build_opener(_NoRedirect)

    def file_url(self, repo: str, revision: str, name: str) -> str:
        quoted = urllib.parse.quote(name)
        return f"{self.base_url}/{repo}/resolve/{urllib.parse.quote(revision, safe='')}/{quoted}"

    def head(self, repo: str, revision: str, name: str, model_id: str) -> RemoteFile:
        """Metadata of one file; raises errors.DownloadFailed (``reason`` offline, not_found or http)."""
        url = self.file_url(repo, revision, name)
        if offline_mode():
            raise _offline(OSError("ASRPRO_OFFLINE is set: downloads are off"), url, model_id)
        request = urllib.request.Request(url, method="HEAD", headers=self._headers)
        try:
            response = self._head_opener.open(request, timeout=self.head_timeout_s)
        except urllib.error.HTTPError as exc:
            if exc.code not in (301, 302, 303, 307, 308):
                raise _http_error(exc, url, model_id) from exc
            response = exc  # an LFS file redirects to a CDN; the hub's own headers are what we need
        except (urllib.error.URLError, OSError) as exc:
            raise _offline(exc, url, model_id) from exc
        with response:
            headers = response.headers
            size = headers.get("X-Linked-Size") or headers.get("Content-Length")
            etag = (headers.get("X-Linked-Etag") or headers.get("ETag") or "").removeprefix("W/").strip('"')
            return RemoteFile(
                name=name,
                url=url,
                commit=headers.get("X-Repo-Commit"),
                size_bytes=int(size) if size and size.isdigit() else None,
                sha256=etag if _SHA256.fullmatch(etag) else None,
            )

    def fetch(
        self,
        remote: RemoteFile,
        target: Path,
        model_id: str,
        on_bytes: Callable[[int], None],
        cancel: threading.Event,
    ) -> Path:
        """Download ``remote`` into ``target`` (resuming ``target.part``); verify size and SHA-256.

        ``on_bytes(n)`` gets each chunk's length (the bytes resumed first; a negative count on a restart).

        Raises:
            errors.DownloadFailed: offline, HTTP error, or the file is damaged (``reason`` integrity).
            errors.RequestCancelled: ``cancel`` was set (the part file is kept for a later resume).
        """
        note_path = target.with_name(target.name + ".part.json")
        note = _PartNote(remote.url, remote.commit, remote.size_bytes, remote.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        part = _Part(target.with_name(target.name + ".part"), resume=_read_note(note_path) == note)
        note_path.write_bytes(msgspec.json.encode(note))
        if part.size_bytes:
            on_bytes(part.size_bytes)
        complete = part.size_bytes > 0 and part.size_bytes == remote.size_bytes
        failures = 0
        while not complete:
            try:
                complete = self._get(remote, part, on_bytes, cancel, model_id)
            except (OSError, http.client.HTTPException) as exc:  # dropped: resume from what is on disk
                failures += 1
                if failures > _RETRIES:
                    raise _offline(exc, remote.url, model_id) from exc
                log.warning("download interrupted; resuming", extra={"url": remote.url, "error": repr(exc)})
                time.sleep(min(2.0**failures / 8, 2.0))
        _verify(part, remote, model_id)
        os.replace(part.path, target)
        note_path.unlink(missing_ok=True)
        return target

    def _get(
        self,
        remote: RemoteFile,
        part: _Part,
        on_bytes: Callable[[int], None],
        cancel: threading.Event,
        model_id: str,
    ) -> bool:
        """One GET from the end of ``part``; True once the whole body has arrived."""
        headers = dict(self._headers)
        if part.size_bytes:
            headers["Range"] = f"bytes={part.size_bytes}-"
        request = urllib.request.Request(remote.url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=self.read_timeout_s)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and part.size_bytes and part.size_bytes == remote.size_bytes:
                return True
            raise _http_error(exc, remote.url, model_id) from exc
        except urllib.error.URLError as exc:
            raise _offline(exc, remote.url, model_id) from exc
        with response:
            if part.size_bytes and response.status != 206:
                log.info("server ignored Range; downloading from the start", extra={"url": remote.url})
                on_bytes(-part.size_bytes)
                part.reset()
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            received = 0
            with open(part.path, "ab") as out:
                while chunk := response.read1(_CHUNK_BYTES):
                    if cancel.is_set():
                        raise errors.RequestCancelled(
                            f"Download of {model_id!r} cancelled; it resumes where it stopped next time.",
                            model_id=model_id,
                        )
                    out.write(chunk)
                    part.add(chunk)
                    received += len(chunk)
                    on_bytes(len(chunk))
        if expected is not None and received < expected:
            raise http.client.IncompleteRead(b"", expected - received)
        return True


class _Part:
    """A ``.part`` file and the running SHA-256 of its contents."""

    def __init__(self, path: Path, *, resume: bool) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.size_bytes = 0
        if not resume:
            path.unlink(missing_ok=True)
        elif path.exists():
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    self.add(chunk)

    def add(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size_bytes += len(chunk)

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)
        self.digest, self.size_bytes = hashlib.sha256(), 0


def _read_note(path: Path) -> _PartNote | None:
    try:
        return msgspec.json.decode(path.read_bytes(), type=_PartNote)
    except (OSError, msgspec.DecodeError):
        return None


def _verify(part: _Part, remote: RemoteFile, model_id: str) -> None:
    size, sha256 = part.size_bytes, part.digest.hexdigest()
    problem = None
    if remote.size_bytes is not None and size != remote.size_bytes:
        problem = f"{size:,} bytes arrived, the server announced {remote.size_bytes:,}"
    elif remote.sha256 is not None and sha256 != remote.sha256:
        problem = f"SHA-256 {sha256}, expected {remote.sha256}"
    if problem is None:
        return
    part.reset()
    raise errors.DownloadFailed(
        f"{remote.name} of model {model_id!r} arrived damaged ({problem}); it was discarded. "
        "Try again; if it keeps happening, the mirror may be serving bad files.",
        model_id=model_id,
        reason="integrity",
        url=remote.url,
    )


def _offline(exc: BaseException, url: str, model_id: str) -> errors.DownloadFailed:
    reason = getattr(exc, "reason", exc)
    host = urllib.parse.urlsplit(url).netloc
    timed_out = isinstance(reason, socket.timeout | TimeoutError)
    what = "timed out" if timed_out else f"failed ({reason})"
    return errors.DownloadFailed(
        f"Can't download model {model_id!r}: the connection to {host} {what}. Check the network (or set "
        "ASRPRO_HUB_URL to a reachable mirror), or copy the model's files from another machine with "
        f"`asrpro models import DIR --model {model_id}`.",
        model_id=model_id,
        reason="offline",
        url=url,
    )


def _http_error(exc: urllib.error.HTTPError, url: str, model_id: str) -> errors.DownloadFailed:
    if exc.code in (401, 403):
        hint = " The repository may be gated: set HF_TOKEN to an access token that may read it."
    elif exc.code == 404:
        hint = " The file or revision doesn't exist there (a mirror may not carry it)."
    else:
        hint = " The server may be busy; try again later."
    return errors.DownloadFailed(
        f"Can't download model {model_id!r}: {url} answered HTTP {exc.code} {exc.reason}.{hint}",
        model_id=model_id,
        reason="not_found" if exc.code == 404 else "http",
        url=url,
        status=exc.code,
    )
