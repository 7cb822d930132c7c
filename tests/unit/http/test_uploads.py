"""Upload handling in-process: the temp file's permissions, the limit while reading, removal by the guard."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.requests import Request

from asrpro_rpc.catalog.store import ModelStore
from asrpro_rpc.config.service import ConfigService
from asrpro_rpc.http.errors import HttpError
from asrpro_rpc.http.guard import Guard
from asrpro_rpc.http.state import ShimOptions, ShimState
from asrpro_rpc.http.uploads import read_upload
from asrpro_rpc.services.container import App

BOUNDARY = "xyzzy"


def multipart(payload: bytes, fields: dict[str, str]) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'.encode()
    return b"".join(parts) + head + payload + f"\r\n--{BOUNDARY}--\r\n".encode()


def http_scope(path: str = "/upload") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
        ],
        "query_string": b"",
    }


def receiver(body: bytes, chunk_bytes: int = 7000) -> Any:
    chunks = [body[i : i + chunk_bytes] for i in range(0, len(body), chunk_bytes)]

    async def receive() -> dict[str, Any]:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}
        await anyio.sleep_forever()
        raise AssertionError

    return receive


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """tempfile's directory for the test (the sidecar points it at its private scratch dir)."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(tmp_path / "scratch")
    os.mkdir(tempfile.tempdir)
    yield Path(tempfile.tempdir)
    tempfile.tempdir = previous


def test_upload_lands_in_a_private_file_with_the_fields(scratch: Path) -> None:
    payload = os.urandom(50_000)

    async def main() -> None:
        scope = http_scope()
        form = await read_upload(Request(scope, receiver(multipart(payload, {"model": "tiny"}))), 1 << 20)
        assert form.fields == {"model": ["tiny"]} and form.filename == "a.wav"
        assert form.file_path is not None and form.file_path.parent == scratch
        assert stat.S_IMODE(form.file_path.stat().st_mode) == 0o600
        assert form.file_path.read_bytes() == payload and form.size_bytes == len(payload)
        assert scope["state"]["asrpro_temp_files"] == [form.file_path]

    anyio.run(main)


def test_limit_enforced_while_reading_and_guard_removes_files(scratch: Path, tmp_path: Path) -> None:
    services = App(
        config=ConfigService.open(tmp_path / "config"), store=ModelStore(tmp_path / "m", tmp_path / "r")
    )
    state = ShimState(services, ShimOptions(host="127.0.0.1", port=0))
    seen: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await read_upload(Request(scope, receive), 100_000)
        except HttpError as exc:
            seen.append(exc)
            raise
        raise RuntimeError("the handler failed after the upload")

    async def send(message: Any) -> None:
        pass

    async def main() -> None:
        for size_bytes in (150_000, 60_000):  # over the limit (no Content-Length), then a failing handler
            with pytest.raises((HttpError, RuntimeError)):
                await Guard(app, state)(http_scope(), receiver(multipart(os.urandom(size_bytes), {})), send)

    anyio.run(main)
    assert isinstance(seen[0], HttpError) and seen[0].status == 413
    assert list(scratch.iterdir()) == [] and state.in_flight == 0
