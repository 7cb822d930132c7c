"""``WS /v1/realtime?intent=transcription``: OpenAI's Realtime transcription API over ``stream.*``'s engine.

Each input audio buffer is one stream of the streaming service (its VAD, local agreement and decoding):
appended PCM16 (24 kHz as OpenAI sends it, or 16 kHz) is resampled to 16 kHz and pushed to it.

- Server VAD (the default, or ``turn_detection`` given): each utterance the stream finalizes is an item:
  ``speech_started`` (at its first partial with words), ``speech_stopped``, ``committed``,
  ``conversation.item.created``, a ``delta`` with its text and ``completed``. A ``commit`` ends the
  buffer's stream, so speech still open is finalized the same way.
- ``turn_detection: null``: nothing happens until ``commit``, which makes the buffer one item whose
  transcript is the stream's ``stream.stop`` text.
- ``clear`` drops the buffer (its stream is cancelled). A session update applies to the next buffer (a
  server-VAD buffer is committed by it, so the change takes effect at once).

Bad events get an ``error`` event (OpenAI's error object) and the socket stays open. The token and Origin
rules are the guard's (a refused handshake is 401/403). The first event is ``session.created``
(``transcription_session.created`` for clients that send ``OpenAI-Beta: realtime=v1``, as the beta SDK
does). Stream notifications reach the socket as an observer of the services container, like
``/v1/events`` (stdio hosts see them too, under the stream's id).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import msgspec
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from .. import errors
from ..events import StreamFinal, StreamPartial
from ..services.streaming import StreamPushParams, StreamStartParams
from . import realtime_events as wire
from .errors import BY_KIND, INVALID_REQUEST, SERVER_ERROR
from .state import ShimState

if TYPE_CHECKING:
    from ..audio.capture import Resampler
    from ..services.container import App

log = logging.getLogger(__name__)
router = APIRouter()
RATES_HZ = (16000, 24000)
DECODE_RATE_HZ = 16000
MIN_COMMIT_MS = 100
BUSY_POLL_S = 0.1
BUSY_WAIT_S = 60.0
"""How long an append waits for its stream to catch up before the ``busy`` error is sent."""
_CLIENT_EVENTS = msgspec.json.Decoder(wire.AnyClientEvent)
_ENVELOPE = msgspec.json.Decoder(wire.Envelope)


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """The session's settings in force."""

    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    turn_detection: wire.TurnDetection | None = wire.TurnDetection()
    rate_hz: int = 24000

    def stream_params(self) -> StreamStartParams:
        """Validated ``stream.start`` params (raises ``msgspec.ValidationError``)."""
        params: dict[str, Any] = {
            "model": self.model,
            "language": self.language,
            "prompt": self.prompt,
            "encoding": "f32",  # what the resampler gives
        }
        if self.turn_detection is not None:
            params["vad_threshold"] = self.turn_detection.threshold
            params["silence_s"] = self.turn_detection.silence_duration_ms / 1000
            params["speech_pad_s"] = self.turn_detection.prefix_padding_ms / 1000
        return msgspec.convert(
            {k: v for k, v in params.items() if v is not None}, StreamStartParams, str_keys=True
        )


class RealtimeError(Exception):
    """A client event refused, as OpenAI's error object."""

    def __init__(self, message: str, *, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.detail = wire.ErrorDetail(type=INVALID_REQUEST, code=code, message=message, param=param)


class Buffer:
    """One input audio buffer: its stream, where it starts in the session's audio, its resampler."""

    def __init__(self, stream_id: str, *, vad: bool, offset_ms: float, rate_hz: int) -> None:
        self.stream_id = stream_id
        self.vad = vad
        self.offset_ms = offset_ms
        self.rate_hz = rate_hz
        self.resampler: Resampler | None = _resampler(rate_hz)
        self.samples = 0
        """16 kHz samples pushed."""
        self.items: dict[int, str] = {}
        """Server VAD: item ids of segments announced by ``speech_started``, by segment id."""

    @property
    def duration_ms(self) -> float:
        return self.samples * 1000 / DECODE_RATE_HZ


def _resampler(rate_hz: int) -> Resampler | None:
    if rate_hz == DECODE_RATE_HZ:
        return None
    from ..audio.capture import Resampler

    return Resampler(rate_hz, DECODE_RATE_HZ)


class _Commit(msgspec.Struct, frozen=True):
    """Outbox: a buffer became ``item_id`` (sent as ``committed`` + ``conversation.item.created``)."""

    item_id: str


class _Ended(msgspec.Struct, frozen=True):
    """Outbox: the buffer's stream has ended; its notifications are all in the outbox already."""

    stream_id: str


class RealtimeSession:
    """One socket: client events in ``run``'s loop; every server event goes out through one outbox, in order.

    Everything is posted with ``call_soon_threadsafe``, the hand-off the stream notifications take too, so
    a stream's last final is always ahead of what follows its ``stop``.
    """

    def __init__(self, websocket: WebSocket, services: App, *, beta: bool, model: str | None) -> None:
        self.websocket = websocket
        self.services = services
        self.beta = beta
        self.id = wire.new_id("sess")
        self.config = Config(model=model)
        self.buffer: Buffer | None = None
        self.live: dict[str, Buffer] = {}
        """Streams whose notifications become events: the open buffer's and those being committed."""
        self.audio_samples = 0
        """16 kHz samples of the whole session (OpenAI's audio_start_ms/audio_end_ms count from 0)."""
        self.last_item_id: str | None = None
        self.start_failed = False
        """The last stream start failed (the model is not downloaded, it failed to load): appends are
        dropped quietly until a session update, instead of loading again and failing at each one."""
        self._loop = asyncio.get_running_loop()
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._jobs_in, self._jobs = anyio.create_memory_object_stream[tuple[Buffer, str | None]](1000)

    # --- the socket -------------------------------------------------------------------------------------
    async def run(self) -> None:
        self.services.observers.append(self._observe)
        try:
            created = wire.TranscriptionSessionCreated if self.beta else wire.SessionCreated
            self._post(created(session=self._session_body(beta=self.beta)))
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(self._write, task_group.cancel_scope)
                task_group.start_soon(self._transcribe)
                await self._read()
                task_group.cancel_scope.cancel()
        finally:
            self.services.observers.remove(self._observe)
            with anyio.CancelScope(shield=True):
                for buffer in list(self.live.values()):
                    with contextlib.suppress(errors.AsrproError):
                        await self.services.streaming.cancel(buffer.stream_id)

    async def _read(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text") or message.get("bytes") or b""
            envelope = _envelope(data)
            event_id = envelope.event_id if isinstance(envelope.event_id, str) else None
            try:
                await self._handle(_decode(data, envelope))
            except RealtimeError as exc:
                self._post(wire.Error(error=msgspec.structs.replace(exc.detail, event_id=event_id)))
            except errors.AsrproError as exc:
                self._post(wire.Error(error=_detail(exc, event_id)))

    def _post(self, item: Any) -> None:
        self._loop.call_soon_threadsafe(self._outbox.put_nowait, item)

    def _observe(self, method: str, params: Any) -> None:
        if method in ("stream.partial", "stream.final") and params.stream_id in self.live:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._post(params)

    async def _write(self, scope: anyio.CancelScope) -> None:
        while True:
            for event in self._events(await self._outbox.get()):
                try:
                    await self.websocket.send_text(msgspec.json.encode(event).decode())
                except (WebSocketDisconnect, OSError, RuntimeError):
                    scope.cancel()
                    return

    def _events(self, item: Any) -> list[wire.ServerEvent]:
        """Outbox item → the server events it stands for (item ids and their order are decided here)."""
        if isinstance(item, wire.ServerEvent):
            return [item]
        if isinstance(item, _Commit):
            return self._committed(item.item_id)
        if isinstance(item, _Ended):
            self.live.pop(item.stream_id, None)
            return []
        buffer = self.live.get(item.stream_id)
        if buffer is None or not buffer.vad:
            return []
        if isinstance(item, StreamPartial):
            if item.segment_id in buffer.items or not (item.stable + item.unstable).strip():
                return []
            item_id = buffer.items[item.segment_id] = wire.new_id("item")
            return [wire.SpeechStarted(audio_start_ms=_ms(buffer, item.start), item_id=item_id)]
        assert isinstance(item, StreamFinal)
        segment = item.segment
        events: list[wire.ServerEvent] = []
        item_id = buffer.items.pop(segment.id, None)
        if item_id is None:
            item_id = wire.new_id("item")
            events.append(wire.SpeechStarted(audio_start_ms=_ms(buffer, segment.start), item_id=item_id))
        events.append(wire.SpeechStopped(audio_end_ms=_ms(buffer, segment.end), item_id=item_id))
        events += self._committed(item_id)
        return events + _transcribed(item_id, segment.text, segment.end - segment.start)

    def _committed(self, item_id: str) -> list[wire.ServerEvent]:
        previous, self.last_item_id = self.last_item_id, item_id
        return [
            wire.Committed(item_id=item_id, previous_item_id=previous),
            wire.ItemCreated(previous_item_id=previous, item=wire.Item(id=item_id)),
        ]

    # --- client events ------------------------------------------------------------------------------------
    async def _handle(self, event: wire.AnyClientEvent) -> None:
        if isinstance(event, wire.Append):
            await self._append(event)
        elif isinstance(event, wire.Commit):
            await self._commit()
        elif isinstance(event, wire.Clear):
            await self._clear()
        else:
            await self._update(event)

    async def _update(self, event: wire.SessionUpdate | wire.TranscriptionSessionUpdate) -> None:
        config = _updated(self.config, event.session)
        try:
            config.stream_params()
        except msgspec.ValidationError as exc:
            raise RealtimeError(f"Invalid session: {exc}.", code="invalid_value", param="session") from None
        if config.model is not None:
            self.services.models.resolve(config.model)  # an unknown model is refused now, not at speech
        changed, self.config, self.start_failed = config != self.config, config, False
        if (
            changed and self.buffer is not None and self.buffer.vad
        ):  # its speech so far keeps the old settings
            if self.buffer.duration_ms < MIN_COMMIT_MS:
                await self._drop()
            else:
                await self._commit()
        beta = isinstance(event, wire.TranscriptionSessionUpdate)
        updated = wire.TranscriptionSessionUpdated if beta else wire.SessionUpdated
        self._post(updated(session=self._session_body(beta=beta)))

    async def _append(self, event: wire.Append) -> None:
        from ..audio.pcm import samples_from_bytes

        try:
            pcm = base64.b64decode(event.audio, validate=True)
            samples = samples_from_bytes(pcm, "pcm16")
        except (binascii.Error, ValueError) as exc:
            raise RealtimeError(
                f"Invalid audio: base64 of little-endian PCM16 mono expected ({exc}).",
                code="invalid_value",
                param="audio",
            ) from None
        buffer = self.buffer or await self._open()
        if buffer is None:
            return
        if buffer.rate_hz != self.config.rate_hz:  # a session update changed the rate mid-buffer
            await self._push(buffer, buffer.resampler(None) if buffer.resampler else None)
            buffer.rate_hz, buffer.resampler = self.config.rate_hz, _resampler(self.config.rate_hz)
        await self._push(buffer, buffer.resampler(samples) if buffer.resampler else samples)

    async def _open(self) -> Buffer | None:
        if self.start_failed:
            return None
        config = self.config
        try:
            started = await self.services.streaming.start(config.stream_params())
        except errors.AsrproError as exc:
            self.start_failed = not isinstance(exc, errors.Busy)  # too many streams: the next append retries
            raise
        buffer = Buffer(
            started.stream_id,
            vad=config.turn_detection is not None,
            offset_ms=self.audio_samples * 1000 / DECODE_RATE_HZ,
            rate_hz=config.rate_hz,
        )
        self.buffer = self.live[buffer.stream_id] = buffer
        return buffer

    async def _push(self, buffer: Buffer, samples: Any) -> None:
        """Push to the buffer's stream; while it is too far behind (``busy``), wait, not reading the socket:
        a client sending faster than real time is slowed down instead of losing audio."""
        if samples is None or not len(samples):
            return
        params = StreamPushParams(buffer.stream_id, samples.astype("<f4").tobytes())
        waited_s = 0.0
        while True:
            try:
                self.services.streaming.push(params)
                break
            except errors.Busy:
                if waited_s >= BUSY_WAIT_S:
                    raise
                if not waited_s:
                    log.info(
                        "realtime audio waits for its stream to catch up",
                        extra={"stream_id": buffer.stream_id},
                    )
                await anyio.sleep(BUSY_POLL_S)
                waited_s += BUSY_POLL_S
            except (
                errors.NotFound
            ):  # the stream failed (its notification said why): the next append starts anew
                self.buffer = None
                self.live.pop(buffer.stream_id, None)
                raise
        buffer.samples += len(samples)
        self.audio_samples += len(samples)

    async def _commit(self) -> None:
        buffer = self.buffer
        if buffer is None or buffer.duration_ms < MIN_COMMIT_MS:
            shown = buffer.duration_ms if buffer else 0.0
            raise RealtimeError(
                f"Error committing input audio buffer: buffer too small. Expected at least {MIN_COMMIT_MS}ms "
                f"of audio, but buffer only has {shown:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        if buffer.resampler is not None:
            await self._push(buffer, buffer.resampler(None))
        self.buffer = None
        item_id = None
        if not buffer.vad:
            item_id = wire.new_id("item")
            self._post(_Commit(item_id))
        await self._jobs_in.send((buffer, item_id))

    async def _clear(self) -> None:
        await self._drop()
        self._post(wire.Cleared())

    async def _drop(self) -> None:
        """Forget the open buffer: its stream is cancelled and says nothing more."""
        buffer, self.buffer = self.buffer, None
        if buffer is not None:
            self.live.pop(buffer.stream_id, None)
            with contextlib.suppress(errors.NotFound):
                await self.services.streaming.cancel(buffer.stream_id)

    async def _transcribe(self) -> None:
        """Committed buffers, one at a time and in order: their streams stop (the final decode)."""
        async for buffer, item_id in self._jobs:
            try:
                summary = await self.services.streaming.stop(buffer.stream_id)
            except errors.AsrproError as exc:
                if item_id is None:
                    self._post(wire.Error(error=_detail(exc, None)))
                else:
                    self._post(wire.TranscriptionFailed(item_id=item_id, error=_detail(exc, None)))
            else:
                if item_id is not None:
                    for event in _transcribed(item_id, summary.text, summary.duration):
                        self._post(event)
            self._post(_Ended(buffer.stream_id))

    def _session_body(self, *, beta: bool) -> wire.GaSession | wire.BetaSession:
        config = self.config
        model = config.model or self.services.models.resolve(None).id
        transcription = wire.SessionTranscription(model=model, language=config.language, prompt=config.prompt)
        turn = config.turn_detection
        turn_detection = turn and wire.SessionTurnDetection(
            threshold=turn.threshold,
            prefix_padding_ms=turn.prefix_padding_ms,
            silence_duration_ms=turn.silence_duration_ms,
        )
        if beta:
            return wire.BetaSession(
                id=self.id,
                input_audio_sample_rate_hz=config.rate_hz,
                input_audio_transcription=transcription,
                turn_detection=turn_detection,
            )
        audio_input = wire.SessionInput(
            format=wire.SessionFormat(rate=config.rate_hz),
            transcription=transcription,
            turn_detection=turn_detection,
        )
        return wire.GaSession(id=self.id, audio=wire.SessionAudio(input=audio_input))


def _envelope(data: str | bytes) -> wire.Envelope:
    try:
        return _ENVELOPE.decode(data)
    except msgspec.DecodeError:
        return wire.Envelope()


def _decode(data: str | bytes, envelope: wire.Envelope) -> wire.AnyClientEvent:
    if envelope.type is not None and envelope.type not in wire.CLIENT_EVENT_TYPES:
        raise RealtimeError(
            f"Invalid value: {msgspec.json.encode(envelope.type).decode()}. A transcription session takes "
            f"{', '.join(wire.CLIENT_EVENT_TYPES)}.",
            code="invalid_value",
            param="type",
        )
    try:
        return _CLIENT_EVENTS.decode(data)
    except msgspec.ValidationError as exc:
        raise RealtimeError(f"Invalid event: {exc}.", code="invalid_value", param=_param(exc)) from None
    except msgspec.DecodeError as exc:
        raise RealtimeError(f"The message is not a JSON event: {exc}.", code="invalid_json") from None


def _param(exc: msgspec.ValidationError) -> str | None:
    """``Expected … - at `$.session.audio` `` → ``session.audio``."""
    _, _, path = str(exc).partition("- at `$")
    return path.rstrip("`").lstrip(".") or None


def _updated(config: Config, session: wire.SessionConfig) -> Config:
    """``config`` with a session update applied (either shape)."""
    if session.type not in (msgspec.UNSET, "transcription"):
        raise RealtimeError(
            f"Only transcription sessions are served here, not {session.type!r}: send "
            '"session": {"type": "transcription", …}.',
            code="invalid_value",
            param="session.type",
        )
    audio_input = session.audio.input if session.audio else msgspec.UNSET
    transcription = session.input_audio_transcription
    turn_detection = session.turn_detection
    rate_hz = config.rate_hz
    if session.input_audio_format is not msgspec.UNSET:
        if session.input_audio_format != "pcm16":
            raise RealtimeError(
                f"Input audio format {session.input_audio_format!r} is not supported: send pcm16.",
                code="invalid_value",
                param="session.input_audio_format",
            )
        rate_hz = 24000
    if audio_input:
        transcription = _given(audio_input.transcription, transcription)
        turn_detection = _given(audio_input.turn_detection, turn_detection)
        if audio_input.format:
            if audio_input.format.type != "audio/pcm" or audio_input.format.rate not in RATES_HZ:
                raise RealtimeError(
                    f"Audio format {audio_input.format.type} at {audio_input.format.rate} Hz is not "
                    "supported: send audio/pcm (PCM16 mono) at 24000 or 16000 Hz.",
                    code="invalid_value",
                    param="session.audio.input.format",
                )
            rate_hz = audio_input.format.rate
    if turn_detection and turn_detection.type != "server_vad":
        raise RealtimeError(
            f"Turn detection {turn_detection.type!r} is not supported: use server_vad, or null to commit "
            "by hand.",
            code="invalid_value",
            param="session.turn_detection.type",
        )
    changes: dict[str, Any] = {"rate_hz": rate_hz}
    if transcription is not msgspec.UNSET:
        given = transcription or wire.Transcription()
        changes.update(model=given.model, language=given.language, prompt=given.prompt)
    if turn_detection is not msgspec.UNSET:
        changes["turn_detection"] = turn_detection
    return msgspec.structs.replace(config, **changes)


def _given(first: Any, fallback: Any) -> Any:
    return fallback if first is msgspec.UNSET else first


def _ms(buffer: Buffer, stream_s: float) -> int:
    return round(buffer.offset_ms + stream_s * 1000)


def _transcribed(item_id: str, text: str, duration_s: float) -> list[wire.ServerEvent]:
    return [
        wire.TranscriptionDelta(item_id=item_id, delta=text),
        wire.TranscriptionCompleted(
            item_id=item_id, transcript=text, usage=wire.DurationUsage(seconds=round(max(duration_s, 0.0), 3))
        ),
    ]


def _detail(exc: errors.AsrproError, event_id: str | None) -> wire.ErrorDetail:
    mapping = BY_KIND.get(exc.kind)
    param = exc.data.get("param")
    return wire.ErrorDetail(
        type=mapping.type if mapping else SERVER_ERROR,
        code=exc.kind,
        message=exc.message,
        param=param if isinstance(param, str) else None,
        event_id=event_id,
    )


def _known(services: App, websocket: WebSocket) -> str | None:
    """The URL's ``model`` if this server has it (SDKs put a conversation model there), else None."""
    model = websocket.query_params.get("model")
    if model is None:
        return None
    try:
        services.models.resolve(model)
    except errors.ModelNotFound:
        return None
    return model


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    state: ShimState = websocket.app.state.shim
    await websocket.accept()
    intent = websocket.query_params.get("intent")
    if intent != "transcription":
        error = wire.ErrorDetail(
            type=INVALID_REQUEST,
            code="unsupported_intent",
            message="This server runs transcription sessions only: "
            "connect to /v1/realtime?intent=transcription.",
            param="intent",
        )
        await websocket.send_text(msgspec.json.encode(wire.Error(error=error)).decode())
        await websocket.close(code=1008)
        return
    beta = "realtime=v1" in websocket.headers.get("openai-beta", "")
    session = RealtimeSession(websocket, state.services, beta=beta, model=_known(state.services, websocket))
    with contextlib.suppress(WebSocketDisconnect, OSError):
        await session.run()
