"""Multipart uploads streamed to a private temp file, the size limit enforced while reading.

The body is parsed as it arrives (python-multipart's streaming parser): text fields are kept (bounded in
count and size), the ``file`` part goes to a 0600 file from ``tempfile.mkstemp`` (in the sidecar's private
scratch dir), written in ~1 MiB batches from a worker thread. Past the limit, nothing more is written and the
rest of the body is read and dropped (up to a bound) so the client gets its 413 instead of a reset
connection, which the OpenAI SDKs would retry. The file is registered with the guard, which removes it when
the request ends however it ends. The content is then probed with PyAV, not trusted by its extension.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import ClientDisconnect, Request

from .errors import HttpError
from .guard import register_temp_file

MAX_FIELDS = 64
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS_TOTAL_BYTES = 1024 * 1024
_WRITE_BATCH_BYTES = 1024 * 1024
_MIN_DRAIN_BYTES = 64 * 1024 * 1024
FILE_FIELD = "file"


@dataclass
class UploadedForm:
    """A parsed form: text fields (a name may repeat) and the uploaded file on disk."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    file_path: Path | None = None
    filename: str | None = None
    content_type: str | None = None
    size_bytes: int = 0


class _TooLarge(Exception):
    pass


class _Parser:
    """python-multipart callbacks → ``UploadedForm``; file bytes are batched for a worker thread."""

    def __init__(self, form: UploadedForm, open_file: Callable[[], None], max_file_bytes: int) -> None:
        self.form = form
        self._open_file = open_file
        self.max_file_bytes = max_file_bytes
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._name: str | None = None
        self._in_file = False
        self._value = bytearray()
        self._fields_bytes = 0
        self._field_count = 0

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self._headers, self._name, self._in_file, self._value = {}, None, False, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise HttpError(400, "A form part has no name (Content-Disposition).", code="invalid_form")
        self._name = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options or self._name == FILE_FIELD:
            if self._name != FILE_FIELD:
                raise HttpError(
                    400,
                    f"Unexpected file field {self._name!r}: send the audio as `file`.",
                    code="invalid_form",
                )
            if self.form.file_path is not None:
                raise HttpError(400, "Send one file per request.", code="invalid_form", param=FILE_FIELD)
            self._in_file = True
            self.form.filename = options.get(b"filename", b"").decode("utf-8", "replace") or None
            content_type = self._headers.get(b"content-type")
            self.form.content_type = content_type.decode("latin-1") if content_type else None
            self._open_file()
            return
        self._field_count += 1
        if self._field_count > MAX_FIELDS:
            raise HttpError(400, f"Too many form fields (at most {MAX_FIELDS}).", code="invalid_form")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        if self._in_file:
            self.form.size_bytes += size
            if self.form.size_bytes > self.max_file_bytes:
                raise _TooLarge
            self.pending.append(data[start:end])
            self.pending_bytes += size
            return
        self._fields_bytes += size
        if len(self._value) + size > MAX_FIELD_BYTES or self._fields_bytes > MAX_FIELDS_TOTAL_BYTES:
            raise HttpError(
                400, f"Form field {self._name!r} is too long.", code="invalid_form", param=self._name
            )
        self._value += data[start:end]

    def on_part_end(self) -> None:
        if not self._in_file and self._name is not None:
            self.form.fields.setdefault(self._name, []).append(self._value.decode("utf-8", "replace"))
        self._in_file = False


def _too_large(max_file_bytes: int) -> HttpError:
    limit_mb = max_file_bytes / (1024 * 1024)
    return HttpError(
        413,
        f"The file is larger than this server's upload limit of {limit_mb:g} MB (server.max_upload_mb). "
        "Send a shorter or more compressed file, or raise the limit.",
        code="file_too_large",
        param=FILE_FIELD,
    )


async def _drain(chunks: AsyncIterator[bytes], limit_bytes: int) -> None:
    """Read and drop the rest of the body (bounded), so the client reads our answer."""
    dropped = 0
    try:
        async for chunk in chunks:
            dropped += len(chunk)
            if dropped > limit_bytes:
                return
    except ClientDisconnect:
        return


async def read_upload(request: Request, max_file_bytes: int) -> UploadedForm:
    """Parse the multipart body of ``request``; the file lands in a registered 0600 temp file."""
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        raise HttpError(
            415,
            "Send the request as multipart/form-data with the audio in a `file` field.",
            code="unsupported_content_type",
            param=FILE_FIELD,
        )
    if b"boundary" not in params:
        raise HttpError(400, "The multipart body has no boundary.", code="invalid_form")
    drain_limit = max(4 * max_file_bytes, _MIN_DRAIN_BYTES)
    chunks = request.stream()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_file_bytes + MAX_FIELDS_TOTAL_BYTES + 65536:
        if int(declared) <= drain_limit:
            await _drain(chunks, drain_limit)
        raise _too_large(max_file_bytes)

    form = UploadedForm()
    handle: IO[bytes] | None = None

    def open_file() -> None:
        nonlocal handle
        descriptor, name = tempfile.mkstemp(prefix="asrpro-upload-", suffix=_suffix(form.filename))
        form.file_path = Path(name)
        register_temp_file(request.scope, form.file_path)
        handle = os.fdopen(descriptor, "wb")

    parser = _Parser(form, open_file, max_file_bytes)
    multipart = MultipartParser(params[b"boundary"], parser.callbacks())
    try:
        async for chunk in chunks:
            multipart.write(chunk)
            if parser.pending_bytes >= _WRITE_BATCH_BYTES:
                await _flush(parser, handle)
        if multipart.state != MultipartState.END:
            raise HttpError(
                400,
                "The multipart body ended before its closing boundary: the upload is incomplete.",
                code="incomplete_form",
            )
        await _flush(parser, handle)
        if handle is not None:
            await anyio.to_thread.run_sync(handle.flush)  # a full disk fails here, not at close
    except _TooLarge:
        await _drain(chunks, drain_limit)
        raise _too_large(max_file_bytes) from None
    except HttpError:
        await _drain(chunks, drain_limit)
        raise
    except MultipartParseError as exc:
        raise HttpError(400, f"The multipart body is malformed: {exc}", code="invalid_form") from None
    except ClientDisconnect:
        raise HttpError(
            400, "The client disconnected during the upload.", code="client_disconnected"
        ) from None
    finally:
        if handle is not None:
            with contextlib.suppress(OSError):  # a full disk was reported by the flush above
                handle.close()
    return form


async def _flush(parser: _Parser, handle: IO[bytes] | None) -> None:
    if not parser.pending or handle is None:
        parser.pending.clear()
        parser.pending_bytes = 0
        return
    batch, parser.pending, parser.pending_bytes = b"".join(parser.pending), [], 0
    await anyio.to_thread.run_sync(handle.write, batch)


def _suffix(filename: str | None) -> str:
    """Keep a short, safe extension (FFmpeg's probing may use it as a hint)."""
    extension = Path(filename or "").suffix.lower()
    return extension if 1 < len(extension) <= 8 and extension[1:].isalnum() else ""


def probe_media(path: Path, filename: str | None = None) -> None:
    """Raise 415 unless ``path`` holds audio PyAV can read (a system ffmpeg gets the benefit of the doubt);
    messages name the client's ``filename``, never the temp path."""
    import av

    name = f" {filename[:200]!r}" if filename else ""

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise HttpError(
                    415,
                    f"The uploaded file{name} has no audio track.",
                    code="no_audio_stream",
                    param=FILE_FIELD,
                )
    except av.FFmpegError:
        if shutil.which("ffmpeg") is not None:
            return
        raise HttpError(
            415,
            f"The uploaded file{name} is not an audio or video format this server can read "
            "(flac, mp3, mp4, mpeg, mpga, m4a, ogg, opus, wav, webm and more are).",
            code="unsupported_media_type",
            param=FILE_FIELD,
        ) from None
