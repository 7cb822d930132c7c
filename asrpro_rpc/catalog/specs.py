"""Model registry: the built-in catalogue of speech models and id lookup.

Pure data, no I/O: the model store (``model_store.py``) adds user registrations and knows what is on disk.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Literal

import msgspec

from asrpro_rpc import errors
from asrpro_rpc.config.settings import DEFAULT_ALIASES, SELECTED

Family = Literal["whisper", "parakeet"]
Engine = Literal["whisper", "nemo", "onnx", "whisper-onnx"]
"""``whisper`` = faster-whisper (CTranslate2), ``nemo`` = NVIDIA NeMo ``.nemo`` file, ``onnx`` = a NeMo
(Parakeet) export run by onnx-asr, ``whisper-onnx`` = a Whisper export (onnx-community's layout) run on
ONNX Runtime."""
WordTimes = Literal["aligned", "estimated"]
"""``aligned``: word times come from the audio (cross-attention alignment, or the decoder's own token times);
``estimated``: a segment's time is spread over its words by their length."""


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One speech model: what it is, where it comes from, which files make it up."""

    id: str
    display_name: str
    family: Family
    engine: Engine
    parameters: str
    """Parameter count as people quote it, e.g. ``"74M"`` or ``"1.1B"``."""
    size_bytes: int
    """Download size (all files); approximate where the digests aren't pinned."""
    languages: tuple[str, ...]
    """ISO 639-1 codes (``"yue"``/``"haw"`` where Whisper has no two-letter code) the model transcribes."""
    description: str
    source: str
    """Hugging Face repo id the files come from, or the local path for a user model."""
    revision: str | None = None
    files: tuple[str, ...] = ()
    """File names expected in the model directory (relative paths)."""
    sha256: dict[str, str] = {}
    """Known SHA-256 digests, file name -> hex digest (a subset of ``files``; empty when unknown)."""
    translate: bool = False
    """Whether the model can translate speech into English."""
    word_timestamps: WordTimes = "aligned"
    """How the route times words (``word_timestamps: true``)."""
    user: bool = False
    """Registered by the user (lives at ``path``, not in the model cache)."""
    path: str | None = None
    """Local directory or ``.nemo`` file of a user model."""

    @property
    def multilingual(self) -> bool:
        return len(self.languages) > 1


WHISPER_LANGUAGES: tuple[str, ...] = tuple(
    (
        "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr "
        "bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn "
        "yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su"
    ).split()
)
"""The 99 languages of multilingual Whisper, in token order (large-v3 adds Cantonese, ``yue``)."""

PARAKEET_V3_LANGUAGES: tuple[str, ...] = tuple(
    "bg hr cs da nl en et fi fr de el hu it lv lt mt pl pt ro sk sl es sv ru uk".split()
)

_CT2_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
_CT2_V3_FILES = ("config.json", "model.bin", "preprocessor_config.json", "tokenizer.json", "vocabulary.json")

WHISPER_BASE_SHA256 = {
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
WHISPER_TINY_EN_SHA256 = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}


def _whisper(
    size: str,
    parameters: str,
    size_bytes: int,
    description: str,
    *,
    source: str | None = None,
    files: tuple[str, ...] = _CT2_FILES,
    languages: tuple[str, ...] | None = None,
    translate: bool | None = None,
    revision: str | None = None,
    sha256: dict[str, str] | None = None,
) -> ModelSpec:
    english_only = size.endswith(".en")
    return ModelSpec(
        id=f"whisper-{size}",
        display_name=f"Whisper {size.replace('.en', ' (English)').replace('-', ' ').title()}",
        family="whisper",
        engine="whisper",
        parameters=parameters,
        size_bytes=size_bytes,
        languages=("en",) if english_only else (languages or WHISPER_LANGUAGES),
        description=description,
        source=source or f"Systran/faster-whisper-{size}",
        revision=revision,
        files=files,
        sha256=sha256 or {},
        translate=(not english_only) if translate is None else translate,
    )


_ONNX_SMALL_FILES = (
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "vocab.json",
    "added_tokens.json",
)
_ONNX_DECODER = "onnx/decoder_model_merged.onnx"


def _whisper_onnx(
    size: str,
    parameters: str,
    size_bytes: int,
    description: str,
    *,
    files: tuple[str, ...] = (*_ONNX_SMALL_FILES, "onnx/encoder_model.onnx", _ONNX_DECODER),
    languages: tuple[str, ...] = WHISPER_LANGUAGES,
    translate: bool = True,
) -> ModelSpec:
    """onnx-community's float32 export of Whisper ``size``: the files the ``whisper-onnx`` engine reads."""
    return ModelSpec(
        id=f"whisper-{size}-onnx",
        display_name=f"Whisper {size.replace('-', ' ').title()} (ONNX)",
        family="whisper",
        engine="whisper-onnx",
        parameters=parameters,
        size_bytes=size_bytes,
        languages=languages,
        description=description,
        source=f"onnx-community/whisper-{size}",
        files=files,
        translate=translate,
        word_timestamps="estimated",
    )


BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    _whisper("tiny", "39M", 78_200_000, "Fastest multilingual Whisper; rough accuracy."),
    _whisper(
        "tiny.en",
        "39M",
        78_090_594,
        "Fastest English-only Whisper; good for quick dictation on slow machines.",
        revision="0d3d19a32d3338f10357c0889762bd8d64bbdeba",
        sha256=WHISPER_TINY_EN_SHA256,
    ),
    _whisper(
        "base",
        "74M",
        147_882_941,
        "Small multilingual Whisper with a good speed/accuracy balance on CPU; the default.",
        revision="ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66",
        sha256=WHISPER_BASE_SHA256,
    ),
    _whisper("base.en", "74M", 147_800_000, "English-only base; a little more accurate on English."),
    _whisper("small", "244M", 486_400_000, "Whisper small; clearly better than base, ~3x slower."),
    _whisper("small.en", "244M", 486_300_000, "English-only Whisper small."),
    _whisper("medium", "769M", 1_530_500_000, "Multilingual Whisper medium; accurate, wants a GPU."),
    _whisper("medium.en", "769M", 1_530_400_000, "English-only Whisper medium."),
    _whisper(
        "large-v3",
        "1.55B",
        3_089_700_000,
        "Most accurate Whisper (128 mel bins, adds Cantonese); needs a GPU for real-time use.",
        files=_CT2_V3_FILES,
        languages=(*WHISPER_LANGUAGES, "yue"),
    ),
    _whisper(
        "large-v3-turbo",
        "809M",
        1_620_300_000,
        "large-v3 with a 4-layer decoder: near large-v3 accuracy at several times the speed; "
        "not trained for translation.",
        source="mobiuslabsgmbh/faster-whisper-large-v3-turbo",
        files=_CT2_V3_FILES,
        languages=(*WHISPER_LANGUAGES, "yue"),
        translate=False,
    ),
    _whisper_onnx("tiny", "39M", 151_000_000, "Whisper tiny on ONNX Runtime; the quickest ONNX Whisper."),
    _whisper_onnx("base", "74M", 291_000_000, "Whisper base on ONNX Runtime (CPU, CUDA, CoreML, WebGPU...)."),
    _whisper_onnx("small", "244M", 968_000_000, "Whisper small on ONNX Runtime; clearly better than base."),
    _whisper_onnx("medium", "769M", 3_060_000_000, "Whisper medium on ONNX Runtime; accurate, wants a GPU."),
    _whisper_onnx(
        "large-v3-turbo",
        "809M",
        3_230_000_000,
        "large-v3-turbo on ONNX Runtime (128 mel bins, adds Cantonese); not trained for translation.",
        files=(*_ONNX_SMALL_FILES, "onnx/encoder_model.onnx", "onnx/encoder_model.onnx_data", _ONNX_DECODER),
        languages=(*WHISPER_LANGUAGES, "yue"),
        translate=False,
    ),
    ModelSpec(
        id="parakeet-tdt-0.6b",
        display_name="Parakeet TDT 0.6B v2 (English)",
        family="parakeet",
        engine="nemo",
        parameters="600M",
        size_bytes=2_470_000_000,
        languages=("en",),
        description="NVIDIA FastConformer-TDT: fast, accurate English with punctuation and word timings.",
        source="nvidia/parakeet-tdt-0.6b-v2",
        files=("parakeet-tdt-0.6b-v2.nemo",),
    ),
    ModelSpec(
        id="parakeet-tdt-0.6b-v3",
        display_name="Parakeet TDT 0.6B v3 (25 European languages)",
        family="parakeet",
        engine="nemo",
        parameters="600M",
        size_bytes=2_510_000_000,
        languages=PARAKEET_V3_LANGUAGES,
        description="Multilingual Parakeet TDT for 25 European languages, language detected automatically.",
        source="nvidia/parakeet-tdt-0.6b-v3",
        files=("parakeet-tdt-0.6b-v3.nemo",),
    ),
    ModelSpec(
        id="parakeet-tdt-1.1b",
        display_name="Parakeet TDT 1.1B (English)",
        family="parakeet",
        engine="nemo",
        parameters="1.1B",
        size_bytes=4_280_000_000,
        languages=("en",),
        description="Larger English Parakeet TDT (lowercase, no punctuation); best with a GPU.",
        source="nvidia/parakeet-tdt-1.1b",
        files=("parakeet-tdt-1.1b.nemo",),
    ),
)

DEFAULT_MODEL_ID = "whisper-base"

ALIASES: frozenset[str] = frozenset(DEFAULT_ALIASES)
"""Names no user model may take."""


def resolve_alias(model_id: str, selected_id: str, aliases: dict[str, str] = DEFAULT_ALIASES) -> str:
    """Maps an alias (``whisper-1``) to its target (``selected``: ``selected_id``); other ids unchanged."""
    target = aliases.get(model_id)
    if target is None:
        return model_id
    return selected_id if target == SELECTED else target


def find_spec(model_id: str, specs: Iterable[ModelSpec] = BUILTIN_MODELS) -> ModelSpec:
    """The spec with ``model_id`` among ``specs``.

    Raises:
        errors.ModelNotFound: no such id; the message names close matches and how to list models.
    """
    by_id = {spec.id: spec for spec in specs}
    try:
        return by_id[model_id]
    except KeyError:
        pass
    matches = difflib.get_close_matches(model_id[:200], list(by_id), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
    raise errors.ModelNotFound(
        f"Unknown model {errors.shown(model_id)}.{hint} "
        "List the models with `asrpro models list` (RPC: models.list).",
        model_id=model_id,
        suggestions=matches,
    )


def spec_by_digest(
    file_name: str, sha256_hex: str, specs: Iterable[ModelSpec] = BUILTIN_MODELS
) -> ModelSpec | None:
    """The spec whose known digest of ``file_name`` is ``sha256_hex``, if any (identifies copied files)."""
    return next((s for s in specs if s.sha256.get(file_name) == sha256_hex), None)
