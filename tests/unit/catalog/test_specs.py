"""The built-in model catalogue and id lookup."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import pytest

from asrpro_rpc import errors
from asrpro_rpc.catalog import specs as registry
from asrpro_rpc.catalog.specs import BUILTIN_MODELS, DEFAULT_MODEL_ID, ModelSpec, find_spec

SEED_IDS = ("whisper-medium-onnx", "parakeet-tdt-0.6b", "parakeet-tdt-1.1b")
WHISPER_SIZES = (
    "tiny",
    "tiny.en",
    "base",
    "base.en",
    "small",
    "small.en",
    "medium",
    "medium.en",
    "large-v3",
    "large-v3-turbo",
)


def test_catalogue_has_the_seed_ids_every_whisper_size_and_unique_ids() -> None:
    ids = [spec.id for spec in BUILTIN_MODELS]
    assert len(ids) == len(set(ids))
    assert set(SEED_IDS) <= set(ids)
    assert {f"whisper-{size}" for size in WHISPER_SIZES} <= set(ids)
    assert "parakeet-tdt-0.6b-v3" in ids
    assert DEFAULT_MODEL_ID in ids


def test_ct2_sources_match_faster_whisper() -> None:
    from faster_whisper.utils import _MODELS

    for spec in BUILTIN_MODELS:
        if spec.engine == "whisper":
            assert spec.source == _MODELS[spec.id.removeprefix("whisper-")], spec.id


@pytest.mark.parametrize("spec", BUILTIN_MODELS, ids=lambda s: s.id)
def test_spec_is_consistent(spec: ModelSpec) -> None:
    assert spec.files and set(spec.sha256) <= set(spec.files)
    assert all(len(digest) == 64 for digest in spec.sha256.values())
    assert spec.size_bytes > 10_000_000
    assert spec.languages and all(2 <= len(code) <= 3 for code in spec.languages)
    assert not spec.user and spec.path is None
    if spec.id.endswith(".en"):
        assert spec.languages == ("en",) and not spec.translate and not spec.multilingual
    if spec.engine == "nemo":
        assert spec.family == "parakeet" and len(spec.files) == 1 and spec.files[0].endswith(".nemo")


def test_languages_and_translation() -> None:
    base = find_spec("whisper-base")
    assert len(base.languages) == 99 and base.languages[0] == "en" and base.translate
    assert "yue" in find_spec("whisper-large-v3").languages
    assert not find_spec("whisper-large-v3-turbo").translate
    v3 = find_spec("parakeet-tdt-0.6b-v3")
    assert len(v3.languages) == 25 and {"de", "fr", "uk"} <= set(v3.languages)
    assert find_spec("parakeet-tdt-0.6b").source == "nvidia/parakeet-tdt-0.6b-v2"


def test_known_digests_are_pinned_for_the_pack_models() -> None:
    assert set(find_spec("whisper-base").sha256) == {
        "config.json",
        "model.bin",
        "tokenizer.json",
        "vocabulary.txt",
    }
    assert find_spec("whisper-tiny.en").sha256["model.bin"].startswith("1a5afae0")
    assert (
        registry.spec_by_digest("model.bin", registry.WHISPER_BASE_SHA256["model.bin"]).id == "whisper-base"
    )
    assert registry.spec_by_digest("model.bin", "0" * 64) is None


def test_alias_resolves_to_the_selected_model() -> None:
    assert "whisper-1" in registry.ALIASES
    assert registry.resolve_alias("whisper-1", "parakeet-tdt-0.6b") == "parakeet-tdt-0.6b"
    assert registry.resolve_alias("whisper-small", "parakeet-tdt-0.6b") == "whisper-small"


def test_unknown_id_suggests_close_matches() -> None:
    with pytest.raises(errors.ModelNotFound) as caught:
        find_spec("whisper-bse")
    assert "'whisper-base'" in caught.value.message
    assert "asrpro models list" in caught.value.message
    assert caught.value.data["suggestions"][0] == "whisper-base"
    assert caught.value.wire_data()["kind"] == "model_not_found"


def test_unknown_id_without_close_match_still_says_how_to_list() -> None:
    with pytest.raises(errors.ModelNotFound) as caught:
        find_spec("zzz")
    assert "Did you mean" not in caught.value.message
    assert "models.list" in caught.value.message
    assert caught.value.data["suggestions"] == []


def test_spec_round_trips_through_json() -> None:
    spec = find_spec("whisper-tiny.en")
    assert msgspec.json.decode(msgspec.json.encode(spec), type=ModelSpec) == spec


def test_importing_the_model_modules_stays_light() -> None:
    code = (
        "import sys, asrpro_rpc.catalog.specs, asrpro_rpc.catalog.store, asrpro_rpc.catalog.packs, "
        "asrpro_rpc.system.hardware;"
        "print(sorted(m for m in ('ctranslate2', 'faster_whisper', 'numpy', 'torch', 'onnxruntime') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
