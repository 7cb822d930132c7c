"""Messages between the sidecar and its engine host process, framed as length-prefixed msgpack.

A frame is a 4-byte big-endian payload length followed by one msgpack-encoded tagged Struct. Files never
travel here: ``Transcribe`` carries a path and the child decodes it, streamed window by window. In-memory
audio (streaming) travels as ``TranscribeAudio``: raw little-endian samples in one msgpack ``bin`` field,
never a list of numbers.
"""

from __future__ import annotations

import struct
from typing import IO, Any

import msgspec

from asrpro_rpc.audio.pcm import Encoding
from asrpro_rpc.engines.base import LoadInfo, LoadSpec
from asrpro_rpc.transcripts.types import Segment, TranscribeOptions, Transcript

_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 256 * 1024 * 1024


# --- parent -> child ----------------------------------------------------------------------------
class Load(msgspec.Struct, tag="load", frozen=True):
    request_id: int
    spec: LoadSpec


class Transcribe(msgspec.Struct, tag="transcribe", frozen=True):
    """Decode ``path`` in the child, streamed window by window; more than ``max_duration_s`` is refused."""

    request_id: int
    path: str
    options: TranscribeOptions
    max_duration_s: float | None = None


class TranscribeAudio(msgspec.Struct, tag="transcribe_audio", frozen=True):
    """Transcribe mono audio held in memory: ``pcm16`` (int16) or ``f32`` (float32) little-endian samples."""

    request_id: int
    pcm: bytes
    sample_rate_hz: int
    encoding: Encoding
    options: TranscribeOptions


class Cancel(msgspec.Struct, tag="cancel", frozen=True):
    request_id: int


class Shutdown(msgspec.Struct, tag="shutdown", frozen=True):
    pass


ToChild = Load | Transcribe | TranscribeAudio | Cancel | Shutdown


# --- child -> parent ----------------------------------------------------------------------------
class Loaded(msgspec.Struct, tag="loaded", frozen=True):
    request_id: int
    info: LoadInfo


class LoadFailed(msgspec.Struct, tag="load_failed", frozen=True):
    request_id: int
    kind: str
    message: str
    data: dict[str, Any] = {}


class Progress(msgspec.Struct, tag="progress", frozen=True):
    """``stage`` is ``loading_model``, ``decoding`` or ``transcribing``; ``message`` is for people."""

    request_id: int
    fraction: float
    stage: str
    message: str = ""


class SegmentDone(msgspec.Struct, tag="segment", frozen=True):
    """A finished segment of a running transcription (sent unthrottled, one per segment)."""

    request_id: int
    segment: Segment


class Result(msgspec.Struct, tag="result", frozen=True):
    request_id: int
    transcript: Transcript


class Failed(msgspec.Struct, tag="failed", frozen=True):
    request_id: int
    kind: str
    message: str
    data: dict[str, Any] = {}


class Heartbeat(msgspec.Struct, tag="heartbeat", frozen=True):
    """Sent every ``HEARTBEAT_INTERVAL_S`` whatever the child is doing: silence means it is frozen."""

    request_id: int = 0


ToParent = Loaded | LoadFailed | Progress | SegmentDone | Result | Failed | Heartbeat
HEARTBEAT_INTERVAL_S = 1.0


class FrameWriter:
    """Encodes messages into frames on a binary stream; callers serialise writes themselves."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._encoder = msgspec.msgpack.Encoder()

    def write(self, message: msgspec.Struct) -> None:
        payload = self._encoder.encode(message)
        self._stream.write(_HEADER.pack(len(payload)) + payload)
        self._stream.flush()


class FrameReader:
    """Decodes frames of ``message_type`` from a binary stream; ``read`` returns None at end of stream."""

    def __init__(self, stream: IO[bytes], message_type: Any) -> None:
        self._stream = stream
        self._decoder = msgspec.msgpack.Decoder(message_type)

    def read(self) -> Any:
        header = self._stream.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        (size_bytes,) = _HEADER.unpack(header)
        if size_bytes > MAX_FRAME_BYTES:
            raise ValueError(f"engine host frame of {size_bytes} bytes exceeds {MAX_FRAME_BYTES}")
        payload = self._stream.read(size_bytes)
        if len(payload) < size_bytes:
            return None
        return self._decoder.decode(payload)
