"""The user's vocabulary: words to favour while decoding, and text rules applied to what was decoded.

``words`` (names, jargon) are handed to the engine where it can use them (faster-whisper's ``hotwords``,
NeMo's phrase boosting); the text rules work on every engine: ``replacements`` (spoken → written,
case-insensitive, whole words, tolerant of the commas and hyphens an engine puts between spelled-out
words), optional removal of filler words ("um", "uh") and optional spoken punctuation ("comma",
"new line"). Settings give the defaults (``vocabulary.*``); a request's ``vocabulary`` overrides them field
by field.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Annotated

import msgspec

VocabularyWord = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
VocabularyWords = Annotated[list[VocabularyWord], msgspec.Meta(max_length=1000)]
Replacements = Annotated[
    dict[VocabularyWord, Annotated[str, msgspec.Meta(max_length=200)]], msgspec.Meta(max_length=1000)
]


class Vocabulary(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Per-request vocabulary; a field left out (null) keeps the ``vocabulary.*`` setting."""

    words: VocabularyWords | None = None
    """Names and jargon to spell as given (Whisper: decoding hints; NeMo Parakeet: boosted phrases; the ONNX
    route: ignored)."""
    replacements: Replacements | None = None
    """Spoken → written, e.g. ``{"gee pee tee four": "GPT-4"}``; case-insensitive, whole words."""
    remove_fillers: bool | None = None
    """Drop filler words (um, uh, erm, hmm)."""
    spoken_punctuation: bool | None = None
    """Turn spoken "comma", "period", "question mark", "new line", "new paragraph"… into the marks."""

    def over(self, defaults: Vocabulary) -> Vocabulary:
        """This request's fields where set, ``defaults``' (the settings') elsewhere."""
        return Vocabulary(
            **{
                name: getattr(defaults, name) if getattr(self, name) is None else getattr(self, name)
                for name in self.__struct_fields__
            }
        )


class VocabularyRules(msgspec.Struct, frozen=True, kw_only=True):
    """The vocabulary in force for one request: settings with the request's fields over them."""

    words: tuple[str, ...] = ()
    replacements: tuple[tuple[str, str], ...] = ()
    remove_fillers: bool = False
    spoken_punctuation: bool = False

    @classmethod
    def of(cls, vocabulary: Vocabulary | None) -> VocabularyRules:
        """The rules of a (resolved) vocabulary; none for None."""
        if vocabulary is None:
            return cls()
        words = (w.strip() for w in vocabulary.words or ())
        return cls(
            words=tuple(dict.fromkeys(w for w in words if w)),
            replacements=tuple(sorted((vocabulary.replacements or {}).items())),
            remove_fillers=bool(vocabulary.remove_fillers),
            spoken_punctuation=bool(vocabulary.spoken_punctuation),
        )

    @property
    def rewrites_text(self) -> bool:
        return bool(self.replacements) or self.remove_fillers or self.spoken_punctuation

    def hotwords(self) -> str | None:
        """The words as one hint string for the decoder, or None."""
        return " ".join(self.words) or None

    def apply(self, text: str) -> str:
        """``text`` with fillers removed, spoken punctuation turned into marks and replacements made.

        A segment's leading space (Whisper's) is kept; a sentence whose first word was a filler starts
        with a capital again.
        """
        if not self.rewrites_text or not text.strip():
            return text
        lead, body = (" " if text.startswith(" ") else ""), text.strip(" ")
        if self.remove_fillers:
            started_with_filler = _FILLER.match(body) is not None
            body = _FILLER.sub("", body)
            if started_with_filler:
                body = body[:1].upper() + body[1:]
        if self.spoken_punctuation:
            body = _spoken_punctuation(body)
        if self.replacements:
            body = _replacer(self.replacements)(body)
        body = _tidy(body)
        return lead + body if body else ""


_FILLER = re.compile(r"(?<!\w)(?:u+m+|u+h+|uhm+|e+r+m+|h+m+)(?!\w)[,.]?\s*", re.IGNORECASE)

_MARKS = {
    "comma": ",",
    "period": ".",
    "full stop": ".",
    "question mark": "?",
    "exclamation mark": "!",
    "exclamation point": "!",
    "colon": ":",
    "semicolon": ";",
    "new line": "\n",
    "newline": "\n",
    "new paragraph": "\n\n",
}
_SPOKEN_MARK = re.compile(
    r"([\s,.!?]*)(?<!\w)("
    + "|".join(m.replace(" ", r"[\s-]+") for m in sorted(_MARKS, key=len, reverse=True))
    + r")(?!\w)[,.!?]*",
    re.IGNORECASE,
)
_STARTS_SENTENCE = (".", "?", "!", "\n")


def _spoken_punctuation(text: str) -> str:
    """Each spoken mark (and the commas or periods an engine put around it) becomes the mark itself; a
    spoken line break keeps the sentence end before it."""
    pieces = _SPOKEN_MARK.split(text)
    out = pieces[0]
    for index in range(1, len(pieces), 3):
        before, spoken, rest = pieces[index], pieces[index + 1], pieces[index + 2].lstrip()
        symbol = _MARKS[" ".join(re.split(r"[\s-]+", spoken.lower()))]
        if symbol.startswith("\n"):
            symbol = before.strip(" ,")[-1:] + symbol
        if symbol.endswith(_STARTS_SENTENCE):
            rest = rest[:1].upper() + rest[1:]
        out += symbol + ("" if symbol.endswith("\n") or not rest else " ") + rest
    return out


@functools.lru_cache(maxsize=32)
def _replacer(replacements: tuple[tuple[str, str], ...]) -> Callable[[str], str]:
    """One regex for all spoken forms (longest first), words separated by any spaces, commas or hyphens."""
    written = {_key(spoken): target for spoken, target in replacements}
    forms = sorted(written, key=len, reverse=True)
    alternatives = "|".join(r"[\s,-]+".join(map(re.escape, form.split())) for form in forms)
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
    return functools.partial(pattern.sub, lambda match: written[_key(match.group(0))])


def _key(spoken: str) -> str:
    return " ".join(re.split(r"[\s,-]+", spoken.lower().strip(" ,-")))


_SPACE_RUN = re.compile(r"[ \t]+")
_SPACE_BEFORE_MARK = re.compile(r"[ \t]+([,.!?;:])")
_DOUBLED_COMMA = re.compile(r",\s*(?=[,.!?;:])")
_SPACE_AROUND_BREAK = re.compile(r" *\n *")


def _tidy(text: str) -> str:
    """Single spaces, none before marks or around line breaks, no comma before another mark."""
    text = _SPACE_RUN.sub(" ", text)
    text = _SPACE_BEFORE_MARK.sub(r"\1", text)
    text = _DOUBLED_COMMA.sub("", text)
    text = _SPACE_AROUND_BREAK.sub("\n", text)
    return text.strip(" ").lstrip(",;:")
