"""Response formats: exact output for json, verbose_json, text, SRT and WebVTT, and subtitle invariants."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from asrpro_rpc.transcripts.formats import MAX_CUE_LINES, MAX_LINE_CHARS, render, subtitle_cues
from asrpro_rpc.transcripts.types import Segment, Transcript, Word

LONG_SENTENCE = (
    "Speech recognition works offline on this computer and it keeps working when the network is down, "
    "which is the whole point of running it locally."
)


def transcript(*segments: Segment, text: str = "", language: str = "en", **extra: object) -> Transcript:
    return Transcript(text=text, language=language, duration=60.0, segments=list(segments), **extra)


def timed_words(text: str, start_s: float, step_s: float = 0.4) -> list[Word]:
    """Whisper-style words (leading spaces), one every ``step_s``, each lasting 0.3 s."""
    return [
        Word(word=f" {w}", start=start_s + step_s * i, end=start_s + step_s * i + 0.3)
        for i, w in enumerate(text.split())
    ]


TWO_SEGMENTS = transcript(
    Segment(id=0, start=0.0, end=2.5, text=" Hello world.", tokens=[50364, 2425, 1002, 13], avg_logprob=-0.2),
    Segment(id=1, start=3.0, end=6.04, text="  Please open   the door. ", avg_logprob=-0.3),
    text="Hello world. Please open the door.",
    language_probability=0.93,
)


def test_json() -> None:
    assert render(TWO_SEGMENTS, "json") == {"text": "Hello world. Please open the door."}


def test_text_ends_with_a_newline() -> None:
    assert render(TWO_SEGMENTS, "text") == "Hello world. Please open the door.\n"
    assert render(transcript(), "text") == ""


def test_srt() -> None:
    assert render(TWO_SEGMENTS, "srt") == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello world.\n\n"
        "2\n00:00:03,000 --> 00:00:06,040\nPlease open the door.\n"
    )


def test_vtt() -> None:
    assert render(TWO_SEGMENTS, "vtt") == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.500\nHello world.\n\n"
        "00:00:03.000 --> 00:00:06.040\nPlease open the door.\n"
    )


def test_empty_transcript() -> None:
    assert render(transcript(), "srt") == ""
    assert render(transcript(), "vtt") == "WEBVTT\n"
    blank = transcript(Segment(id=0, start=0.0, end=1.0, text="   "))
    assert render(blank, "srt") == ""
    assert render(blank, "vtt") == "WEBVTT\n"


def test_verbose_json_openai_shape_with_iso_language() -> None:
    assert render(TWO_SEGMENTS, "verbose_json") == {
        "task": "transcribe",
        "language": "en",
        "duration": 60.0,
        "text": "Hello world. Please open the door.",
        "segments": [
            {
                "id": 0,
                "seek": 0,
                "start": 0.0,
                "end": 2.5,
                "text": " Hello world.",
                "tokens": [50364, 2425, 1002, 13],
                "temperature": 0.0,
                "avg_logprob": -0.2,
                "compression_ratio": 0.0,
                "no_speech_prob": 0.0,
            },
            {
                "id": 1,
                "seek": 0,
                "start": 3.0,
                "end": 6.04,
                "text": "  Please open   the door. ",
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": -0.3,
                "compression_ratio": 0.0,
                "no_speech_prob": 0.0,
            },
        ],
        "language_probability": 0.93,
    }


def test_verbose_json_words_only_when_asked() -> None:
    words = [
        Word(word=" Hello", start=0.0, end=0.4, probability=0.9),
        Word(word=" world.", start=0.5, end=1.0),
    ]
    segment = Segment(id=0, start=0.0, end=1.0, text=" Hello world.", words=words)
    body = render(transcript(segment, text="Hello world."), "verbose_json", word_timestamps=True)
    assert isinstance(body, dict)
    assert body["words"] == [
        {"word": "Hello", "start": 0.0, "end": 0.4, "probability": 0.9},
        {"word": "world.", "start": 0.5, "end": 1.0},
    ]
    assert "words" not in render(transcript(segment), "verbose_json")
    assert "words" not in body["segments"][0]
    top_level = transcript(segment, words=words[:1])
    assert [w["word"] for w in render(top_level, "verbose_json", word_timestamps=True)["words"]] == ["Hello"]


def test_hour_timestamps_and_rounding() -> None:
    timed = transcript(
        Segment(id=0, start=3725.5, end=3727.9996, text=" One."),
        Segment(id=1, start=3599.9995, end=3600.0004, text=" Two."),  # overlaps: moved after One
        Segment(id=2, start=359999.9999, end=360001.0, text=" Hundred hours."),
    )
    assert render(timed, "srt") == (
        "1\n01:02:05,500 --> 01:02:08,000\nOne.\n\n"
        "2\n01:02:08,000 --> 01:02:08,001\nTwo.\n\n"
        "3\n100:00:00,000 --> 100:00:01,000\nHundred hours.\n"
    )


def test_no_zero_length_or_overlapping_cues() -> None:
    timed = transcript(
        Segment(id=0, start=1.0, end=1.0, text=" Zero."),
        Segment(id=1, start=0.5, end=2.0, text=" Early."),
        Segment(id=2, start=-0.3, end=-0.1, text=" Negative."),
    )
    assert render(timed, "vtt") == (
        "WEBVTT\n\n"
        "00:00:01.000 --> 00:00:01.001\nZero.\n\n"
        "00:00:01.001 --> 00:00:02.000\nEarly.\n\n"
        "00:00:02.000 --> 00:00:02.001\nNegative.\n"
    )


def test_two_balanced_lines() -> None:
    segment = Segment(
        id=0, start=0.0, end=4.0, text=" Please open the door and turn on the lights in the kitchen."
    )
    assert render(transcript(segment), "srt") == (
        "1\n00:00:00,000 --> 00:00:04,000\nPlease open the door and turn\non the lights in the kitchen.\n"
    )


def test_long_segment_split_by_characters_without_words() -> None:
    segment = Segment(id=0, start=0.0, end=12.0, text=f" {LONG_SENTENCE}")
    assert render(transcript(segment), "srt") == (
        "1\n00:00:00,000 --> 00:00:06,629\n"
        "Speech recognition works offline on this\ncomputer and it keeps working when the\n\n"
        "2\n00:00:06,629 --> 00:00:12,000\n"
        "network is down, which is the\nwhole point of running it locally.\n"
    )


def test_long_segment_split_at_word_times() -> None:
    words = timed_words(LONG_SENTENCE, start_s=10.0)
    segment = Segment(id=0, start=9.8, end=20.1, text=f" {LONG_SENTENCE}", words=words)
    assert render(transcript(segment), "vtt") == (
        "WEBVTT\n\n"
        "00:00:09.800 --> 00:00:15.100\n"
        "Speech recognition works offline on this\ncomputer and it keeps working when the\n\n"
        "00:00:15.200 --> 00:00:20.100\n"
        "network is down, which is the\nwhole point of running it locally.\n"
    )


def test_words_without_leading_spaces_are_spaced() -> None:
    words = [Word(word=w, start=i * 0.5, end=i * 0.5 + 0.4) for i, w in enumerate(["Turn", "it", "on."])]
    segment = Segment(id=0, start=0.0, end=1.5, text="Turn it on.", words=words)
    assert render(transcript(segment), "srt") == "1\n00:00:00,000 --> 00:00:01,500\nTurn it on.\n"


def test_unspaced_text_breaks_between_characters() -> None:
    text = (
        "今日はとても良い天気ですね。公園に散歩に行きましょう。"
        "それから駅前の新しい喫茶店でコーヒーを飲みませんか。"
    )
    segment = Segment(id=0, start=0.0, end=9.0, text=text)
    assert render(transcript(segment, language="ja"), "vtt") == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:09.000\n"
        "今日はとても良い天気ですね。公園に散歩に行きましょう。\nそれから駅前の新しい喫茶店でコーヒーを飲みませんか。\n"
    )


def test_vtt_escapes_markup() -> None:
    segment = Segment(id=0, start=0.0, end=1.0, text=" Tom & Jerry <3 --> end")
    assert (
        render(transcript(segment), "vtt")
        == "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nTom &amp; Jerry &lt;3 --&gt; end\n"
    )
    assert render(transcript(segment), "srt").endswith("\nTom & Jerry <3 --> end\n")


_word_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=60
)


@st.composite
def segments(draw: st.DrawFn) -> list[Segment]:
    result = []
    for i in range(draw(st.integers(0, 6))):
        start = draw(st.floats(-5, 10_000, allow_nan=False))
        end = start + draw(st.floats(-1, 60, allow_nan=False))
        texts = draw(st.lists(_word_text, max_size=40))
        words = None
        if texts and draw(st.booleans()):
            words = [
                Word(word=f" {t}", start=start + j * 0.1, end=start + j * 0.1 + 0.05)
                for j, t in enumerate(texts)
            ]
        result.append(Segment(id=i, start=start, end=end, text=" ".join(texts), words=words))
    return result


_SRT_TIME = re.compile(r"^\d{2,}:[0-5]\d:[0-5]\d,\d{3} --> \d{2,}:[0-5]\d:[0-5]\d,\d{3}$")


@given(segments())
def test_subtitle_invariants(segs: list[Segment]) -> None:
    cues = subtitle_cues(transcript(*segs))
    previous_end_ms = 0
    for cue in cues:
        assert previous_end_ms <= cue.start_ms < cue.end_ms
        previous_end_ms = cue.end_ms
        assert 1 <= len(cue.lines) <= MAX_CUE_LINES
        for line in cue.lines:
            assert line and line == line.strip()
            assert len(line) <= MAX_LINE_CHARS
    srt = render(transcript(*segs), "srt")
    assert isinstance(srt, str)
    for block in filter(None, srt.split("\n\n")):
        number, times, *_ = block.split("\n")
        assert number.isdigit() and _SRT_TIME.match(times), block
