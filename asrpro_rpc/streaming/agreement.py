"""Local agreement (LocalAgreement-2, as in ufal/whisper_streaming): a word is stable once two consecutive
hypotheses of the same growing audio agree on it, from the last stable word onwards.

Pure and deterministic: it sees timed words (times in seconds from stream start) and nothing else.
"""

from __future__ import annotations

import unicodedata

from asrpro_rpc.transcripts.types import Word

_OVERLAP_TOLERANCE_S = 0.1
"""A re-decoded word starting this long before the last stable word's end still counts as new."""
_MAX_NGRAM = 5
"""Longest run of repeated words dropped where a hypothesis re-states the stable tail."""
_NEAR_S = 1.0
"""Only hypotheses that start this close to the stable tail are checked for a re-stated tail."""


def normalize(text: str) -> str:
    """A word's comparable form: case, surrounding punctuation and spacing don't matter."""
    kept = "".join(c for c in text.casefold() if not unicodedata.category(c).startswith(("P", "Z")))
    return kept or text.strip()


class LocalAgreement:
    """Commits the common prefix of consecutive hypotheses; ``unstable`` is the latest unconfirmed tail."""

    def __init__(self) -> None:
        self.stable_end_s = 0.0
        """End of the last stable word (0 before any)."""
        self._stable_tail: list[Word] = []
        self._previous: list[Word] = []

    @property
    def unstable(self) -> list[Word]:
        """Words of the latest hypothesis that are not stable yet."""
        return list(self._previous)

    def insert(self, hypothesis: list[Word], settled_before_s: float = float("inf")) -> list[Word]:
        """Take a new hypothesis of the audio so far; return the words that just became stable.

        Only words ending before ``settled_before_s`` may become stable: the decoder hears the last
        moments of a cut-off utterance as a guess ("lights invocation" for "lights in the kit…"), and two
        decodes can agree on the same guess.
        """
        new = self._beyond_stable(hypothesis)
        agreed = 0
        while (
            agreed < min(len(new), len(self._previous))
            and _same(new[agreed], self._previous[agreed])
            and new[agreed].end <= settled_before_s
        ):
            agreed += 1
        committed, self._previous = new[:agreed], new[agreed:]
        self._commit(committed)
        return committed

    def commit(self, hypothesis: list[Word]) -> list[Word]:
        """Every word of ``hypothesis`` beyond the stable ones becomes stable now (a decode known to be
        final for what it heard: the audio ended, or the speaker paused and it heard all the speech)."""
        committed = self._beyond_stable(hypothesis)
        self._previous = []
        self._commit(committed)
        return committed

    def forget_before(self, cut_s: float) -> None:
        """The audio before ``cut_s`` was finalized elsewhere: hypotheses now start there."""
        self._previous = [w for w in self._previous if (w.start + w.end) / 2 >= cut_s]
        self._stable_tail = [w for w in self._stable_tail if (w.start + w.end) / 2 >= cut_s]

    def _commit(self, words: list[Word]) -> None:
        if words:
            self.stable_end_s = words[-1].end
            self._stable_tail = (self._stable_tail + words)[-_MAX_NGRAM:]

    def _beyond_stable(self, hypothesis: list[Word]) -> list[Word]:
        """The hypothesis without the words that re-state stable ones (by time, then by repeated n-gram)."""
        new = [w for w in hypothesis if w.start > self.stable_end_s - _OVERLAP_TOLERANCE_S]
        if not new or not self._stable_tail or abs(new[0].start - self.stable_end_s) >= _NEAR_S:
            return new
        tail = [normalize(w.word) for w in self._stable_tail]
        for size in range(min(len(tail), len(new), _MAX_NGRAM), 0, -1):
            if tail[-size:] == [normalize(w.word) for w in new[:size]]:
                return new[size:]
        return new


def _same(a: Word, b: Word) -> bool:
    return normalize(a.word) == normalize(b.word)
