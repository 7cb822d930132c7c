"""Render a :class:`~asrpro_rpc.transcripts.types.Transcript` in OpenAI's response formats.

``json`` and ``verbose_json`` give a dict, ``text``, ``srt`` and ``vtt`` a string. ``verbose_json``
follows OpenAI's shape (``task, language, duration, text, segments``, top-level ``words`` when word
timestamps were asked) with two deliberate differences:

- ``language`` is the ISO-639-1 code the engines report and requests take (``"en"``), not OpenAI's
  English name (``"english"``): hosts match it against their own lists, and OpenAI's SDK types it as a
  plain string, so its clients still parse it.
- extras: ``language_probability`` at the top level and ``probability`` on each word, when known.

Subtitles follow broadcast conventions: at most 42 characters a line and 2 lines a cue (balanced), longer
segments split into several cues timed by their words when the segment has words, else in proportion to
characters; cues never overlap and always last at least 1 ms.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, NamedTuple

from asrpro_rpc.transcripts.cleanup import clean_text
from asrpro_rpc.transcripts.types import ResponseFormat, Segment, Transcript, Word

MAX_LINE_CHARS = 42
MAX_CUE_LINES = 2

_TOKEN = re.compile(r"(\s*)(\S+)")


def render(
    transcript: Transcript, response_format: ResponseFormat, *, word_timestamps: bool = False
) -> str | dict[str, Any]:
    """The response body for ``response_format``; ``word_timestamps`` adds ``words`` to verbose_json."""
    if response_format == "json":
        return {"text": transcript.text}
    if response_format == "verbose_json":
        return to_verbose_json(transcript, word_timestamps=word_timestamps)
    if response_format == "text":
        return to_text(transcript)
    if response_format == "srt":
        return to_srt(transcript)
    if response_format == "vtt":
        return to_vtt(transcript)
    raise ValueError(f"unknown response format {response_format!r}")


def to_verbose_json(transcript: Transcript, *, word_timestamps: bool) -> dict[str, Any]:
    """OpenAI's ``verbose_json`` body (see the module docstring for our differences)."""
    body: dict[str, Any] = {
        "task": transcript.task,
        "language": transcript.language,
        "duration": transcript.duration,
        "text": transcript.text,
        "segments": [_segment_json(s) for s in transcript.segments],
    }
    if word_timestamps:
        words = transcript.words
        if words is None:
            words = [w for s in transcript.segments for w in s.words or ()]
        body["words"] = [_word_json(w) for w in words]
    if transcript.language_probability is not None:
        body["language_probability"] = transcript.language_probability
    return body


def to_text(transcript: Transcript) -> str:
    """The plain text with a final newline, as OpenAI sends it; empty for an empty transcript."""
    return f"{transcript.text}\n" if transcript.text else ""


def to_srt(transcript: Transcript) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm`` times, a blank line between cues; ``""`` when empty."""
    blocks = [
        f"{n}\n{_timestamp(c.start_ms, ',')} --> {_timestamp(c.end_ms, ',')}\n" + "\n".join(c.lines)
        for n, c in enumerate(subtitle_cues(transcript), start=1)
    ]
    return "\n\n".join(blocks) + "\n" if blocks else ""


def to_vtt(transcript: Transcript) -> str:
    """WebVTT: a ``WEBVTT`` header, then cues with ``HH:MM:SS.mmm`` times; just the header when empty."""
    blocks = [
        f"{_timestamp(c.start_ms, '.')} --> {_timestamp(c.end_ms, '.')}\n"
        + "\n".join(map(_vtt_escape, c.lines))
        for c in subtitle_cues(transcript)
    ]
    return "\n\n".join(["WEBVTT", *blocks]) + "\n"


class Cue(NamedTuple):
    start_ms: int
    end_ms: int
    lines: list[str]


def subtitle_cues(transcript: Transcript) -> list[Cue]:
    """The transcript as subtitle cues: wrapped, split to fit, never overlapping, never empty in time."""
    cues: list[Cue] = []
    previous_end_ms = 0
    for segment in transcript.segments:
        for start_s, end_s, lines in _segment_cues(segment):
            start_ms = max(_ms(start_s), previous_end_ms)
            end_ms = max(_ms(end_s), start_ms + 1)
            cues.append(Cue(start_ms, end_ms, lines))
            previous_end_ms = end_ms
    return cues


class _Token(NamedTuple):
    """A word as laid out: ``space`` is "" when it joins the previous word directly (CJK)."""

    space: str
    text: str
    start_s: float = 0.0
    end_s: float = 0.0
    """Times come from word timestamps; text-only tokens leave them at 0."""


def _segment_cues(segment: Segment) -> list[tuple[float, float, list[str]]]:
    word_tokens = _word_tokens(segment)
    tokens = word_tokens or _text_tokens(segment.text)
    if not tokens:
        return []
    groups: list[list[_Token]] = [[]]
    for token in tokens:
        if groups[-1] and len(_wrap([*groups[-1], token])) > MAX_CUE_LINES:
            groups.append([])
        groups[-1].append(token)
    if word_tokens:
        bounds = [(g[0].start_s, g[-1].end_s) for g in groups]
    else:
        bounds = _proportional_bounds(segment, groups)
    # The outer edges are the segment's own, as for a segment that fits in one cue.
    bounds[0] = (segment.start, bounds[0][1])
    bounds[-1] = (bounds[-1][0], segment.end)
    return [(start_s, end_s, _lines(group)) for group, (start_s, end_s) in zip(groups, bounds, strict=True)]


def _word_tokens(segment: Segment) -> list[_Token]:
    words = segment.words or []
    # Whisper's words carry their leading space; engines whose words don't get one between words
    # when the segment's text is spaced.
    add_spaces = not any(w.word[:1].isspace() for w in words) and " " in segment.text.strip()
    tokens = []
    for word in words:
        pieces = _text_tokens(word.word, word.start, word.end)
        if pieces and add_spaces:
            pieces[0] = pieces[0]._replace(space=" ")
        tokens += pieces
    return tokens


def _text_tokens(text: str, start_s: float = 0.0, end_s: float = 0.0) -> list[_Token]:
    tokens = []
    for match in _TOKEN.finditer(text):
        tokens += _fit_token(_Token(" " if match.group(1) else "", match.group(2), start_s, end_s))
    return tokens


def _fit_token(token: _Token) -> list[_Token]:
    """Split a token longer than a line (unspaced CJK text, a URL) into characters lines can break at."""
    if len(token.text) <= MAX_LINE_CHARS:
        return [token]
    return [token._replace(space=token.space if i == 0 else "", text=c) for i, c in enumerate(token.text)]


def _width(tokens: list[_Token]) -> int:
    return sum(len(t.space) + len(t.text) for t in tokens) - len(tokens[0].space)


def _wrap(tokens: list[_Token]) -> list[list[_Token]]:
    """Greedy lines of at most MAX_LINE_CHARS (the fewest lines possible)."""
    lines: list[list[_Token]] = [[]]
    for token in tokens:
        if lines[-1] and _width([*lines[-1], token]) > MAX_LINE_CHARS:
            lines.append([])
        lines[-1].append(token)
    return lines


def _lines(tokens: list[_Token]) -> list[str]:
    """A cue's text lines; two lines are balanced: the break that makes the longer line shortest,
    avoiding a line that starts with punctuation glued to the previous character (CJK ``。``)."""
    lines = _wrap(tokens)
    if len(lines) == 2:

        def badness(i: int) -> tuple[bool, bool, int]:
            longer = max(_width(tokens[:i]), _width(tokens[i:]))
            glued = not tokens[i].space and unicodedata.category(tokens[i].text[0]) in ("Pe", "Pf", "Po")
            return longer > MAX_LINE_CHARS, glued, longer

        best = min(range(1, len(tokens)), key=badness)
        lines = [tokens[:best], tokens[best:]]
    return [clean_text("".join(t.space + t.text for t in line)) for line in lines]


def _proportional_bounds(segment: Segment, groups: list[list[_Token]]) -> list[tuple[float, float]]:
    sizes = [_width(g) for g in groups]
    total = sum(sizes)
    duration_s = segment.end - segment.start
    bounds = []
    done = 0
    for size in sizes:
        start_s = segment.start + duration_s * done / total
        done += size
        bounds.append((start_s, segment.start + duration_s * done / total))
    return bounds


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _timestamp(ms: int, decimal_mark: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal_mark}{millis:03d}"


def _vtt_escape(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _segment_json(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "seek": segment.seek,
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "tokens": segment.tokens,
        "temperature": segment.temperature,
        "avg_logprob": segment.avg_logprob,
        "compression_ratio": segment.compression_ratio,
        "no_speech_prob": segment.no_speech_prob,
    }


def _word_json(word: Word) -> dict[str, Any]:
    body: dict[str, Any] = {"word": word.word.strip(), "start": word.start, "end": word.end}
    if word.probability is not None:
        body["probability"] = word.probability
    return body
