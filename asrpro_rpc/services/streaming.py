"""Real-time streaming transcription: ``start`` → ``push``… → ``stop`` (or ``cancel``).

Each stream has a worker task (in this service's task group) that holds the resident model through
``ModelManager.use`` while the stream lives, feeds pushed audio through voice activity detection, re-decodes
the open utterance every ``interval_s`` of new audio (in the engine host process, audio sent as msgpack
bytes), emits ``stream.partial`` (local agreement: stable + unstable text) and ``stream.final`` per
utterance. Microphone streams open their device as the ``audio`` settings say (device, rate, channels,
resampling quality; a ``device`` param wins) and turn it into 16 kHz mono for decoding. Pushes only queue
audio and return at once. When decoding falls behind, re-decodes are skipped
(never queued) and a ``notification`` warns once; a push beyond ``max_pending_s`` of backlog is refused
with ``busy``.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, NamedTuple

import anyio
import anyio.abc
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .. import errors
from ..audio.pcm import Encoding, samples_from_bytes
from ..config.settings import AudioSettings
from ..events import NotificationMessage, Notify, StreamFinal, StreamPartial
from ..streaming.processor import DecodeKind, EndReason, Head, StreamProcessor, StreamTuning, Utterance
from ..streaming.session import LiveStream, StreamSummary
from ..streaming.vad import SAMPLE_RATE_HZ, GateTuning, SileroVad
from ..transcripts.types import EncoderWindow, Segment, Temperatures, TranscribeOptions, Word
from ..transcripts.vocabulary import Vocabulary
from .models import ModelManager, broadcast_load_progress, run_blocking
from .transcription import with_vocabulary

log = logging.getLogger(__name__)
_MICROPHONE_POLL_S = 0.05
_FAILED_KEPT = 16
_TOKENS_PER_S = 12
"""Tokens a decode may produce per second of audio (plus ``_TOKENS_BASE``): speech needs 3-6, so more is a
decode looping on a fragment (one took 1.9 s for 1 s of audio), and cutting it keeps the stream live."""
_TOKENS_BASE = 10


class StreamStartParams(TranscribeOptions, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``stream.start``: where audio comes from, the model, and the streaming policy.

    Decoding defaults favour latency (greedy, no temperature fallback); every transcription option works.
    """

    source: Literal["push", "microphone"] = "push"
    device: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    """Microphone id or name (``audio.devices``); omitted: ``audio.input_device``, else the default input."""
    model: str | None = None
    encoding: Encoding = "pcm16"
    """What ``stream.push`` carries: little-endian ``pcm16`` or ``f32`` mono samples."""
    sample_rate_hz: Literal[16000] = 16000
    interval_s: Annotated[float, msgspec.Meta(ge=0.1, le=10.0)] = 0.25
    """Re-decode the open utterance after this much new audio."""
    silence_s: Annotated[float, msgspec.Meta(ge=0.1, le=10.0)] = 0.6
    """Silence that ends an utterance (its ``stream.final``)."""
    max_buffer_s: Annotated[float, msgspec.Meta(ge=3.0, le=25.0)] = 15.0
    """Longer utterances are finalized at their last stable sentence end, keeping decodes short."""
    vad_threshold: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.5
    speech_pad_s: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.2
    """Audio kept before speech starts and after it ends (the realtime shim's ``prefix_padding_ms``)."""
    policy: Literal["dictation", "agreement"] = "dictation"
    """``dictation``: partials show local agreement's stable words; as soon as the speaker pauses the
    utterance is decoded as a final, kept as its final if nothing is said after it (the text is there at
    once on stop), and the final decode's words are the segment's (``stream.final`` ``revised`` when they
    differ from the stable ones). ``agreement``: LocalAgreement-2 alone, stable words are final."""
    beam_size: Annotated[int, msgspec.Meta(ge=1, le=20)] = 1
    """Beam of the partial re-decodes."""
    final_beam_size: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5
    """Beam of each utterance's final decode (dictation: and of the decode at a pause): 5, as
    ``transcribe.file``'s default, so that a dictation's text is as accurate as a file's of the same audio
    (greedy decodes hear "light's invocation" where a beam of 5 hears "lights in the kitchen")."""
    temperature: Temperatures = 0.0
    condition_on_previous_text: bool = False
    encoder_window: EncoderWindow = "medium"
    """Whisper's encoder window of the final decodes (and dictation's decodes at pauses): 10 s for
    utterances up to 9 s, a dictation's last sentence decoding in about half the time of ``short``'s 20 s
    (WER 0.097 → 0.101 on ``bench/encoder_window.py``'s 90 clips, beam 5, whisper-base). A sentence
    finished at a pause (dictation) is decoded again in ``short`` while the speaker goes on."""
    repetition_penalty: Annotated[float, msgspec.Meta(ge=1.0, le=2.0)] | None = 1.1
    """A beam-5 decode of a short utterance after a prompt can loop ("The low world. I'm sorry, I'm sorry,
    I'm sorry, I"); 1.1 stops that and, on 120 espeak-ng clips, moved whisper-base's WER 0.109 -> 0.104."""

    def decode_options(self) -> TranscribeOptions:
        """Partial re-decodes' options: word timestamps on (local agreement needs them), our VAD instead of
        theirs, and under ``dictation`` (whose final decodes have the last word) Whisper's encoder window
        fitted to the audio: half the time, a little less accurate. ``encoder_window`` is the finals'."""
        fields = {f: getattr(self, f) for f in TranscribeOptions.__struct_fields__}
        window = "fit" if self.policy == "dictation" else self.encoder_window
        return TranscribeOptions(
            **{**fields, "word_timestamps": True, "vad_filter": False, "encoder_window": window}
        )

    def tuning(self) -> StreamTuning:
        gate = GateTuning(threshold=self.vad_threshold, silence_s=self.silence_s)
        return StreamTuning(
            interval_s=self.interval_s,
            speech_pad_s=self.speech_pad_s,
            max_buffer_s=self.max_buffer_s,
            gate=gate,
            policy=self.policy,
        )


class StreamStartResult(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    model: str
    source: Literal["push", "microphone"]
    encoding: Encoding
    sample_rate_hz: int
    """The rate decoding runs at (pushed audio must have it)."""
    device: str | None = None
    """The microphone recorded (microphone streams)."""
    device_sample_rate_hz: int | None = None
    """The rate the microphone is captured at (``audio.sample_rate_hz`` when the device accepts it)."""
    device_channels: int | None = None
    """The channels captured (``audio.channels``), mixed to mono for decoding."""


class StreamPushParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    stream_id: str
    audio: bytes
    """Base64 of mono little-endian samples in the stream's ``encoding``, any length."""


class StreamPushResult(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    received_s: float
    """Audio received so far."""
    pending_s: float
    """Audio not yet processed: how far behind the stream is."""


class StreamIdParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    stream_id: str


class StreamCancelResult(msgspec.Struct, frozen=True):
    stream_id: str
    cancelled: bool = True


_NARROWER_THAN_FILES: frozenset[EncoderWindow] = frozenset({"medium", "fit"})
"""Encoder windows narrower than ``transcribe.file``'s ``short``: a dictation's sentences finished at a pause
are decoded again in ``short`` (``sentence_options``): on two-sentence espeak-ng clips in three voices
(whisper-base, beam 5, three runs) a first sentence decoded in ``medium`` had WER 0.130-0.146 against
0.102-0.121 in ``short`` (0.102-0.108 inside a decode of the whole clip)."""

Announcement = Utterance | list[Head]
"""What the stream announces in order: an ended utterance (its final) or heads finalized off open ones."""


class DecodeJob(NamedTuple):
    """A re-decode of the open utterance: its audio from ``offset_s`` (stream seconds)."""

    utterance: Utterance | None
    audio: Any
    offset_s: float
    kind: DecodeKind
    """``pause``: decoded as finals are (it may become the utterance's final)."""


class StreamingService:
    """Live streams over the model manager's resident model, their workers run in the task group that
    ``serve_in`` gives (the app's background group).

    ``settings()`` gives the ``audio`` settings in force (read when a microphone stream starts).
    """

    def __init__(
        self,
        models: ModelManager,
        notify: Notify,
        *,
        settings: Callable[[], AudioSettings] = AudioSettings,
        vocabulary: Callable[[], Vocabulary] = Vocabulary,
        max_streams: int = 4,
        max_pending_s: float = 30.0,
        behind_warning_s: float = 2.0,
    ) -> None:
        self.models = models
        self._notify = notify
        self._settings = settings
        self._vocabulary = vocabulary
        self.max_streams = max_streams
        self.max_pending_s = max_pending_s
        self.behind_warning_s = behind_warning_s
        self._streams: dict[str, LiveStream] = {}
        self._failed: dict[str, errors.AsrproError] = {}
        """Streams that failed on their own (the engine died, the microphone went away), by id, so that a
        push, stop or cancel of one answers with why (kept until stopped or cancelled; the latest few)."""
        self._ids = itertools.count(1)
        self._task_group: anyio.abc.TaskGroup | None = None

    def serve_in(self, task_group: anyio.abc.TaskGroup | None) -> None:
        """Start stream workers in ``task_group`` (cancelling it cancels every stream); ``None`` once it has
        ended: new streams are refused."""
        self._task_group = task_group

    # --- the four verbs ------------------------------------------------------------------------------
    async def start(self, params: StreamStartParams) -> StreamStartResult:
        """Load the model (if needed), open the source; the stream is live when this returns."""
        if self._task_group is None:
            raise errors.ShuttingDown("Streaming is not running (the sidecar is shutting down).")
        if len(self._streams) >= self.max_streams:
            raise errors.Busy(
                f"{len(self._streams)} streams are already open (the limit is {self.max_streams}); "
                "stop one first.",
                limit=self.max_streams,
            )
        spec = self.models.resolve(params.model)
        poll_s = _MICROPHONE_POLL_S if params.source == "microphone" else None
        options = with_vocabulary(params.decode_options(), self._vocabulary())
        final_options = msgspec.structs.replace(
            options, beam_size=params.final_beam_size, encoder_window=params.encoder_window
        )
        sentence_options = None
        if params.policy == "dictation" and spec.engine == "whisper":
            if params.encoder_window in _NARROWER_THAN_FILES:
                sentence_options = msgspec.structs.replace(final_options, encoder_window="short")
        stream = LiveStream(
            f"s{next(self._ids)}",
            spec.id,
            options,
            final_options=final_options,
            sentence_options=sentence_options,
            encoding=params.encoding,
            poll_s=poll_s,
        )
        self._streams[stream.id] = stream
        self._task_group.start_soon(self._worker, stream, params)
        try:
            await stream.ready.wait()
        except BaseException:
            await self._end(stream)
            raise
        if stream.error is not None:
            self._streams.pop(stream.id, None)
            raise stream.error
        capture = stream.capture
        return StreamStartResult(
            stream_id=stream.id,
            model=spec.id,
            source=params.source,
            encoding=params.encoding,
            sample_rate_hz=SAMPLE_RATE_HZ,
            device=capture.device.id if capture and capture.device else None,
            device_sample_rate_hz=capture.device_sample_rate_hz if capture else None,
            device_channels=capture.device_channels if capture else None,
        )

    def push(self, params: StreamPushParams) -> StreamPushResult:
        """Queue audio for the stream (never waits)."""
        stream = self._get(params.stream_id)
        if stream.poll_s is not None:
            raise errors.InvalidParams(f"Stream {stream.id} records the microphone; it takes no pushes.")
        if stream.pending_s > self.max_pending_s:
            raise errors.Busy(
                f"Stream {stream.id} is {stream.pending_s:.1f} s behind; push slower (real time at most).",
                stream_id=stream.id,
                pending_s=round(stream.pending_s, 3),
            )
        try:
            samples = samples_from_bytes(params.audio, stream.encoding)
        except ValueError as exc:
            raise errors.InvalidParams(f"Bad audio for stream {stream.id}: {exc}.") from exc
        stream.add_audio(samples)
        stream.wake()
        processor = stream.processor
        return StreamPushResult(
            stream_id=stream.id,
            received_s=round((processor.received_s if processor else 0.0) + stream.pending_s, 3),
            pending_s=round(stream.pending_s, 3),
        )

    async def stop(self, stream_id: str) -> StreamSummary:
        """Finish decoding what was pushed, emit the last ``stream.final``, and return every segment."""
        stream = self._get(stream_id, forget=True)
        del self._streams[stream_id]
        stream.stopping = True
        stream.wake()
        try:
            await stream.done.wait()
        except BaseException:
            stream.scope.cancel()
            raise
        if stream.error is not None:
            raise stream.error
        duration_s = stream.processor.received_s if stream.processor else 0.0
        return StreamSummary(
            stream_id=stream.id,
            text=stream.text(),
            language=stream.language,
            duration=round(duration_s, 3),
            segments=stream.written_segments(),
            model=stream.model_id,
        )

    async def cancel(self, stream_id: str) -> StreamCancelResult:
        """Drop the stream now (no final decode) and release the model."""
        stream = self._get(stream_id, forget=True)
        await self._end(stream)
        return StreamCancelResult(stream_id)

    async def aclose(self) -> None:
        for stream in list(self._streams.values()):
            await self._end(stream)

    def _get(self, stream_id: str, *, forget: bool = False) -> LiveStream:
        """The open stream ``stream_id``; else its failure (``forget``: stop and cancel, which end it)."""
        stream = self._streams.get(stream_id)
        failure = self._failed.pop(stream_id, None) if forget else self._failed.get(stream_id)
        if stream is None and failure is not None:
            raise failure
        if stream is None:
            raise errors.NotFound(
                f"No open stream {errors.shown(stream_id)}: "
                "it was never started, or it was stopped or cancelled.",
                stream_id=stream_id,
            )
        return stream

    async def _end(self, stream: LiveStream) -> None:
        self._streams.pop(stream.id, None)
        stream.scope.cancel()
        with anyio.CancelScope(shield=True):
            await stream.done.wait()

    # --- the worker ------------------------------------------------------------------------------------
    async def _worker(self, stream: LiveStream, params: StreamStartParams) -> None:
        """Run one stream; every failure ends up in ``stream.error`` (never in the task group)."""
        try:
            with stream.scope:
                loading = broadcast_load_progress(self._notify, stream.model_id)
                async with self.models.use(stream.model_id, loading) as resident:
                    stream.processor = await anyio.to_thread.run_sync(
                        lambda: StreamProcessor(SileroVad(), params.tuning())
                    )
                    await self._warm_up(stream, resident)
                    if params.source == "microphone":
                        await anyio.to_thread.run_sync(self._open_microphone, stream, params)
                    stream.ready.set()
                    await self._loop(stream, resident)
        except Exception as exc:  # noqa: BLE001 - reported to the stream's caller, or as a notification
            stream.error = exc if isinstance(exc, errors.AsrproError) else errors.InternalError(str(exc))
            if not isinstance(exc, errors.AsrproError):
                log.exception("stream failed", extra={"stream_id": stream.id})
            if stream.ready.is_set() and not stream.stopping:
                self._warn(stream, "stream_failed", f"Stream {stream.id} failed: {stream.error}", "error")
                self._failed[stream.id] = stream.error
                for old in list(self._failed)[:-_FAILED_KEPT]:
                    del self._failed[old]
        finally:
            if stream.capture is not None:
                await anyio.to_thread.run_sync(stream.capture.stop)
            self._streams.pop(stream.id, None)
            stream.ready.set()
            stream.done.set()

    async def _warm_up(self, stream: LiveStream, resident: Any) -> None:
        """Decode half a second of silence: checks the options (language, task) on this model before the
        stream goes live, and pays the first decode's one-off cost before the user speaks."""
        import numpy as np

        silence = np.zeros(SAMPLE_RATE_HZ // 2, dtype=np.float32)
        await self._decode(stream, resident, silence, 0.0, stream.options)
        stream.language = stream.options.language

    def _open_microphone(self, stream: LiveStream, params: StreamStartParams) -> None:
        from ..audio.capture import InputCapture
        from .audio import input_device_error

        def on_error(error: errors.AsrproError) -> None:
            stream.error = error

        settings = self._settings()
        device = params.device or settings.input_device
        capture = InputCapture(
            device,
            SAMPLE_RATE_HZ,
            stream.add_audio,
            on_error=on_error,
            device_sample_rate_hz=settings.sample_rate_hz,
            device_channels=settings.channels,
            quality=settings.quality,
        )
        try:
            capture.start()
        except errors.DeviceUnavailable as exc:
            if params.device is None and device is not None:
                raise input_device_error(exc) from exc
            raise
        stream.capture = capture

    async def _loop(self, stream: LiveStream, resident: Any) -> None:
        """Feed audio as it comes and decode what the processor asks for, never waiting on a decode: the
        interval re-decodes run beside the loop (one at a time), so does (dictation) the one at a pause,
        which may become the final (it starts at once instead of waiting for an interval one in flight),
        and finals are announced in order by a task of their own (``_announce_finals``)."""
        processor = stream.processor
        assert processor is not None
        announcements, to_announce = anyio.create_memory_object_stream[Announcement](math.inf)
        async with anyio.create_task_group() as side:
            side.start_soon(self._announce_finals, stream, resident, to_announce)
            async with announcements, anyio.create_task_group() as intervals:
                while stream.error is None:  # a side task's error: raised below, outside the task group
                    audio = stream.take_audio()
                    if audio is None:
                        if stream.stopping:
                            break
                        await stream.wait_for_audio()
                        continue
                    async with stream.decoding:
                        await anyio.to_thread.run_sync(processor.feed, audio)
                    await self._queue_finals(stream, announcements)
                    if stream.stopping or self._behind(stream):
                        continue
                    for kind in processor.decodes_due():
                        if stream.pause_decoding is not None if kind == "pause" else stream.interval_decoding:
                            continue
                        utterance = processor.current
                        decode = DecodeJob(utterance, *processor.partial_audio(kind), kind)
                        if kind == "pause":
                            stream.pause_decoding = (utterance, anyio.Event())
                        else:
                            stream.interval_decoding = True
                        # the pause decode is never cancelled: it is the final of the stream's last words
                        (side if kind == "pause" else intervals).start_soon(
                            self._side_partial, stream, resident, decode, announcements
                        )
                if stream.error is None:
                    async with stream.decoding:
                        processor.flush()
                    await self._queue_finals(stream, announcements)
                else:
                    side.cancel_scope.cancel()
                intervals.cancel_scope.cancel()  # one still running is for an utterance now final
        if stream.error is not None:
            raise stream.error

    async def _queue_finals(
        self, stream: LiveStream, announcements: MemoryObjectSendStream[Announcement]
    ) -> None:
        """Hand the ended utterances to ``_announce_finals``; waits while it has ``queued_finals`` to do (a
        backlog builds up as unfed audio, so pushes beyond it are refused)."""
        assert stream.processor is not None
        for utterance in stream.processor.take_ended():
            if stream.error is not None:
                return
            await stream.queued_finals.acquire()
            announcements.send_nowait(utterance)

    def _behind(self, stream: LiveStream) -> bool:
        """Whether the stream is a decode interval behind (a partial re-decode is skipped then)."""
        assert stream.processor is not None
        if stream.pending_s < stream.processor.tuning.interval_s:
            return False
        if stream.pending_s >= self.behind_warning_s:
            self._warn(
                stream,
                "stream_behind",
                f"Stream {stream.id}: decoding is {stream.pending_s:.1f} s behind real time; skipping "
                "partial re-decodes (finals still come). A smaller model or a longer interval_s keeps up "
                "better.",
            )
        return True

    async def _side_partial(
        self,
        stream: LiveStream,
        resident: Any,
        decode: DecodeJob,
        announcements: MemoryObjectSendStream[Announcement],
    ) -> None:
        try:
            heads = await self._partial(stream, resident, decode)
            if heads:
                announcements.send_nowait(heads)
        except Exception as exc:  # noqa: BLE001 - the loop raises it
            stream.error = exc
        finally:
            if decode.kind == "pause":
                assert stream.pause_decoding is not None
                stream.pause_decoding[1].set()
                stream.pause_decoding = None
            else:
                stream.interval_decoding = False
            stream.wake()

    async def _partial(self, stream: LiveStream, resident: Any, decode: DecodeJob) -> list[Head]:
        """Decode the open utterance's audio (a ``pause`` decode as finals are) and announce the partial;
        returns the heads it finalized (a sentence, the trimmed start of an overlong utterance), to announce
        in order."""
        processor = stream.processor
        assert processor is not None and decode.utterance is not None
        audio = decode.audio
        options = stream.final_options if decode.kind == "pause" else stream.options
        words = await self._decode(stream, resident, audio, decode.offset_s, options)
        audio_end_s = decode.offset_s + len(audio) / SAMPLE_RATE_HZ
        async with stream.decoding:
            partial = processor.apply_partial(
                decode.utterance, words, decode.offset_s, audio_end_s, decode.kind
            )
            heads = processor.take_heads()
        if partial is not None:
            self._notify(
                "stream.partial",
                StreamPartial(
                    stream_id=stream.id,
                    segment_id=partial.segment_id,
                    stable=stream.rules.apply(partial.stable),
                    unstable=stream.rules.apply(partial.unstable),
                    start=round(partial.start_s, 3),
                    audio_end=round(partial.audio_end_s, 3),
                ),
            )
        return heads

    async def _announce_finals(
        self, stream: LiveStream, resident: Any, announcements: MemoryObjectReceiveStream[Announcement]
    ) -> None:
        """Announce segments in order: heads finalized off open utterances, and each ended utterance's
        final, which is the decode at its pause (waited for while it runs) if that heard it all, else a
        final decode of its own."""
        processor = stream.processor
        assert processor is not None
        try:
            async for item in announcements:
                if isinstance(item, list):
                    for head in item:
                        head = await self._rehear(stream, resident, head)
                        self._announce(stream, [head.segment], head.reason, revised=head.revised)
                    continue
                if stream.pause_decoding is not None and stream.pause_decoding[0] is item:
                    await stream.pause_decoding[1].wait()
                async with stream.decoding:
                    words = processor.final_words(item)
                if words is None:
                    assert item.audio is not None
                    start_s = item.start / SAMPLE_RATE_HZ
                    words = await self._decode(stream, resident, item.audio, start_s, stream.final_options)
                async with stream.decoding:
                    segment = processor.finalize(item, words)
                self._announce(stream, [segment] if segment else [], item.reason, revised=item.revised)
                stream.queued_finals.release()
        except Exception as exc:  # noqa: BLE001 - the loop raises it
            stream.error = exc
            stream.queued_finals.release()  # the loop may be waiting to queue one: it sees the error next
            stream.wake()

    def _announce(
        self, stream: LiveStream, segments: list[Segment], reason: EndReason, *, revised: bool = False
    ) -> None:
        for segment in segments:
            stream.segments.append(segment)
            written = stream.written(segment)
            final = StreamFinal(stream_id=stream.id, segment=written, reason=reason, revised=revised)
            self._notify("stream.final", final)

    async def _rehear(self, stream: LiveStream, resident: Any, head: Head) -> Head:
        """A sentence finished at a pause, decoded again with ``sentence_options`` while the speaker goes on:
        its pause decode, made in the finals' encoder window (quick, in case it was the last), is further
        from a file's words than a decode in the file's."""
        if head.audio is None or stream.sentence_options is None:
            return head
        words = await self._decode(stream, resident, head.audio, head.audio_start_s, stream.sentence_options)
        return head.reheard(words)

    async def _decode(
        self,
        stream: LiveStream,
        resident: Any,
        audio: Any,
        offset_s: float,
        base: TranscribeOptions,
    ) -> list[Word]:
        """Decode ``audio`` in the engine process with ``base`` (its token budget capped); words in stream
        time."""
        budget = _TOKENS_BASE + math.ceil(_TOKENS_PER_S * len(audio) / SAMPLE_RATE_HZ)
        max_new_tokens = min(base.max_new_tokens or budget, budget)
        options = msgspec.structs.replace(base, max_new_tokens=max_new_tokens)
        pcm = audio.astype("<f4").tobytes()
        started_s = time.perf_counter()
        transcript = await run_blocking(
            lambda cancel: resident.host.transcribe_audio(pcm, SAMPLE_RATE_HZ, "f32", options, cancel)
        )
        log.debug(
            "stream decode",
            extra={
                "stream_id": stream.id,
                "audio_s": round(len(audio) / SAMPLE_RATE_HZ, 2),
                "decode_s": round(time.perf_counter() - started_s, 3),
                "pending_s": round(stream.pending_s, 2),
            },
        )
        stream.language = transcript.language
        return [
            Word(w.word, round(w.start + offset_s, 3), round(w.end + offset_s, 3), w.probability)
            for segment in transcript.segments
            for w in segment.words or ()
        ]

    def _warn(self, stream: LiveStream, kind: str, message: str, level: str = "warning") -> None:
        if kind in stream.warned:
            return
        stream.warned.add(kind)
        log.warning(message, extra={"stream_id": stream.id})
        self._notify("notification", NotificationMessage(level, message, kind))  # type: ignore[arg-type]
