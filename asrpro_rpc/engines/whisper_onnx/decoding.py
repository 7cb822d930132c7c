"""One 30-second window through a Whisper ONNX export: log-mel features, the encoder, and greedy decoding
with Whisper's timestamp rules over the merged decoder's KV cache.

The rules are openai-whisper's ``ApplyTimestampRules``: the first token is a timestamp (at most 1 s in),
timestamps come in pairs and never go back, and a timestamp is forced when timestamps together are likelier
than any text token. Decoding is greedy (one beam, temperature 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from asrpro_rpc import errors

if TYPE_CHECKING:
    import numpy as np

    from asrpro_rpc.engines.whisper_onnx.vocabulary import Vocabulary

SAMPLE_RATE_HZ = 16000
WINDOW_S = 30.0
"""Whisper's fixed input length; each window is padded to it."""
TIMESTAMP_S = 0.02
MAX_INITIAL_TIMESTAMP_S = 1.0
_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16"}


class Decoded(msgspec.Struct, frozen=True):
    """A window's generated tokens (prompt excluded) with each one's log-probability."""

    tokens: list[int]
    logprobs: list[float]
    no_speech_prob: float


class WhisperSessions:
    """The encoder and merged decoder sessions of one export, and what their inputs expect."""

    def __init__(
        self,
        encoder: Any,
        decoder: Any,
        vocabulary: Vocabulary,
        *,
        mel_bins: int,
        suppress: list[int],
        begin_suppress: list[int],
        max_positions: int,
    ) -> None:
        import numpy as np
        from onnx_asr.preprocessors.numpy_preprocessor import WhisperPreprocessorNumpy

        self.encoder, self.decoder, self.vocabulary = encoder, decoder, vocabulary
        self.max_positions = max_positions
        self._features = WhisperPreprocessorNumpy(f"whisper{mel_bins}")
        self._feature_dtype = _DTYPES.get(encoder.get_inputs()[0].type, "float32")
        self._past = {
            i.name: (int(i.shape[1]), int(i.shape[3]), _DTYPES.get(i.type, "float32"))
            for i in decoder.get_inputs()
            if i.name.startswith("past_key_values.")
        }
        self._outputs = [o.name for o in decoder.get_outputs()]
        if "use_cache_branch" not in {i.name for i in decoder.get_inputs()} or not self._past:
            raise errors.ModelLoadFailed(
                "The decoder is not a merged decoder with a KV cache (decoder_model_merged.onnx: "
                "past_key_values.* and use_cache_branch inputs)."
            )
        # every special token but end-of-text and the timestamps, plus the export's suppress_tokens
        specials = [i for i in range(vocabulary.eot + 1, vocabulary.timestamp_begin)]
        self._suppress = np.array(sorted({*suppress, *specials} - {vocabulary.eot}), dtype=np.int64)
        self._begin_suppress = np.array(begin_suppress, dtype=np.int64)

    def encode(self, samples: np.ndarray) -> Any:
        """Encoder states for up to 30 s of 16 kHz samples (zero-padded to 30 s)."""
        import numpy as np

        features, _ = self._features(samples[None, :], np.array([len(samples)], dtype=np.int64))
        (states,) = self.encoder.run(
            ["last_hidden_state"], {"input_features": features.astype(self._feature_dtype)}
        )
        return states

    def detect_language(self, states: Any) -> tuple[str, float]:
        """The likeliest language token after ``<|startoftranscript|>`` and its probability."""
        import numpy as np

        logits, _ = self._step(np.array([[self.vocabulary.sot]], dtype=np.int64), states, None)
        codes = list(self.vocabulary.languages)
        scores = logits[0, -1, [self.vocabulary.languages[c] for c in codes]].astype(np.float64)
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        best = int(probabilities.argmax())
        return codes[best], float(probabilities[best])

    def decode(
        self,
        states: Any,
        prompt: list[int],
        max_new_tokens: int,
        is_cancelled: Callable[[], bool],
        repetition_penalty: float = 1.0,
    ) -> Decoded:
        """Greedy tokens after ``prompt`` until end-of-text or ``max_new_tokens``; tokens already decoded
        score ``repetition_penalty`` times worse (as CTranslate2's penalty)."""
        import numpy as np

        vocabulary = self.vocabulary
        budget = min(max_new_tokens, self.max_positions - len(prompt))
        logits, cache = self._step(np.array([prompt], dtype=np.int64), states, None)
        no_speech_prob = 0.0
        if vocabulary.no_speech is not None:
            first = _log_softmax(logits[0, 0].astype(np.float64))
            no_speech_prob = float(np.exp(first[vocabulary.no_speech]))
        tokens: list[int] = []
        logprobs: list[float] = []
        while len(tokens) < budget:
            if is_cancelled():
                raise errors.RequestCancelled("The transcription was cancelled.")
            scores = self._apply_rules(logits[0, -1].astype(np.float64), tokens)
            if repetition_penalty != 1.0 and tokens:
                seen = np.unique(tokens)
                scores[seen] = np.where(
                    scores[seen] > 0, scores[seen] / repetition_penalty, scores[seen] * repetition_penalty
                )
            logprob = _log_softmax(scores)
            token = int(scores.argmax())
            tokens.append(token)
            logprobs.append(float(logprob[token]))
            if token == vocabulary.eot:
                break
            logits, cache = self._step(np.array([[token]], dtype=np.int64), states, cache)
        return Decoded(tokens, logprobs, no_speech_prob)

    def _apply_rules(self, scores: np.ndarray, tokens: list[int]) -> np.ndarray:
        import numpy as np

        begin = self.vocabulary.timestamp_begin
        scores = scores.copy()
        scores[self._suppress[self._suppress < len(scores)]] = -np.inf
        if not tokens:
            scores[self._begin_suppress] = -np.inf
            scores[:begin] = -np.inf  # the first token is a timestamp ...
            scores[
                begin + round(MAX_INITIAL_TIMESTAMP_S / TIMESTAMP_S) + 1 :
            ] = -np.inf  # ... in the first 1 s
            return scores
        last_was_timestamp = tokens[-1] >= begin
        penultimate_was_timestamp = len(tokens) < 2 or tokens[-2] >= begin
        if last_was_timestamp:
            if penultimate_was_timestamp:
                scores[begin:] = -np.inf  # a segment just ended: text (or the end) follows
            else:
                scores[: self.vocabulary.eot] = -np.inf  # a segment's end: a timestamp (or the end) follows
        stamps = [t for t in tokens if t >= begin]
        if stamps:  # time never goes back (and a finished pair moves on)
            floor = stamps[-1] if last_was_timestamp and not penultimate_was_timestamp else stamps[-1] + 1
            scores[begin:floor] = -np.inf
        logprob = _log_softmax(scores)
        with np.errstate(divide="ignore"):
            timestamp_logprob = np.logaddexp.reduce(logprob[begin:])
        if timestamp_logprob > logprob[:begin].max():
            scores[:begin] = -np.inf
        return scores

    def _step(
        self, ids: np.ndarray, states: Any, cache: dict[str, Any] | None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """One decoder call; ``cache`` None for the prompt (cross-attention computed from ``states``)."""
        import numpy as np

        if cache is None:
            feeds = {
                name: np.zeros((ids.shape[0], heads, 0, size), dtype=dtype)
                for name, (heads, size, dtype) in self._past.items()
            }
        else:
            feeds = dict(cache)
        feeds |= {
            "input_ids": ids,
            "encoder_hidden_states": states,
            "use_cache_branch": np.array([cache is not None]),
        }
        outputs = dict(zip(self._outputs, self.decoder.run(self._outputs, feeds), strict=True))
        new_cache = {}
        for name in self._past:
            present = outputs[name.replace("past_key_values.", "present.")]
            # the cached branch returns empty encoder presents: their keys and values stay as they were
            new_cache[name] = present if present.shape[0] else feeds[name]
        return outputs["logits"], new_cache


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    import numpy as np

    finite = scores[np.isfinite(scores)]
    top = finite.max() if len(finite) else 0.0
    with np.errstate(divide="ignore", over="ignore"):
        return scores - top - np.log(np.exp(scores - top).sum())
