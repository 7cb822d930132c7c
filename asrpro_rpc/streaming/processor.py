"""One stream's decoding policy, free of I/O: voice activity splits the audio into utterances; the open
utterance is re-decoded as it grows and its words pass through local agreement; an utterance that ends in
silence gets a final decode. Decoding itself is the caller's job (``partial_audio`` / ``apply_partial``,
``take_ended`` / ``finalize``), so this class is driven the same way by the service and by unit tests.

Two policies (``StreamTuning.policy``):

- ``agreement``: LocalAgreement-2 alone. Stable words are final: an utterance's final decode only adds the
  words after them.
- ``dictation`` (the default): endpointing, and the final decode has the last word. As soon as the speaker
  has paused for ``speech_pad_s``, the utterance is decoded at once (not at the next interval), as a final
  decode is (the caller decodes it as it decodes finals: ``pause_heard``). That decode hears all of the
  speech and its trailing pad; while nothing more is said it is not repeated (re-decoding silence only
  costs CPU and invites hallucinations), and when the utterance ends with no speech after it (the user let
  go of the key, or the pause grew into silence) it *is* the final decode: the text is ready when the user
  stops, because the work was done while they paused. Partials still show local agreement's stable words
  (never changed by a later partial), but the final decode heard the whole utterance, as a file
  transcription does, so its words are the segment's; where they differ from the stable ones the segment
  is ``revised`` (partials of a growing utterance hear "light's invocation" for "lights in the kit…";
  the whole utterance is heard right). A sentence that ends at a pause is finished there once a later
  decode, which heard on, ends a sentence there too (``Head``, ``take_heads``): the utterance goes on
  from the pause, so that the decode still to come when the user stops is of the last sentence alone (the
  finished one keeps its pause decode's audio, for the caller to decode again while the speaker goes on). A
  decode at a mid-sentence pause hears a fragment as a sentence ("Please vote." for "Please open the
  door"); the decode that heard on goes on with it, and nothing is split.

Memory stays flat: only the open utterance's audio (plus a short pre-roll) is held, and an utterance
longer than ``max_buffer_s`` is trimmed at its last stable word, whose words are finalized then.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NamedTuple

import msgspec

from asrpro_rpc.streaming.agreement import LocalAgreement
from asrpro_rpc.streaming.buffer import AudioWindow
from asrpro_rpc.streaming.vad import SAMPLE_RATE_HZ, WINDOW_SAMPLES, GateTuning, SpeechGate
from asrpro_rpc.transcripts.types import Segment, Word

if TYPE_CHECKING:
    import numpy as np

SpeechProbabilities = Callable[["np.ndarray"], "np.ndarray"]
EndReason = Literal["silence", "sentence", "max_length", "stop"]
DecodeKind = Literal["interval", "pause"]
_SENTENCE_END = (".", "?", "!", "。", "？", "！")
_VAD_LOOKBACK_SAMPLES = 2 * WINDOW_SAMPLES
"""Audio the VAD may not have judged yet (its partial window) plus the window that can start speech: an
utterance's start (that window's start less ``speech_pad_s``) must still be held, however the audio was
chunked, or it begins up to 32 ms late and its first word is at the mercy of the decoder."""


class StreamTuning(msgspec.Struct, frozen=True, kw_only=True):
    interval_s: float = 0.25
    """Audio that must arrive before the open utterance is re-decoded."""
    first_decode_s: float = 0.5
    """Audio (its pre-roll included) an utterance holds before its first re-decode: sooner, the decoder
    hears a syllable and makes words up ("Tonight... Tonight...", "Please record this"), which costs a
    decode and can even agree with the next one."""
    speech_pad_s: float = 0.2
    """Audio kept before speech starts and after it ends."""
    max_buffer_s: float = 15.0
    """An open utterance longer than this is trimmed at its last stable (preferably sentence-ending) word."""
    settle_s: float | None = None
    """Only words ending this long before a decode's audio end can become stable (see ``LocalAgreement``);
    None: 0.3 s under ``dictation`` (its finals may revise stable words) and 1.0 s under ``agreement``
    (stable words are final: two decodes agreed on "lights invocation" for "lights in the kit…" 0.8 s
    before their end)."""
    hard_limit_s: float = 28.0
    """An open utterance with nothing stable is force-ended here (Whisper sees at most 30 s)."""
    gate: GateTuning = GateTuning()
    policy: Literal["dictation", "agreement"] = "dictation"
    """``dictation``: endpoint decodes at pauses, the final decode's words win; ``agreement``: local agreement
    only, stable words are final."""

    @property
    def settle_window_s(self) -> float:
        if self.settle_s is not None:
            return self.settle_s
        return 0.3 if self.policy == "dictation" else 1.0


class Partial(msgspec.Struct, frozen=True):
    segment_id: int
    stable: str
    unstable: str
    start_s: float
    audio_end_s: float
    """Stream time the decode covered."""


class Head(NamedTuple):
    """The head of an open utterance, finalized before it ends: a ``sentence`` that ended at a pause, or
    (``max_length``) the stable words trimmed off an overlong one."""

    segment: Segment
    reason: EndReason
    revised: bool = False
    """The partials showed other stable words for it (see ``Utterance.revised``)."""
    audio: np.ndarray | None = None
    """(``sentence``) the audio its pause decode heard, from ``audio_start_s``: the caller may decode it
    again, with time to spare now that the speaker goes on, and take those words (``reheard``)."""
    audio_start_s: float = 0.0
    shown: tuple[str, ...] = ()
    """The stable words the partials showed for it."""

    def reheard(self, words: list[Word]) -> Head:
        """This head with the words of another decode of its ``audio`` (itself if that heard none)."""
        if not words:
            return self
        segment = _segment(words, self.segment.id)
        assert segment is not None
        revised = list(self.shown) != _words_of(words[: len(self.shown)])
        return self._replace(segment=segment, revised=revised, audio=None)


class Utterance:
    """Speech between two silences; ``start`` moves forward when its head is trimmed and finalized."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.end: int | None = None
        self.reason: EndReason = "silence"
        self.audio: np.ndarray | None = None
        """Set when it ends: its audio, for its final decode (unless ``final_words`` has one done)."""
        self.agreement = LocalAgreement()
        self.stable: list[Word] = []
        """Stable words not finalized yet."""
        self.decoded_to = start
        """Where the latest ``interval`` decode asked for (``partial_audio``) ends."""
        self.applied_to = start
        """Where the latest decode applied ends: one that ends before it (it ran beside a later one and
        finished after it) is stale."""
        self.speech_end = start
        """Where its speech was last heard (the gate's last speech window)."""
        self.pause_to: int | None = None
        """Where the latest ``pause`` decode asked for ends (dictation): while it heard all the speech and
        its pad, no other is asked for (it may still be running)."""
        self.pause_speech_end = start
        """``speech_end`` when that decode was asked for."""
        self.covered: list[Word] | None = None
        """Words of the latest pause decode applied (dictation); ``covered_to`` is where its audio ends,
        ``covered_speech_end`` where the speech it heard ended."""
        self.covered_to = start
        self.covered_speech_end = start
        self.segment_id: int | None = None
        """The id its final segment will have, given when it ends (so that the next one's partials, which
        may come before this final, have the next id); unused when it holds no words."""
        self.revised = False
        """Set by ``finalize`` (dictation): the final decode's words do not start with the stable ones shown
        (a word or its punctuation changed)."""


class StreamProcessor:
    """Feed audio with ``feed``; decode what it asks for; it produces partials and final segments."""

    def __init__(self, speech_probabilities: SpeechProbabilities, tuning: StreamTuning | None = None) -> None:
        self.tuning = tuning or StreamTuning()
        self._probabilities = speech_probabilities
        self._gate = SpeechGate(self.tuning.gate)
        self._audio = AudioWindow()
        self._pad = int(self.tuning.speech_pad_s * SAMPLE_RATE_HZ)
        self.current: Utterance | None = None
        self._ended: list[Utterance] = []
        self._next_segment_id = 0
        self.heads: list[Head] = []
        """Heads of open utterances finalized, waiting to be announced (``take_heads``)."""

    @property
    def received_s(self) -> float:
        return self._audio.end / SAMPLE_RATE_HZ

    @property
    def held_s(self) -> float:
        """Audio held in memory."""
        return (self._audio.end - self._audio.start) / SAMPLE_RATE_HZ

    # --- input -------------------------------------------------------------------------------------
    def feed(self, audio: np.ndarray) -> None:
        """Append 16 kHz mono float32 audio and follow voice activity through it."""
        self._audio.append(audio)
        for event in self._gate.update(self._probabilities(audio)):
            if event.kind == "start":
                self.current = Utterance(max(event.sample - self._pad, self._audio.start))
            elif self.current is not None:
                utterance, self.current = self.current, None
                if event.kind == "end":
                    utterance.speech_end = event.sample
                    self._end(utterance, min(event.sample + self._pad, self._audio.end), "silence")
        if self.current is None:
            # keep the pad before any window the VAD hasn't judged yet, so a start is never clipped
            self._audio.drop_before(self._audio.end - self._pad - _VAD_LOOKBACK_SAMPLES)
            return
        self._audio.drop_before(self.current.start)
        if self._audio.end - self.current.start > self.tuning.hard_limit_s * SAMPLE_RATE_HZ:
            self._end(self.current, self._audio.end, "max_length")
            self.current = Utterance(self._audio.end)

    def flush(self) -> None:
        """The stream stops: the open utterance ends where the audio does."""
        if self.current is not None:
            utterance, self.current = self.current, None
            utterance.speech_end = self._gate.speech_end
            self._end(utterance, self._audio.end, "stop")

    def _end(self, utterance: Utterance, end: int, reason: EndReason) -> None:
        utterance.end, utterance.reason = end, reason
        utterance.audio = self._audio.view(utterance.start, end)
        utterance.segment_id = self._new_segment_id()
        self._ended.append(utterance)

    def _covers(self, decoded_to: int | None, utterance: Utterance) -> bool:
        """Whether a decode of the audio up to ``decoded_to`` heard all of ``utterance``'s speech and pad (of
        an ended one: its speech and what there is of the pad)."""
        needed = utterance.speech_end + self._pad
        if utterance.end is not None:
            needed = min(needed, utterance.end)
        return decoded_to is not None and decoded_to >= needed

    # --- decoding ------------------------------------------------------------------------------------
    def take_ended(self) -> list[Utterance]:
        """Utterances that ended: each wants its final decode (``utterance.audio`` from ``start``), unless
        ``final_words`` gives the words of one already done (wait for a pause decode still running)."""
        ended, self._ended = self._ended, []
        return ended

    def final_words(self, utterance: Utterance) -> list[Word] | None:
        """Dictation: the words of the pause decode that heard all of the ended ``utterance`` (it is the
        final decode, done while the speaker paused), else None."""
        if utterance.covered is not None and self._covers(utterance.covered_to, utterance):
            return utterance.covered
        return None

    def decodes_due(self) -> list[DecodeKind]:
        """The re-decodes the open utterance wants: an ``interval`` one after ``interval_s`` of new audio;
        (dictation) once the speaker has paused for ``speech_pad_s``, the ``pause`` one, decoded as finals
        are, and a quick ``interval`` one whose words all become stable (the speaker paused: no word is cut
        off), unless ones asked for have heard that already (re-decoding silence only costs CPU and invites
        hallucinations)."""
        current = self.current
        if current is None:
            return []
        if self.pause_heard():
            due: list[DecodeKind] = []
            if not self._covers(current.pause_to, current):
                due.append("pause")
            if not self._covers(current.decoded_to, current):
                due.append("interval")
            return due
        interval_due = (
            self._audio.end - current.decoded_to >= self.tuning.interval_s * SAMPLE_RATE_HZ
            and self._audio.end - current.start >= self.tuning.first_decode_s * SAMPLE_RATE_HZ
        )
        return ["interval"] if interval_due else []

    def partial_audio(self, kind: DecodeKind = "interval") -> tuple[np.ndarray, float]:
        """The open utterance's audio and its start in stream seconds, for a decode ``decodes_due`` asks."""
        assert self.current is not None
        if kind == "pause":
            self.current.pause_to, self.current.pause_speech_end = self._audio.end, self.current.speech_end
        else:
            self.current.decoded_to = self._audio.end
        return self._audio.view(self.current.start, self._audio.end), self.current.start / SAMPLE_RATE_HZ

    def pause_heard(self) -> bool:
        """Dictation: whether a decode now would hear all of the open utterance's speech and its pad (the
        speaker has paused), so that it may become the final one and should be decoded as finals are."""
        current = self.current
        if self.tuning.policy != "dictation" or current is None:
            return False
        current.speech_end = self._gate.speech_end
        return self._audio.end >= current.speech_end + self._pad

    def apply_partial(
        self,
        utterance: Utterance,
        words: list[Word],
        audio_start_s: float,
        audio_end_s: float,
        kind: DecodeKind = "interval",
    ) -> Partial | None:
        """Pass a re-decode of the audio from ``audio_start_s`` (stream-time words) through local agreement;
        None if a later decode was applied first, the utterance has ended, or its head was finalized since
        the decode began (it heard audio that is no longer the utterance's).

        Dictation: the ``pause`` decode, when it heard all of the speech so far and its pad, is kept as the
        final one (``final_words``), also when the utterance ended while it ran. When it ended a sentence and
        a later decode, which heard speech after the pause, ends one there too, its sentence is finalized
        (``take_heads``) and the utterance goes on from the pause: its later decodes, the final one
        included, hear only the rest.
        """
        if round(audio_start_s * SAMPLE_RATE_HZ) != utterance.start:
            return None
        decoded_to = round(audio_end_s * SAMPLE_RATE_HZ)
        if utterance is self.current:
            utterance.speech_end = self._gate.speech_end
        heard_pause = self.tuning.policy == "dictation" and self._covers(decoded_to, utterance)
        # asked for at a pause, it heard the speech before it and its pad (``final_words`` checks that no
        # speech came after); one that heard no words is not trusted: the final decode gets its own say
        if kind == "pause" and words:
            utterance.covered, utterance.covered_to = words, decoded_to
            utterance.covered_speech_end = utterance.pause_speech_end
        if utterance is not self.current or decoded_to < utterance.applied_to:
            return None
        utterance.applied_to = decoded_to
        if kind == "interval":
            words = self._split_at_sentence(utterance, words)
        if heard_pause and kind == "interval":  # the quick decode at a pause: all its words are stable
            utterance.stable += utterance.agreement.commit(words)
        else:  # a decode that heard the pause cut no word off: its words need no settling
            settled_before_s = math.inf if heard_pause else audio_end_s - self.tuning.settle_window_s
            utterance.stable += utterance.agreement.insert(words, settled_before_s)
        self._trim(utterance)
        return Partial(
            segment_id=self._next_segment_id,
            stable=_text(utterance.stable),
            unstable=_text(utterance.agreement.unstable),
            start_s=utterance.start / SAMPLE_RATE_HZ,
            audio_end_s=audio_end_s,
        )

    def _split_at_sentence(self, utterance: Utterance, words: list[Word]) -> list[Word]:
        """Dictation: finalize the sentence the decode at an earlier pause heard (its words, beam-decoded),
        when ``words`` (a decode that heard speech after that pause) also end a sentence there; returns the
        words after it. A pause decode hears a mid-sentence fragment as a sentence of its own ("Please
        vote." for "Please open the door"): a decode that heard on goes on with it, and nothing is split."""
        head = utterance.covered
        if head is None or not _ends_sentence(head[-1]):
            return words
        # halfway into the pad: where the pause decode was asked, the next word may have begun
        cut = min(utterance.covered_to, utterance.covered_speech_end + self._pad // 2)
        cut_s = cut / SAMPLE_RATE_HZ
        before = [w for w in words if _middle(w) < cut_s]
        rest = words[len(before) :]
        if not before or not rest or not _ends_sentence(before[-1]) or rest[0].start < before[-1].end:
            return words
        shown = _words_of([w for w in utterance.stable if _middle(w) < cut_s])
        utterance.stable = utterance.stable[len(shown) :]
        utterance.agreement.forget_before(cut_s)
        heard = self._audio.view(utterance.start, utterance.covered_to), utterance.start / SAMPLE_RATE_HZ
        utterance.start, utterance.covered = cut, None
        self._audio.drop_before(utterance.start)
        revised = shown != _words_of(head[: len(shown)])
        segment = _segment(head, self._new_segment_id())
        assert segment is not None
        self.heads.append(Head(segment, "sentence", revised, *heard, tuple(shown)))
        return rest

    def finalize(self, utterance: Utterance, words: list[Word]) -> Segment | None:
        """The final decode of an ended utterance → its segment (None when nothing was said).

        Agreement: the decode's words after the stable ones are appended to them. Dictation: the decode's
        words are the segment's (``utterance.revised`` says whether the stable ones differed), unless it
        heard no words at all, where the stable ones stand.
        """
        if self.tuning.policy == "dictation" and words:
            shown = _words_of(utterance.stable)
            utterance.revised = shown != _words_of(words[: len(shown)])
            final = words
        else:
            final = utterance.stable + utterance.agreement.commit(words)
        utterance.stable = []
        assert utterance.segment_id is not None
        return _segment(final, utterance.segment_id)

    def take_heads(self) -> list[Head]:
        heads, self.heads = self.heads, []
        return heads

    def _trim(self, utterance: Utterance) -> None:
        """Finalize the stable head of an overlong utterance and drop its audio."""
        if self._audio.end - utterance.start <= self.tuning.max_buffer_s * SAMPLE_RATE_HZ:
            return
        if not utterance.stable:
            return
        cut_index = len(utterance.stable)
        for index in range(len(utterance.stable) - 1, -1, -1):
            if _ends_sentence(utterance.stable[index]):
                cut_index = index + 1
                break
        head, utterance.stable = utterance.stable[:cut_index], utterance.stable[cut_index:]
        cut = max(int(head[-1].end * SAMPLE_RATE_HZ), utterance.start)
        utterance.start = min(cut, self._audio.end)
        self._audio.drop_before(utterance.start)
        segment = _segment(head, self._new_segment_id())
        if segment is not None:
            self.heads.append(Head(segment, "max_length"))

    def _new_segment_id(self) -> int:
        self._next_segment_id += 1
        return self._next_segment_id - 1


def _segment(words: list[Word], segment_id: int) -> Segment | None:
    if not words:
        return None
    return Segment(id=segment_id, start=words[0].start, end=words[-1].end, text=_text(words), words=words)


def _text(words: list[Word]) -> str:
    return "".join(w.word for w in words).strip()


def _words_of(words: list[Word]) -> list[str]:
    return [w.word.strip() for w in words]


def _ends_sentence(word: Word) -> bool:
    return word.word.strip().endswith(_SENTENCE_END)


def _middle(word: Word) -> float:
    return (word.start + word.end) / 2
