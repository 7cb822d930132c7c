"""The vocabulary's text rules: replacements, filler removal and spoken punctuation, and how a request's
vocabulary overrides the settings."""

from __future__ import annotations

import msgspec
import pytest

from asrpro_rpc.transcripts.cleanup import postprocess
from asrpro_rpc.transcripts.types import Segment, TranscribeOptions, Transcript
from asrpro_rpc.transcripts.vocabulary import Vocabulary, VocabularyRules

GPT = VocabularyRules(replacements=(("gee pee tee four", "GPT-4"), ("kitchen", "galley")))


@pytest.mark.parametrize(
    ("heard", "written"),
    [
        ("We use gee pee tee four daily.", "We use GPT-4 daily."),
        ("We use Gee, pee, tee four daily.", "We use GPT-4 daily."),  # the commas an engine adds
        ("We use GEE-PEE-TEE FOUR.", "We use GPT-4."),
        ("The kitchens are open.", "The kitchens are open."),  # whole words only
        ("Into the kitchen, then.", "Into the galley, then."),
    ],
)
def test_replacements_are_case_insensitive_and_word_bounded(heard: str, written: str) -> None:
    assert GPT.apply(heard) == written


@pytest.mark.parametrize(
    ("heard", "written"),
    [
        ("Um, so we met.", "So we met."),
        ("So, um, I think uh that works.", "So, I think that works."),
        ("An umbrella, humming.", "An umbrella, humming."),
        ("Um.", ""),
    ],
)
def test_fillers_are_removed_when_asked(heard: str, written: str) -> None:
    assert VocabularyRules(remove_fillers=True).apply(heard) == written
    assert VocabularyRules().apply(heard) == heard


@pytest.mark.parametrize(
    ("heard", "written"),
    [
        ("Send it to Bob comma thanks period", "Send it to Bob, thanks."),
        ("Send it to Bob, comma, thanks.", "Send it to Bob, thanks."),
        ("Dear Ann new line how are you question mark", "Dear Ann\nHow are you?"),
        ("First. New paragraph. Second.", "First.\n\nSecond."),
        ("Wow exclamation point really", "Wow! Really"),
    ],
)
def test_spoken_punctuation_becomes_marks(heard: str, written: str) -> None:
    assert VocabularyRules(spoken_punctuation=True).apply(heard) == written


def test_a_segments_leading_space_is_kept() -> None:
    assert GPT.apply(" In the kitchen.") == " In the galley."


def test_a_request_overrides_the_settings_field_by_field() -> None:
    settings = Vocabulary(words=["Zorvath"], replacements={"kitchen": "galley"}, remove_fillers=True)
    merged = Vocabulary(replacements={}, remove_fillers=False).over(settings)
    assert merged == Vocabulary(
        words=["Zorvath"], replacements={}, remove_fillers=False, spoken_punctuation=None
    )
    rules = VocabularyRules.of(merged)
    assert rules.hotwords() == "Zorvath" and not rules.rewrites_text


def test_words_are_deduplicated_into_one_hint() -> None:
    assert VocabularyRules.of(Vocabulary(words=[" Zorvath", "Glimmerdex", "Zorvath"])).hotwords() == (
        "Zorvath Glimmerdex"
    )
    assert VocabularyRules.of(None).hotwords() is None


def test_postprocess_rewrites_text_and_segments_but_not_words() -> None:
    segment = Segment(id=0, start=0.0, end=2.0, text=" Um, the kitchen.", words=None)
    transcript = Transcript(text=" Um, the kitchen. ", language="en", duration=2.0, segments=[segment])
    options = TranscribeOptions(
        vocabulary=Vocabulary(replacements={"kitchen": "galley"}, remove_fillers=True)
    )
    result = postprocess(transcript, options)
    assert result.text == "The galley."
    assert result.segments[0].text == " The galley."


def test_limits_are_part_of_the_contract() -> None:
    with pytest.raises(msgspec.ValidationError, match="words"):
        msgspec.convert({"words": ["x" * 101]}, Vocabulary)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"hotwords": "x"}, Vocabulary)
