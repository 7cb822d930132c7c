"""The streaming policy without a model: local agreement, the speech gate, the audio window, and the
processor over real speech with the real Silero VAD (decodes stand in as timed words, as a model gives).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from asrpro_rpc.streaming.agreement import LocalAgreement, normalize
from asrpro_rpc.streaming.buffer import AudioWindow
from asrpro_rpc.streaming.processor import Head, StreamProcessor, StreamTuning, Utterance
from asrpro_rpc.streaming.vad import GateTuning, SileroVad, SpeechGate
from asrpro_rpc.transcripts.types import Segment, Word

RATE = 16000


def words(*items: tuple[str, float, float]) -> list[Word]:
    return [Word(f" {text}", start, end) for text, start, end in items]


# --- local agreement ------------------------------------------------------------------------------------
def test_a_word_is_stable_once_two_hypotheses_agree() -> None:
    agreement = LocalAgreement()
    assert agreement.insert(words(("hello", 0.0, 0.4))) == []
    assert [w.word for w in agreement.unstable] == [" hello"]
    committed = agreement.insert(words(("Hello,", 0.0, 0.4), ("world", 0.5, 0.9)))
    assert [w.word for w in committed] == [" Hello,"]
    assert [w.word for w in agreement.unstable] == [" world"]
    assert agreement.insert(words(("hello", 0.0, 0.4), ("word", 0.5, 0.9), ("again", 1.0, 1.3))) == []
    committed = agreement.insert(words(("hello", 0.0, 0.4), ("word", 0.5, 0.9), ("again", 1.0, 1.4)))
    assert [w.word for w in committed] == [" word", " again"]
    assert agreement.stable_end_s == 1.4


def test_a_restated_stable_tail_is_not_committed_twice() -> None:
    agreement = LocalAgreement()
    agreement.insert(words(("turn", 1.0, 1.3), ("on", 1.3, 1.5)))
    agreement.insert(words(("turn", 1.0, 1.3), ("on", 1.3, 1.5)))
    # timestamps drift: "on" now starts after the stable end, yet it re-states the tail
    hypothesis = words(("on", 1.55, 1.7), ("the", 1.7, 1.8), ("lights", 1.8, 2.2))
    assert agreement.insert(hypothesis) == []
    assert [w.word for w in agreement.commit(hypothesis)] == [" the", " lights"]
    assert agreement.unstable == []


def test_normalize_ignores_case_punctuation_and_space() -> None:
    assert normalize(" Kitchen.") == normalize("kitchen") == "kitchen"
    assert normalize(" ...") == "..."


# --- speech gate and audio window ------------------------------------------------------------------------
def test_gate_starts_ends_and_drops_short_bursts() -> None:
    gate = SpeechGate(GateTuning(threshold=0.5, silence_s=0.1, min_speech_s=0.1), window_samples=512)
    events = gate.update([0.1, 0.9, 0.9, 0.9, 0.45, 0.9, 0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1])
    assert [(e.kind, e.sample) for e in events] == [
        ("start", 512),
        ("end", 6 * 512),  # 0.45 is above neg_threshold (0.35): still speech
        ("start", 9 * 512),
        ("drop", 10 * 512),
    ]


def test_audio_window_keeps_only_what_is_asked() -> None:
    window = AudioWindow()
    for value in range(5):
        window.append(np.full(100, value, dtype=np.float32))
    window.drop_before(250)
    assert (window.start, window.end) == (250, 500)
    assert window.view(0, 300).tolist() == [2.0] * 50
    assert window.view(390, 410).tolist() == [3.0] * 10 + [4.0] * 10


# --- the processor over real speech -----------------------------------------------------------------
def _samples(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def paragraph(speech_sentences: list[tuple[str, Path]]) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The sentences separated by 1.2 s of silence, and each sentence's span in seconds."""
    parts, spans, position = [], [], 0
    for _, path in speech_sentences:
        speech = _samples(path)
        spans.append((position / RATE, (position + len(speech)) / RATE))
        parts += [speech, np.zeros(int(1.2 * RATE), dtype=np.float32)]
        position += len(speech) + int(1.2 * RATE)
    return np.concatenate(parts), spans


def _chunks(audio: np.ndarray, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out, offset = [], 0
    while offset < len(audio):
        size = int(rng.uniform(0.02, 0.1) * RATE)
        out.append(audio[offset : offset + size])
        offset += size
    return out


def test_utterances_follow_the_silences(paragraph: tuple[np.ndarray, list[tuple[float, float]]]) -> None:
    audio, spans = paragraph
    processor = StreamProcessor(SileroVad(), StreamTuning())
    ended = []
    for chunk in _chunks(audio, 0):
        processor.feed(chunk)
        ended += processor.take_ended()
    assert len(ended) == len(spans)
    for utterance, (start_s, end_s) in zip(ended, spans, strict=True):
        assert utterance.end is not None and utterance.reason == "silence"
        assert start_s - 0.3 <= utterance.start / RATE <= start_s + 0.2
        assert end_s - 0.2 <= utterance.end / RATE <= end_s + 0.4
        assert utterance.audio is not None and len(utterance.audio) == utterance.end - utterance.start
    assert processor.held_s < 0.5  # only the pre-roll stays between utterances


class _AlwaysSpeech:
    """A VAD that hears speech in every whole window (leftover samples wait for the next chunk)."""

    def __init__(self) -> None:
        self._rest = 0

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        count, self._rest = divmod(self._rest + len(audio), 512)
        return np.ones(count, dtype=np.float32)


def test_partials_stabilise_and_long_speech_is_trimmed_at_sentence_ends() -> None:
    """Continuous 'speech' (a tone) with a scripted hypothesis: the buffer stays under max_buffer_s."""
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(60 * RATE) / RATE)).astype(np.float32)
    tuning = StreamTuning(interval_s=0.5, max_buffer_s=6.0)
    processor = StreamProcessor(_AlwaysSpeech(), tuning)
    stable_seen: dict[int, str] = {}
    for chunk in _chunks(tone, 1):
        processor.feed(chunk)
        assert not processor.take_ended()
        if not processor.decodes_due():
            continue
        utterance = processor.current
        assert utterance is not None
        audio, offset_s = processor.partial_audio()
        end_s = offset_s + len(audio) / RATE
        # one word per 0.5 s of audio, a sentence end every 4 words; the newest word is still in flux
        hypothesis = [
            Word(f" w{i}{'.' if i % 4 == 3 else ''}", i * 0.5, i * 0.5 + 0.4)
            for i in range(int(offset_s * 2 + 0.999), int(end_s * 2))
        ]
        partial = processor.apply_partial(utterance, hypothesis, offset_s, end_s)
        assert partial is not None
        assert partial.stable.startswith(stable_seen.get(partial.segment_id, ""))
        stable_seen[partial.segment_id] = partial.stable
        assert processor.held_s <= tuning.max_buffer_s + 1.0
    heads = processor.take_heads()
    assert {head.reason for head in heads} == {"max_length"}
    trimmed = [head.segment for head in heads]
    assert len(trimmed) >= 5
    assert all(segment.text.endswith(".") for segment in trimmed)
    assert [s.id for s in trimmed] == list(range(len(trimmed)))
    texts = " ".join(s.text for s in trimmed).split()
    assert texts == [f"w{i}{'.' if i % 4 == 3 else ''}" for i in range(len(texts))]


def _drive(processor: StreamProcessor, audio: np.ndarray, seed: int) -> list[tuple[str, bool]]:
    """Feed ``audio``, decoding whenever asked with a hypothesis of one word per 0.3 s of audio heard;
    returns (kind, whether it heard all the speech) per decode, and leaves the rest ended."""
    decodes = []
    for chunk in _chunks(audio, seed):
        processor.feed(chunk)
        for kind in processor.decodes_due():
            utterance = processor.current
            assert utterance is not None
            audio_heard, offset_s = processor.partial_audio(kind)
            end_s = offset_s + len(audio_heard) / RATE
            speech_end_s = utterance.speech_end / RATE
            hypothesis = [
                Word(f" w{i}", t, t + 0.25) for i, t in enumerate(np.arange(offset_s, speech_end_s, 0.3))
            ]
            assert processor.apply_partial(utterance, hypothesis, offset_s, end_s, kind) is not None
            heard_all = end_s >= speech_end_s + processor.tuning.speech_pad_s
            decodes.append((kind, heard_all))
    return decodes


@pytest.mark.parametrize("policy", ["dictation", "agreement"])
def test_a_pause_is_decoded_at_once_and_that_decode_is_the_final(
    paragraph: tuple[np.ndarray, list[tuple[float, float]]], policy: str
) -> None:
    """Dictation: when the speaker pauses, the utterance is decoded at once (before the next interval),
    silence after it is not re-decoded, and the utterance ends with no decode left to do."""
    audio, spans = paragraph
    processor = StreamProcessor(SileroVad(), StreamTuning(interval_s=2.0, policy=policy))  # type: ignore[arg-type]
    decodes = _drive(processor, audio, 2)
    ended = processor.take_ended()
    assert len(ended) == len(spans)
    if policy == "agreement":
        assert all(kind == "interval" for kind, _ in decodes)
        assert all(processor.final_words(u) is None and u.audio is not None for u in ended)
        return
    pauses = [heard_all for kind, heard_all in decodes if kind == "pause"]
    assert len(pauses) >= len(spans) and all(pauses)
    # and a quick interval decode heard each pause: its words are stable at once
    assert sum(heard_all for kind, heard_all in decodes if kind == "interval") >= len(spans)
    assert all(u.stable and not u.agreement.unstable for u in ended)
    for utterance in ended:
        final = processor.final_words(utterance)
        assert final and processor.finalize(utterance, final) is not None


def test_speech_after_the_pause_decode_still_gets_a_final_decode(
    paragraph: tuple[np.ndarray, list[tuple[float, float]]],
) -> None:
    """The user stops while speaking again after a pause: the pause decode did not hear it all."""
    audio, spans = paragraph
    first_end = int(spans[0][1] * RATE)
    processor = StreamProcessor(SileroVad(), StreamTuning(interval_s=2.0))
    decodes = _drive(processor, audio[: first_end + int(0.4 * RATE)], 3)
    assert set(decodes[-2:]) == {("pause", True), ("interval", True)}
    # the second sentence's first second, no decode: the stream stops there
    for chunk in _chunks(audio[int((spans[1][0]) * RATE) : int((spans[1][0] + 1.0) * RATE)], 4):
        processor.feed(chunk)
    processor.flush()
    ended = processor.take_ended()
    assert ended[-1].reason == "stop" and processor.final_words(ended[-1]) is None
    assert ended[-1].audio is not None


def test_a_pause_decode_that_lands_after_the_end_is_still_the_final(
    paragraph: tuple[np.ndarray, list[tuple[float, float]]],
) -> None:
    """The decode asked for at the pause runs while audio is still fed; none other is asked for meanwhile,
    and when it lands after the utterance has ended it is that utterance's final."""
    audio, spans = paragraph
    processor = StreamProcessor(SileroVad(), StreamTuning(interval_s=2.0))
    pause_request = None
    for chunk in _chunks(audio[: int((spans[0][1] + 1.0) * RATE)], 5):
        processor.feed(chunk)
        if pause_request is None and "pause" in processor.decodes_due():
            pause_request = (processor.current, *processor.partial_audio("pause"))
        elif pause_request is not None and processor.current is not None:
            assert "pause" not in processor.decodes_due()
    assert pause_request is not None
    utterance, heard, offset_s = pause_request
    assert utterance is not None
    (ended,) = processor.take_ended()
    assert ended is utterance and processor.final_words(ended) is None
    final = words(("Hello", spans[0][0], spans[0][1] - 0.1))
    assert processor.apply_partial(ended, final, offset_s, offset_s + len(heard) / RATE, "pause") is None
    assert processor.final_words(ended) == final


@pytest.mark.parametrize("policy", ["dictation", "agreement"])
def test_the_final_decode_revises_stable_words_only_under_dictation(policy: str) -> None:
    """Two partials agree on "light invocation"; the final decode, which heard the whole utterance, says
    "lights in the kitchen": dictation takes its words (revised), agreement keeps the stable ones."""
    processor = StreamProcessor(_AlwaysSpeech(), StreamTuning(policy=policy, settle_s=0.0))  # type: ignore[arg-type]
    processor.feed(np.zeros(3 * RATE, dtype=np.float32))
    utterance = processor.current
    assert utterance is not None
    heard = words(("turn", 0.0, 0.3), ("light", 0.4, 0.7), ("invocation", 0.8, 1.4))
    for end_s in (2.0, 2.5):
        processor.partial_audio()
        processor.apply_partial(utterance, heard, 0.0, end_s)
    assert _stable_text(utterance) == "turn light invocation"
    processor.flush()
    (ended,) = processor.take_ended()
    final = words(("turn", 0.0, 0.3), ("lights", 0.4, 0.7), ("in", 0.75, 0.85), ("the", 0.9, 1.0))
    segment = processor.finalize(ended, [*final, Word(" kitchen.", 1.0, 1.4)])
    assert segment is not None
    if policy == "dictation":
        assert ended.revised and segment.text == "turn lights in the kitchen."
    else:
        assert not ended.revised and segment.text == "turn light invocation"


def test_a_stale_decode_is_dropped() -> None:
    """A re-decode that finished after a later one (they ran side by side) changes nothing."""
    processor = StreamProcessor(_AlwaysSpeech(), StreamTuning(settle_s=0.0))
    processor.feed(np.zeros(3 * RATE, dtype=np.float32))
    utterance = processor.current
    assert utterance is not None
    assert processor.apply_partial(utterance, words(("hello", 0.0, 0.4)), 0.0, 2.5) is not None
    assert processor.apply_partial(utterance, words(("yellow", 0.0, 0.4)), 0.0, 2.0) is None
    assert [w.word for w in utterance.agreement.unstable] == [" hello"]


def _stable_text(utterance: Utterance) -> str:
    return "".join(w.word for w in utterance.stable).strip()


def _two_sentences_one_pause(
    speech_sentences: list[tuple[str, Path]], later_first: str, later: list[tuple[str, float]]
) -> tuple[StreamProcessor, Utterance, float]:
    """Two sentences back to back (one utterance: espeak-ng's 0.4 s of trailing silence between them is
    shorter than ``silence_s``): the decode at the pause hears "Please open the door." over the first and
    lands once the second has begun (it is a slow one); the next interval decode hears ``later_first`` over
    the first, then ``later`` (words at seconds from the second's start). Returns the processor (the
    stream stopped), the utterance and the pause's time."""
    first, second = (_samples(path) for _, path in speech_sentences[:2])
    audio = np.concatenate([first, second])
    second_s = len(first) / RATE
    head = words(
        ("Please", 0.1, 0.4), ("open", 0.5, 0.8), ("the", 0.85, 1.0), ("door.", 1.0, second_s - 0.45)
    )
    over_first = [Word(f" {text}", w.start, w.end) for text, w in zip(later_first.split(), head, strict=True)]
    after = [Word(f" {text}", second_s + at, second_s + at + 0.2) for text, at in later]
    processor = StreamProcessor(SileroVad(), StreamTuning())
    utterance, pause, later_sent = None, (0.0, 0.0), False
    for chunk in _chunks(audio, 6):
        processor.feed(chunk)
        for kind in processor.decodes_due():
            utterance = processor.current
            assert utterance is not None
            heard, offset_s = processor.partial_audio(kind)
            end_s = offset_s + len(heard) / RATE
            if kind == "pause" and not pause[1]:
                pause = (offset_s, end_s)
            elif pause[1] and not later_sent and end_s > second_s + 0.6:
                processor.apply_partial(utterance, head, *pause, "pause")
                processor.apply_partial(utterance, over_first + after, offset_s, end_s)
                later_sent = True
    pause_s = pause[1]
    assert utterance is not None and pause_s and later_sent
    processor.flush()
    return processor, utterance, pause_s


def test_a_sentence_two_decodes_agree_on_is_final_at_its_pause(
    speech_sentences: list[tuple[str, Path]],
) -> None:
    """Dictation: the sentence the pause decode heard, confirmed by a later decode that heard on, is
    finalized there; the utterance's later decodes (its final one too) hear only what follows the pause."""
    processor, utterance, pause_s = _two_sentences_one_pause(
        speech_sentences, "please open the door.", [("Speech", 0.0)]
    )
    (head,) = processor.take_heads()
    assert head.reason == "sentence" and head.segment.text == "Please open the door." and head.segment.id == 0
    # it keeps the audio its pause decode heard, for the caller to decode again
    assert head.audio is not None and head.audio_start_s == 0.0
    assert len(head.audio) == round(pause_s * RATE)
    (ended,) = processor.take_ended()
    assert ended is utterance and ended.segment_id == 1
    # the rest starts halfway into the pad the pause decode heard: the next word may have begun at its end
    assert round((pause_s - 0.2) * RATE) < ended.start <= round((pause_s - 0.1) * RATE)
    assert ended.audio is not None and len(ended.audio) == ended.end - ended.start
    assert [w.word for w in ended.stable] == []  # "Speech" was heard once: not stable yet


def test_a_sentence_heard_again_takes_that_decode_s_words() -> None:
    """``Head.reheard``: another decode of a finished sentence's audio gives its words (same segment id),
    ``revised`` against the stable words the partials showed; a decode that heard nothing changes nothing."""
    first = words(("Please", 1.0, 1.3), ("open.", 1.3, 1.6))
    segment = Segment(id=3, start=1.0, end=1.6, text="Please open.", words=first)
    head = Head(segment, "sentence", False, np.zeros(RATE, dtype=np.float32), 1.0, ("Please", "open."))
    again = head.reheard(words(("Please", 1.0, 1.3), ("vote.", 1.3, 1.6)))
    assert (again.segment.id, again.segment.text, again.revised) == (3, "Please vote.", True)
    assert again.audio is None and again.reason == "sentence"
    assert head.reheard([]) is head
    assert not head.reheard(first).revised


def test_a_fragment_heard_at_a_pause_is_not_split_off(speech_sentences: list[tuple[str, Path]]) -> None:
    """The later decode, which heard on, does not end the sentence there ("door and …"): nothing is split,
    and the final decode hears the whole utterance."""
    processor, utterance, _ = _two_sentences_one_pause(
        speech_sentences, "Please open the door", [("and", 0.0)]
    )
    assert processor.take_heads() == []
    (ended,) = processor.take_ended()
    assert ended is utterance and ended.start < RATE * 0.3
