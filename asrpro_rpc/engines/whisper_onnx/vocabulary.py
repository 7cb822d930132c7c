"""A Whisper export's tokens: the special ids decoding needs and token ids back to text.

Read from ``vocab.json`` + ``added_tokens.json`` (what onnx-community ships beside ``tokenizer.json``), so
no tokenizer package is needed; text is GPT-2 byte-level BPE, undone with GPT-2's byte table.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import msgspec

from asrpro_rpc import errors


@functools.cache
def _byte_of() -> dict[str, int]:
    """GPT-2's printable character -> byte table (onnx-asr's copy of it), which decodes tokens."""
    from onnx_asr.models.whisper import bytes_to_unicode

    return {c: b for b, c in bytes_to_unicode().items()}


class Vocabulary(msgspec.Struct, frozen=True, kw_only=True):
    """Token strings by id and the ids of Whisper's special tokens."""

    tokens: dict[int, str]
    eot: int
    sot: int
    translate: int
    transcribe: int
    no_timestamps: int
    no_speech: int | None
    languages: dict[str, int]
    """Language code -> its token id, in the model's order (empty for English-only exports)."""

    @property
    def timestamp_begin(self) -> int:
        """``<|0.00|>``; each later id is 20 ms more."""
        return self.no_timestamps + 1

    def text(self, ids: list[int]) -> str:
        """The text of ``ids`` (special and timestamp tokens left out)."""
        chars = "".join(self.tokens.get(i, "") for i in ids if i < self.eot)
        byte_of = _byte_of()
        return bytes(byte_of[c] for c in chars if c in byte_of).decode("utf-8", errors="replace")


def read_vocabulary(directory: Path, multilingual: bool) -> Vocabulary:
    """The vocabulary of the export in ``directory``.

    Raises:
        errors.ModelLoadFailed: ``vocab.json`` / ``added_tokens.json`` are missing or lack Whisper's tokens.
    """
    by_token: dict[str, int] = {}
    for name in ("vocab.json", "added_tokens.json"):
        try:
            by_token |= json.loads((directory / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise errors.ModelLoadFailed(
                f"{directory} is not a Whisper ONNX export: can't read {name} ({exc}).", path=str(directory)
            ) from exc
    try:
        sot, translate = by_token["<|startoftranscript|>"], by_token["<|translate|>"]
        special = {
            "eot": by_token["<|endoftext|>"],
            "sot": sot,
            "translate": translate,
            "transcribe": by_token["<|transcribe|>"],
            "no_timestamps": by_token["<|notimestamps|>"],
        }
    except KeyError as exc:
        raise errors.ModelLoadFailed(
            f"{directory} is not a Whisper ONNX export: its vocabulary has no {exc.args[0]} token.",
            path=str(directory),
        ) from None
    tokens = {i: t for t, i in by_token.items()}
    languages = {tokens[i][2:-2]: i for i in range(sot + 1, translate) if i in tokens} if multilingual else {}
    no_speech = by_token.get("<|nospeech|>", by_token.get("<|nocaptions|>"))
    return Vocabulary(tokens=tokens, languages=languages, no_speech=no_speech, **special)
