"""The sidecar's side of the engine host: spawns the child, routes its replies, survives its death.

All methods block and are thread-safe; call them from worker threads. One child holds at most one model;
ending the child (``close``) is the real unload. If the child dies, every waiting request raises
``EngineCrashed`` and the host stays dead (``alive`` is False): start a new ``EngineHost`` to reload. The
child sends a heartbeat every second; a watchdog kills one that has been silent for ``watchdog_s`` (frozen:
SIGSTOP, a deadlock, a hung driver), so its requests end instead of waiting forever.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping

import msgspec

from asrpro_rpc import errors
from asrpro_rpc.audio.pcm import Encoding
from asrpro_rpc.engines.base import LoadInfo, LoadSpec, SegmentSink
from asrpro_rpc.engines.host import frames as hp
from asrpro_rpc.engines.host.allocator import FILE_MMAP_THRESHOLD
from asrpro_rpc.transcripts.types import TranscribeOptions, Transcript

log = logging.getLogger(__name__)

_POLL_S = 0.05
"""How often a waiting transcription looks at its cancel event."""
_EXIT_WAIT_S = 5.0
"""How long the reader waits for the child's exit status after its stream ends."""
STALLED_S = 3.0
"""Silence (no frame, not even a heartbeat) after which the child counts as stalled (``stalled_s``)."""
WATCHDOG_ENV = "ASRPRO_ENGINE_WATCHDOG_S"
DEFAULT_WATCHDOG_S = 30.0
"""Silence after which a stalled child is killed (``ASRPRO_ENGINE_WATCHDOG_S`` overrides): long enough for
any C call that holds the GIL (heartbeats come from a Python thread), short enough that a frozen engine's
requests fail within a minute."""

_Reply = hp.ToParent | errors.AsrproError

CHILD_ENV_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "MALLOC_MMAP_THRESHOLD_": str(FILE_MMAP_THRESHOLD),
    "MALLOC_ARENA_MAX": "2",
}
"""Set in the child unless the environment says otherwise. It never reaches the hub. glibc's malloc maps
blocks over 8 MiB (an engine's feature matrices, decoded windows) straight from the OS and returns them
on free; left dynamic, its threshold rises after the first such free, later ones come from the heap, and
an engine's peak memory drifts by 100-150 MB with its allocation history (measured 10/30/60-minute
files: 430-510 MB beyond the samples, 370-395 MB with this; 64 MiB drifted too: 501/589/566 MB). While only
a stream's decodes run the child raises it (``allocator.AllocatorPolicy``). Two malloc arenas: each new
request thread otherwise gets an arena of its own, and batched decoding's buffers left in them raised the
peak over twelve cancelled hour-long files from 385 to 478 MB (423 -> 440 MB with two)."""


class EngineHost:
    """One engine host child process. ``start`` it, ``load`` a model, ``transcribe`` files, ``close``."""

    def __init__(
        self,
        *,
        cancel_grace_s: float = 15.0,
        env: Mapping[str, str] | None = None,
        command: list[str] | None = None,
        watchdog_s: float | None = None,
    ) -> None:
        self.cancel_grace_s = cancel_grace_s
        self.watchdog_s = watchdog_s or float(os.environ.get(WATCHDOG_ENV) or DEFAULT_WATCHDOG_S)
        self._last_frame_s = time.monotonic()
        self._env = env
        self._command = command or [sys.executable, "-m", "asrpro_rpc.engines.host.main"]
        self._proc: subprocess.Popen[bytes] | None = None
        self._writer: hp.FrameWriter | None = None
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._waiting: dict[int, queue.SimpleQueue[_Reply]] = {}
        self._ids = itertools.count(1)
        self._reader_thread: threading.Thread | None = None
        self._dead_reason: str | None = None
        self._closing = False
        self._killed_for_cancel = False
        """Set when this host was killed to end a cancelled request: its other requests did nothing wrong."""

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Spawn the child (stderr is inherited: its logs join the sidecar's log)."""
        if self._proc is not None:
            raise RuntimeError("EngineHost already started")
        env = dict(os.environ if self._env is None else self._env)
        for name, value in CHILD_ENV_DEFAULTS.items():
            env.setdefault(name, value)
        self._proc = subprocess.Popen(
            self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._writer = hp.FrameWriter(self._proc.stdin)
        reader = hp.FrameReader(self._proc.stdout, hp.ToParent)
        self._reader_thread = threading.Thread(
            target=self._read_loop, args=(reader,), name=f"engine-host-{self._proc.pid}", daemon=True
        )
        self._reader_thread.start()
        self._last_frame_s = time.monotonic()
        threading.Thread(target=self._watch, name=f"engine-watchdog-{self._proc.pid}", daemon=True).start()
        log.info("engine host started", extra={"pid": self._proc.pid})

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._dead_reason is None and self._proc.poll() is None

    @property
    def stalled_s(self) -> float | None:
        """How long a live child has been silent, once that is over ``STALLED_S``; else None."""
        silent_s = time.monotonic() - self._last_frame_s
        return round(silent_s, 1) if self.alive and silent_s > STALLED_S else None

    def rss_bytes(self) -> int:
        """Resident memory of the child and its descendants (0 once it has ended)."""
        import psutil

        if not self.alive or self._proc is None:
            return 0
        try:
            root = psutil.Process(self._proc.pid)
            return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            return 0

    def close(self, timeout_s: float = 2.0) -> None:
        """Ask the child to exit, then terminate, then kill; always reaps it. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        self._closing = True
        if proc.poll() is None:
            try:
                self._send(hp.Shutdown())
            except errors.AsrproError:
                pass
            for stop in (proc.terminate, proc.kill):
                try:
                    proc.wait(timeout_s)
                    break
                except subprocess.TimeoutExpired:
                    stop()
        proc.wait()
        if self._reader_thread is not None:
            self._reader_thread.join(timeout_s)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    # --- requests --------------------------------------------------------------------------------
    def load(self, spec: LoadSpec, on_progress: Callable[[float, str], None]) -> LoadInfo:
        """Load ``spec`` in the child; raises the child's error (``ModelLoadFailed`` …) rebuilt here."""
        request_id, replies = self._begin()
        try:
            self._send(hp.Load(request_id, spec))
            while True:
                reply = replies.get()
                if isinstance(reply, hp.Progress):
                    on_progress(reply.fraction, reply.message)
                elif isinstance(reply, hp.Loaded):
                    return reply.info
                else:
                    raise _as_error(reply)
        finally:
            self._end(request_id)

    def transcribe(
        self,
        path: str,
        options: TranscribeOptions,
        on_progress: Callable[[float], None],
        cancel: threading.Event,
        on_segment: SegmentSink | None = None,
        max_duration_s: float | None = None,
    ) -> Transcript:
        """Transcribe the audio file at ``path``; ``cancel`` set -> ``RequestCancelled``.

        ``on_segment`` receives each segment as the engine finishes it; audio longer than
        ``max_duration_s`` is refused (``audio_unreadable``, reason ``too_long``). A child that does not stop
        within ``cancel_grace_s`` of a cancel is killed (the host is then dead; its other requests raise
        ``EngineLost``).
        """
        return self._await_transcript(
            lambda request_id: hp.Transcribe(request_id, path, options, max_duration_s),
            on_progress,
            cancel,
            on_segment,
        )

    def transcribe_audio(
        self,
        pcm: bytes,
        sample_rate_hz: int,
        encoding: Encoding,
        options: TranscribeOptions,
        cancel: threading.Event,
    ) -> Transcript:
        """Transcribe mono little-endian samples held in memory (``pcm16`` or ``f32``), as ``transcribe``."""
        return self._await_transcript(
            lambda request_id: hp.TranscribeAudio(request_id, pcm, sample_rate_hz, encoding, options),
            lambda fraction: None,
            cancel,
        )

    def _await_transcript(
        self,
        make_request: Callable[[int], msgspec.Struct],
        on_progress: Callable[[float], None],
        cancel: threading.Event,
        on_segment: SegmentSink | None = None,
    ) -> Transcript:
        started = False  # the child has reported work on this request
        try:
            request_id, replies = self._begin()
        except errors.EngineCrashed as exc:
            raise EngineLost(exc.message) from None
        try:
            self._send(make_request(request_id))
            deadline_s: float | None = None
            while True:
                if deadline_s is None and cancel.is_set():
                    deadline_s = time.monotonic() + self.cancel_grace_s
                    self._send(hp.Cancel(request_id))
                elif deadline_s is not None and time.monotonic() >= deadline_s:
                    self._killed_for_cancel = True
                    self._kill(f"a cancelled transcription did not stop within {self.cancel_grace_s:g} s")
                    raise errors.RequestCancelled(
                        "The transcription was cancelled; the engine was stopped to end it, "
                        "so the next request will reload the model."
                    )
                try:
                    reply = replies.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                started = started or isinstance(reply, hp.Progress | hp.SegmentDone)
                if isinstance(reply, hp.Progress):
                    if reply.stage == "transcribing":
                        on_progress(reply.fraction)
                elif isinstance(reply, hp.SegmentDone):
                    if on_segment is not None and deadline_s is None:
                        on_segment(reply.segment)
                elif deadline_s is not None:
                    raise errors.RequestCancelled("The transcription was cancelled.")
                elif isinstance(reply, hp.Result):
                    return reply.transcript
                else:
                    raise _as_error(reply)
        except errors.EngineCrashed as exc:
            if started and not self._killed_for_cancel:
                raise
            raise EngineLost(exc.message) from None
        finally:
            self._end(request_id)

    # --- plumbing --------------------------------------------------------------------------------
    def _begin(self) -> tuple[int, queue.SimpleQueue[_Reply]]:
        replies: queue.SimpleQueue[_Reply] = queue.SimpleQueue()
        with self._lock:
            self._raise_if_dead()
            request_id = next(self._ids)
            self._waiting[request_id] = replies
        return request_id, replies

    def _end(self, request_id: int) -> None:
        with self._lock:
            self._waiting.pop(request_id, None)

    def _raise_if_dead(self) -> None:
        if self._proc is None or self._writer is None:
            raise RuntimeError("EngineHost.start() was not called")
        if self._dead_reason is not None:
            raise self._death_error()

    def _send(self, message: msgspec.Struct) -> None:
        with self._write_lock:
            self._raise_if_dead()
            assert self._writer is not None
            try:
                self._writer.write(message)
            except (BrokenPipeError, ValueError, OSError):
                pass  # the reader thread sees the child's end and fails every waiting request

    def _kill(self, reason: str) -> None:
        with self._lock:
            if self._dead_reason is None:
                self._dead_reason = reason
        if self._proc is not None and self._proc.poll() is None:
            log.warning("killing engine host: %s", reason, extra={"pid": self._proc.pid})
            self._proc.kill()

    def _death_error(self) -> errors.AsrproError:
        if self._closing:
            return errors.ShuttingDown("The engine was closed.")
        return errors.EngineCrashed(
            f"The engine process ended ({self._dead_reason}); the next request will reload the model."
        )

    def _watch(self) -> None:
        """Kill the child once it has sent nothing for ``watchdog_s`` (its requests then fail or retry)."""
        while self.alive and not self._closing:
            silent_s = time.monotonic() - self._last_frame_s
            if silent_s >= self.watchdog_s:
                self._kill(f"it stopped responding: no heartbeat for {silent_s:.0f} s")
                return
            time.sleep(min(_POLL_S * 10, self.watchdog_s / 10))

    def _read_loop(self, reader: hp.FrameReader) -> None:
        try:
            while (message := reader.read()) is not None:
                self._last_frame_s = time.monotonic()
                if isinstance(message, hp.Heartbeat):
                    continue
                with self._lock:
                    replies = self._waiting.get(message.request_id)
                if replies is not None:
                    replies.put(message)
        except (OSError, ValueError, msgspec.DecodeError):
            log.exception("engine host stream broken")
        assert self._proc is not None
        try:
            returncode = self._proc.wait(_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            returncode = self._proc.wait()
        with self._lock:
            if self._dead_reason is None:
                self._dead_reason = _describe_exit(returncode)
            error = self._death_error()
            waiting = list(self._waiting.values())
        if not self._closing:
            log.error("engine host died: %s", self._dead_reason, extra={"pid": self._proc.pid})
        for replies in waiting:
            replies.put(error)


class EngineLost(errors.EngineCrashed):
    """The engine ended through no fault of this request (before it started there, or killed to end another
    request's cancel): running it again on a fresh engine is safe (``ModelManager`` does, once)."""


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _as_error(reply: _Reply) -> errors.AsrproError:
    if isinstance(reply, errors.AsrproError):
        return reply
    if isinstance(reply, hp.Failed | hp.LoadFailed):
        return errors.BY_KIND.get(reply.kind, errors.InternalError)(reply.message, **reply.data)
    return errors.InternalError(f"Unexpected engine host reply: {type(reply).__name__}")
