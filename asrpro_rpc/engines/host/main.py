"""Engine host process: ``python -m asrpro_rpc.engines.host.main``, driven by ``host_client.EngineHost``.

Frames arrive on stdin and leave on a private duplicate of the original stdout; fd 1 itself points at
stderr (the sidecar's log), so prints and C-library output can never corrupt the frames. The main thread
reads commands; a load and every transcription run in their own threads, so ``Cancel`` is always heard.
Background transcriptions pause between segments while interactive ones run (``priority``).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from typing import Any

import msgspec

from asrpro_rpc import errors
from asrpro_rpc.audio.pcm import samples_from_bytes
from asrpro_rpc.engines.base import Engine
from asrpro_rpc.engines.host import frames as hp
from asrpro_rpc.engines.host.allocator import AllocatorPolicy
from asrpro_rpc.engines.host.priority import PriorityGate, priority_of
from asrpro_rpc.transcripts.types import Segment

log = logging.getLogger("asrpro_rpc.engines.host")

PROGRESS_INTERVAL_S = 0.1
"""Least time between two progress frames of one request (1.0 is always sent)."""
SAMPLE_RATE_HZ = 16000
"""The rate engines take; ``TranscribeAudio`` must already be at it."""


class EngineHostServer:
    """Runs requests from ``reader`` against one engine and answers on ``writer``."""

    def __init__(self, reader: hp.FrameReader, writer: hp.FrameWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._write_lock = threading.Lock()
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        self._cancels: dict[int, threading.Event] = {}
        self._priority = PriorityGate()
        self._allocator = AllocatorPolicy()

    def serve(self) -> None:
        """Handle commands until ``Shutdown`` or the end of stdin (the sidecar went away)."""
        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()
        while True:
            message = self._reader.read()
            if message is None or isinstance(message, hp.Shutdown):
                break
            if isinstance(message, hp.Cancel):
                event = self._cancels.get(message.request_id)
                if event is not None:
                    event.set()
            elif isinstance(message, hp.Transcribe | hp.TranscribeAudio):
                self._cancels[message.request_id] = threading.Event()
                self._spawn(self._transcribe, message)
            else:
                self._spawn(self._load, message)

    def _beat(self) -> None:
        """The sidecar's watchdog kills a child whose heartbeats stop (SIGSTOP, a deadlock, a hung driver)."""
        while True:
            self._send(hp.Heartbeat())
            time.sleep(hp.HEARTBEAT_INTERVAL_S)

    def _spawn(self, target: Any, message: Any) -> None:
        name = f"{type(message).__name__.lower()}-{message.request_id}"
        threading.Thread(target=target, args=(message,), name=name, daemon=True).start()

    def _send(self, message: msgspec.Struct) -> None:
        with self._write_lock:
            self._writer.write(message)

    def _load(self, message: hp.Load) -> None:
        from asrpro_rpc.engines import create_engine

        def progress(fraction: float, text: str) -> None:
            self._send(hp.Progress(message.request_id, fraction, "loading_model", text))

        with self._engine_lock:
            try:
                if self._engine is not None:
                    self._engine.unload()
                    self._engine = None
                engine = create_engine(message.spec.engine)
                info = engine.load(message.spec, progress)
            except Exception as exc:
                self._send(_load_failed(message.request_id, _as_asrpro_error(exc, errors.ModelLoadFailed)))
                return  # (no local keeps the exception: a half-loaded model would outlive it in a cycle)
            self._engine = engine
        self._send(hp.Loaded(message.request_id, info))

    def _transcribe(self, message: hp.Transcribe | hp.TranscribeAudio) -> None:
        request_id = message.request_id
        file = isinstance(message, hp.Transcribe)
        self._allocator.started(file=file)
        try:
            transcript = self._run_transcription(message, self._cancels[request_id])
        except Exception as exc:
            # No local may keep the exception: its traceback holds this frame, and the cycle would keep
            # the audio window and the engine's buffers alive until a full garbage collection.
            replies: list[msgspec.Struct] = [_failed(request_id, _as_asrpro_error(exc, errors.InternalError))]
        else:
            replies = [hp.Progress(request_id, 1.0, "transcribing"), hp.Result(request_id, transcript)]
        finally:
            self._cancels.pop(request_id, None)
        self._allocator.finished(file=file)
        for reply in replies:
            self._send(reply)

    def _run_transcription(
        self, message: hp.Transcribe | hp.TranscribeAudio, cancelled: threading.Event
    ) -> Any:
        engine = self._engine
        if engine is None:
            raise errors.InternalError("The engine host has no model loaded.")
        request_id = message.request_id
        from asrpro_rpc.engines.chunking import Audio

        if isinstance(message, hp.TranscribeAudio):
            audio, stream = Audio.from_array(_samples(message)), None
        else:
            from asrpro_rpc.audio.decode import open_audio

            self._send(hp.Progress(request_id, 0.0, "decoding"))
            stream = open_audio(message.path, SAMPLE_RATE_HZ, max_duration_s=message.max_duration_s)
            audio = Audio(stream, stream.duration_s)
        last_sent_s = 0.0

        def on_progress(fraction: float) -> None:
            nonlocal last_sent_s
            now_s = time.monotonic()
            if now_s - last_sent_s >= PROGRESS_INTERVAL_S and fraction < 1.0:
                last_sent_s = now_s
                self._send(hp.Progress(request_id, fraction, "transcribing"))

        def on_segment(segment: Segment) -> None:
            self._send(hp.SegmentDone(request_id, segment))

        requested = message.options.priority
        if requested is None and isinstance(message, hp.TranscribeAudio):
            requested = "interactive"  # a stream's decodes
        priority = priority_of(requested, audio.expected_s)
        try:
            if cancelled.is_set():
                raise errors.RequestCancelled("The transcription was cancelled.")
            if priority == "background":
                is_cancelled = functools.partial(self._priority.checkpoint, cancelled)
                return engine.transcribe(audio, message.options, on_progress, is_cancelled, on_segment)
            with self._priority.interactive():
                return engine.transcribe(audio, message.options, on_progress, cancelled.is_set, on_segment)
        finally:
            if stream is not None:
                stream.close()


def _samples(message: hp.TranscribeAudio) -> Any:
    """The message's samples as the 16 kHz float32 array engines take."""
    if message.sample_rate_hz != SAMPLE_RATE_HZ:
        raise errors.InvalidParams(
            f"In-memory audio must be {SAMPLE_RATE_HZ} Hz (got {message.sample_rate_hz} Hz).",
            sample_rate_hz=message.sample_rate_hz,
        )
    try:
        return samples_from_bytes(message.pcm, message.encoding)
    except ValueError as exc:
        raise errors.InvalidParams(f"Bad in-memory audio: {exc}.") from exc


def _failed(request_id: int, error: errors.AsrproError) -> hp.Failed:
    return hp.Failed(request_id, error.kind, error.message, error.data)


def _load_failed(request_id: int, error: errors.AsrproError) -> hp.LoadFailed:
    return hp.LoadFailed(request_id, error.kind, error.message, error.data)


def _as_asrpro_error(exc: Exception, fallback: type[errors.AsrproError]) -> errors.AsrproError:
    if isinstance(exc, errors.AsrproError):
        return exc
    if isinstance(exc, MemoryError):
        return errors.OutOfMemory("The engine ran out of memory; try a smaller model or compute type.")
    log.exception("engine request failed")
    return fallback(f"{type(exc).__name__}: {exc}")


def main() -> None:
    from asrpro_rpc.system.log import configure_logging
    from asrpro_rpc.system.process import guard_stdout

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    protocol_fd = guard_stdout()
    configure_logging()
    writer = hp.FrameWriter(os.fdopen(protocol_fd, "wb"))
    reader = hp.FrameReader(sys.stdin.buffer, hp.ToChild)
    EngineHostServer(reader, writer).serve()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: daemon threads may still be inside CTranslate2


if __name__ == "__main__":
    main()
