"""Transcription options and results, shared by the RPC methods, the HTTP shim and every engine.

The result mirrors OpenAI's ``verbose_json`` (segments with ``id, seek, start, end, text, tokens,
temperature, avg_logprob, compression_ratio, no_speech_prob``) plus per-word probabilities.
Times are in seconds from the start of the audio.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from asrpro_rpc.transcripts.vocabulary import Vocabulary

Task = Literal["transcribe", "translate"]
ResponseFormat = Literal["json", "verbose_json", "text", "srt", "vtt"]
Granularity = Literal["segment", "word"]
Priority = Literal["interactive", "background"]
EncoderWindow = Literal["short", "medium", "fit", "full"]
Temperature = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
"""A sampling temperature: 0..1, as OpenAI's API allows."""
Temperatures = Temperature | Annotated[list[Temperature], msgspec.Meta(min_length=1, max_length=10)] | None
"""One temperature or a fallback ladder of up to 10."""
Prompt = Annotated[str, msgspec.Meta(max_length=4096)]
"""Text that conditions the decoder (Whisper uses its last 223 tokens)."""
LanguageCode = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class Word(msgspec.Struct, frozen=True, omit_defaults=True):
    word: str
    start: float
    end: float
    probability: float | None = None


class Segment(msgspec.Struct, frozen=True):
    id: int
    start: float
    end: float
    text: str
    seek: int = 0
    tokens: list[int] = []
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    words: list[Word] | None = None


class Transcript(msgspec.Struct, frozen=True):
    """A finished transcription (OpenAI ``verbose_json`` shape plus a few extras)."""

    text: str
    language: str
    duration: float
    segments: list[Segment]
    task: Task = "transcribe"
    language_probability: float | None = None
    words: list[Word] | None = None
    model: str | None = None


class VadOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Silero VAD parameters (faster-whisper's ``VadOptions``); unset fields keep its defaults."""

    threshold: float | msgspec.UnsetType = msgspec.UNSET
    neg_threshold: float | msgspec.UnsetType = msgspec.UNSET
    min_speech_duration_ms: int | msgspec.UnsetType = msgspec.UNSET
    max_speech_duration_s: float | msgspec.UnsetType = msgspec.UNSET
    min_silence_duration_ms: int | msgspec.UnsetType = msgspec.UNSET
    speech_pad_ms: int | msgspec.UnsetType = msgspec.UNSET


class TranscribeOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to decode and how; handed unchanged from the front (RPC or HTTP) to the engine.

    ``language=None`` detects the language. ``temperature`` is one value or a fallback ladder
    (OpenAI's ``0`` means "automatic fallback", which is faster-whisper's default ladder).
    ``batch_size`` > 1 uses faster-whisper's batched pipeline (needs the VAD), 1 decodes sequentially;
    omitted, Whisper batches audio over 30 s when the VAD is on (4 on CPU, 16 on CUDA).
    ``min_confidence`` drops segments whose average log-probability is below it (post-processing).
    """

    language: LanguageCode | None = None
    task: Task = "transcribe"
    prompt: Prompt | None = None
    temperature: Temperatures = None
    beam_size: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5
    best_of: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5
    vad_filter: bool = True
    vad: VadOptions | None = None
    word_timestamps: bool = False
    condition_on_previous_text: bool = True
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=64)] | None = None
    max_new_tokens: Annotated[int, msgspec.Meta(ge=1, le=448)] | None = None
    repetition_penalty: Annotated[float, msgspec.Meta(ge=1.0, le=2.0)] | None = None
    """Over 1 discourages repeating tokens already decoded (Whisper); streams use 1.1 (see stream.start)."""
    encoder_window: EncoderWindow = "short"
    """Whisper's encoder window for audio under 30 s (CTranslate2): ``short``, 20 s when the audio fits in
    it (as accurate as 30 s, half the time); ``medium``, 10 s when it fits, else 20 s (half again for short
    audio, WER about 0.004 worse: streams' final decodes use it); ``fit``, the audio plus 2 s (WER about
    0.02 worse: dictation streams' partial re-decodes use it); ``full``, faster-whisper's 30 s."""
    min_confidence: float | None = None
    vocabulary: Vocabulary | None = None
    """Overrides the ``vocabulary.*`` settings (the user's dictionary) field by field."""
    priority: Priority | None = None
    """``interactive`` runs ahead of ``background`` work, which pauses between segments meanwhile; omitted:
    interactive up to 30 s of audio (a dictation), background beyond. Streams are always interactive."""
