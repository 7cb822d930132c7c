"""Post-processing: whitespace clean-up and the min_confidence segment filter."""

from __future__ import annotations

import pytest

from asrpro_rpc.transcripts.cleanup import clean_text, drop_low_confidence, join_segment_texts, postprocess
from asrpro_rpc.transcripts.types import Segment, TranscribeOptions, Transcript, Word


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Hello ,  world !", "Hello, world!"),
        ("line one\n\tline two ", "line one line two"),
        ("Really ?! Yes ...", "Really?! Yes..."),
        ("(see above )", "(see above)"),
        ("It costs .5 dollars", "It costs .5 dollars"),
        ("a , b ; c : d", "a, b; c: d"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


@pytest.mark.parametrize(
    ("texts", "joined"),
    [
        ([" Hello world.", " How are you?"], "Hello world. How are you?"),
        (["Hello world.", "How are you?"], "Hello world. How are you?"),
        (["今日は", "晴れです。"], "今日は晴れです。"),
        ([], ""),
    ],
)
def test_join_segment_texts(texts: list[str], joined: str) -> None:
    assert join_segment_texts(texts) == joined


def make_transcript() -> Transcript:
    segments = [
        Segment(id=0, start=0.0, end=2.0, text=" Please open the door.", avg_logprob=-0.2),
        Segment(id=1, start=2.5, end=4.0, text=" Thanks for watching!", avg_logprob=-1.4),
        Segment(id=2, start=4.5, end=6.0, text=" Turn on the lights.", avg_logprob=-0.5),
    ]
    words = [
        Word(word=" Please", start=0.0, end=0.5),
        Word(word=" Thanks", start=2.5, end=3.0),
        Word(word=" Turn", start=4.5, end=5.0),
    ]
    text = "Please open the door. Thanks for watching! Turn on the lights."
    return Transcript(text=text, language="en", duration=6.0, segments=segments, words=words)


def test_drop_low_confidence_renumbers_and_rebuilds_text() -> None:
    filtered = drop_low_confidence(make_transcript(), min_avg_logprob=-1.0)
    assert [(s.id, s.text) for s in filtered.segments] == [
        (0, " Please open the door."),
        (1, " Turn on the lights."),
    ]
    assert filtered.text == "Please open the door. Turn on the lights."
    assert [w.word for w in filtered.words or []] == [" Please", " Turn"]
    assert filtered.duration == 6.0


def test_drop_low_confidence_keeps_everything_above_the_threshold() -> None:
    original = make_transcript()
    assert drop_low_confidence(original, min_avg_logprob=-2.0) is original
    emptied = drop_low_confidence(original, min_avg_logprob=0.0)
    assert emptied.segments == [] and emptied.text == "" and emptied.words == []


def test_postprocess_applies_options() -> None:
    messy = Transcript(
        text="  Please open the door .  ",
        language="en",
        duration=2.0,
        segments=[Segment(id=0, start=0.0, end=2.0, text=" Please open the door .", avg_logprob=-1.5)],
    )
    assert postprocess(messy, TranscribeOptions()).text == "Please open the door."
    assert postprocess(messy, TranscribeOptions()).segments == messy.segments
    assert postprocess(messy, TranscribeOptions(min_confidence=-1.0)).text == ""
    assert postprocess(make_transcript(), TranscribeOptions(min_confidence=-1.0)).text == (
        "Please open the door. Turn on the lights."
    )
