"""Transcript clean-up applied after the engine: whitespace tidying, the confidence filter and the
vocabulary's text rules."""

from __future__ import annotations

import re
import unicodedata

import msgspec

from asrpro_rpc.transcripts.types import TranscribeOptions, Transcript
from asrpro_rpc.transcripts.vocabulary import VocabularyRules

_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.!?;:…)\]}]+)(?!\w)")


def clean_text(text: str) -> str:
    """Collapse runs of whitespace, strip the ends and drop spaces before closing punctuation.

    ``"  Hello ,  world !"`` becomes ``"Hello, world!"``; ``"costs .5 dollars"`` is left alone.
    """
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", " ".join(text.split()))


def join_segment_texts(texts: list[str]) -> str:
    """Join segment texts into one cleaned text.

    Whisper's segments carry their own leading space (and none in Chinese or Japanese); other engines
    may give bare sentences, so a space is added between two non-space characters unless either is a
    wide (CJK) character.
    """
    joined = ""
    for text in texts:
        if joined and text and _needs_space(joined[-1], text[0]):
            joined += " "
        joined += text
    return clean_text(joined)


def drop_low_confidence(transcript: Transcript, min_avg_logprob: float) -> Transcript:
    """Drop segments whose ``avg_logprob`` is below ``min_avg_logprob``; renumber ids and rebuild text.

    Top-level words are kept only when their midpoint lies inside a kept segment.
    """
    kept = [s for s in transcript.segments if s.avg_logprob >= min_avg_logprob]
    if len(kept) == len(transcript.segments):
        return transcript
    segments = [msgspec.structs.replace(s, id=i) for i, s in enumerate(kept)]
    words = transcript.words
    if words is not None:
        words = [w for w in words if any(s.start <= (w.start + w.end) / 2 <= s.end for s in segments)]
    text = join_segment_texts([s.text for s in segments])
    return msgspec.structs.replace(transcript, segments=segments, words=words, text=text)


def postprocess(transcript: Transcript, options: TranscribeOptions) -> Transcript:
    """Apply ``options.min_confidence`` (if set), tidy the transcript's text, then apply the vocabulary's
    text rules to it and to each segment's text (words keep what the engine heard, with its timings).

    Segment texts keep the engine's spacing (OpenAI's segments start with a space); only ``text`` is
    cleaned.
    """
    if options.min_confidence is not None:
        transcript = drop_low_confidence(transcript, options.min_confidence)
    rules = VocabularyRules.of(options.vocabulary)
    segments = transcript.segments
    if rules.rewrites_text:
        segments = [msgspec.structs.replace(s, text=rules.apply(s.text)) for s in segments]
    text = rules.apply(clean_text(transcript.text))
    return msgspec.structs.replace(transcript, text=text, segments=segments)


def _needs_space(before: str, after: str) -> bool:
    if before.isspace() or after.isspace():
        return False
    return not (_is_wide(before) or _is_wide(after))


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")
