"""The wire of OpenAI's Realtime transcription API: client events in, server events out (msgspec Structs).

Both shapes OpenAI has published are read: the GA one (``session.update`` with ``session.type:
"transcription"`` and ``session.audio.input.{format, transcription, turn_detection}``) and the beta one
(``transcription_session.update`` with ``input_audio_transcription``, ``turn_detection``,
``input_audio_format``). Fields a transcription session has no use for (noise reduction, include, …) are
ignored. ``UNSET`` means "keep what is in force"; ``turn_detection: null`` turns server VAD off.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


# --- client events -------------------------------------------------------------------------------------
class Transcription(msgspec.Struct, frozen=True):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None


class TurnDetection(msgspec.Struct, frozen=True):
    """Server VAD; missing fields take OpenAI's defaults."""

    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.5
    prefix_padding_ms: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 300
    silence_duration_ms: Annotated[int, msgspec.Meta(ge=100, le=10000)] = 500


class AudioFormat(msgspec.Struct, frozen=True):
    type: str = "audio/pcm"
    rate: int = 24000


class AudioInput(msgspec.Struct, frozen=True):
    format: AudioFormat | UnsetType = UNSET
    transcription: Transcription | None | UnsetType = UNSET
    turn_detection: TurnDetection | None | UnsetType = UNSET


class Audio(msgspec.Struct, frozen=True):
    input: AudioInput | UnsetType = UNSET


class SessionConfig(msgspec.Struct, frozen=True):
    """A session update in either shape (the GA ``audio.input`` wins where both are given)."""

    type: str | UnsetType = UNSET
    audio: Audio | UnsetType = UNSET
    input_audio_format: str | UnsetType = UNSET
    input_audio_transcription: Transcription | None | UnsetType = UNSET
    turn_detection: TurnDetection | None | UnsetType = UNSET


class ClientEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    event_id: str | None = None


class SessionUpdate(ClientEvent, frozen=True, tag="session.update"):
    session: SessionConfig = SessionConfig()


class TranscriptionSessionUpdate(ClientEvent, frozen=True, tag="transcription_session.update"):
    session: SessionConfig = SessionConfig()


class Append(ClientEvent, frozen=True, tag="input_audio_buffer.append"):
    audio: str
    """Base64 of little-endian PCM16 mono at the session's rate (24 kHz unless the format says 16 kHz)."""


class Commit(ClientEvent, frozen=True, tag="input_audio_buffer.commit"):
    pass


class Clear(ClientEvent, frozen=True, tag="input_audio_buffer.clear"):
    pass


AnyClientEvent = SessionUpdate | TranscriptionSessionUpdate | Append | Commit | Clear
CLIENT_EVENT_TYPES = tuple(str(cls.__struct_config__.tag) for cls in AnyClientEvent.__args__)  # type: ignore[attr-defined]


class Envelope(msgspec.Struct, frozen=True):
    """What every client event has, read first so an error can name the event."""

    type: Any = None
    event_id: Any = None


# --- server events -------------------------------------------------------------------------------------
class SessionTranscription(msgspec.Struct, frozen=True):
    model: str
    language: str | None
    prompt: str | None


class SessionTurnDetection(msgspec.Struct, frozen=True):
    threshold: float
    prefix_padding_ms: int
    silence_duration_ms: int
    type: Literal["server_vad"] = "server_vad"


class SessionFormat(msgspec.Struct, frozen=True):
    rate: int
    type: Literal["audio/pcm"] = "audio/pcm"


class SessionInput(msgspec.Struct, frozen=True):
    format: SessionFormat
    transcription: SessionTranscription
    turn_detection: SessionTurnDetection | None
    noise_reduction: None = None


class SessionAudio(msgspec.Struct, frozen=True):
    input: SessionInput


class GaSession(msgspec.Struct, frozen=True, kw_only=True):
    """The effective configuration, GA shape (``session.created`` / ``session.updated``)."""

    id: str
    object: Literal["realtime.transcription_session"] = "realtime.transcription_session"
    type: Literal["transcription"] = "transcription"
    audio: SessionAudio
    include: list[str] = []


class BetaSession(msgspec.Struct, frozen=True, kw_only=True):
    """The effective configuration, beta shape (``transcription_session.created`` / ``.updated``)."""

    id: str
    object: Literal["realtime.transcription_session"] = "realtime.transcription_session"
    input_audio_format: Literal["pcm16"] = "pcm16"
    input_audio_sample_rate_hz: int = 24000
    """Not OpenAI's: the rate ``pcm16`` means here (24 kHz as OpenAI's, or 16 kHz when asked)."""
    input_audio_transcription: SessionTranscription
    turn_detection: SessionTurnDetection | None
    input_audio_noise_reduction: None = None
    modalities: list[str] = msgspec.field(default_factory=lambda: ["text"])


class ServerEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    event_id: str = msgspec.field(default_factory=lambda: new_id("event"))


class SessionEvent(ServerEvent, frozen=True, kw_only=True):
    session: GaSession | BetaSession


class SessionCreated(SessionEvent, frozen=True, kw_only=True, tag="session.created"):
    pass


class SessionUpdated(SessionEvent, frozen=True, kw_only=True, tag="session.updated"):
    pass


class TranscriptionSessionCreated(
    SessionEvent, frozen=True, kw_only=True, tag="transcription_session.created"
):
    pass


class TranscriptionSessionUpdated(
    SessionEvent, frozen=True, kw_only=True, tag="transcription_session.updated"
):
    pass


class SpeechStarted(ServerEvent, frozen=True, kw_only=True, tag="input_audio_buffer.speech_started"):
    audio_start_ms: int
    """From the start of the session's audio; includes the prefix padding."""
    item_id: str


class SpeechStopped(ServerEvent, frozen=True, kw_only=True, tag="input_audio_buffer.speech_stopped"):
    audio_end_ms: int
    item_id: str


class Committed(ServerEvent, frozen=True, kw_only=True, tag="input_audio_buffer.committed"):
    item_id: str
    previous_item_id: str | None


class Cleared(ServerEvent, frozen=True, kw_only=True, tag="input_audio_buffer.cleared"):
    pass


class ContentPart(msgspec.Struct, frozen=True):
    type: Literal["input_audio"] = "input_audio"
    transcript: str | None = None


class Item(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["realtime.item"] = "realtime.item"
    type: Literal["message"] = "message"
    status: Literal["completed"] = "completed"
    role: Literal["user"] = "user"
    content: list[ContentPart] = msgspec.field(default_factory=lambda: [ContentPart()])


class ItemCreated(ServerEvent, frozen=True, kw_only=True, tag="conversation.item.created"):
    previous_item_id: str | None
    item: Item


class TranscriptionDelta(
    ServerEvent, frozen=True, kw_only=True, tag="conversation.item.input_audio_transcription.delta"
):
    item_id: str
    content_index: int = 0
    delta: str


class DurationUsage(msgspec.Struct, frozen=True):
    seconds: float
    type: Literal["duration"] = "duration"


class TranscriptionCompleted(
    ServerEvent, frozen=True, kw_only=True, tag="conversation.item.input_audio_transcription.completed"
):
    item_id: str
    content_index: int = 0
    transcript: str
    usage: DurationUsage


class ErrorDetail(msgspec.Struct, frozen=True, kw_only=True):
    """OpenAI's error object."""

    type: str
    code: str | None
    message: str
    param: str | None = None
    event_id: str | None = None
    """The client event that caused it, if it had an id."""


class TranscriptionFailed(
    ServerEvent, frozen=True, kw_only=True, tag="conversation.item.input_audio_transcription.failed"
):
    item_id: str
    content_index: int = 0
    error: ErrorDetail


class Error(ServerEvent, frozen=True, kw_only=True, tag="error"):
    error: ErrorDetail
