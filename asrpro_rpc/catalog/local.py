"""What a user's own model is: checks a local CTranslate2 directory, ONNX export or ``.nemo`` file and
describes it as a user ``ModelSpec`` (used by ``ModelStore.register``)."""

from __future__ import annotations

import json
from pathlib import Path

from asrpro_rpc import errors
from asrpro_rpc.catalog.specs import WHISPER_LANGUAGES, Engine, Family, ModelSpec


def inspect_local_model(
    model_id: str, path: Path, engine: Engine | None = None, *, display_name: str | None = None
) -> ModelSpec:
    """Checks a user's model path and describes it as a user ``ModelSpec``.

    Raises:
        errors.FileNotFound: ``path`` doesn't exist. errors.InvalidParams: not a usable model.
    """
    path = path.expanduser().resolve()
    if not path.exists():
        raise errors.FileNotFound(f"{path} doesn't exist.", path=str(path))
    if path.is_file():
        if path.suffix != ".nemo" or engine not in (None, "nemo"):
            raise errors.InvalidParams(
                f"{path} is a file; register a .nemo file, or a directory holding a CTranslate2 Whisper "
                "model (model.bin, config.json, tokenizer.json).",
                path=str(path),
            )
        return _user_spec(model_id, path, "nemo", "parakeet", ("en",), [path], display_name)
    files = [p for p in sorted(path.rglob("*")) if p.is_file()]
    names = {p.name for p in files}
    engine = engine or ("onnx" if any(n.endswith(".onnx") for n in names) else "whisper")
    if engine == "whisper":
        missing = [n for n in ("model.bin", "config.json", "tokenizer.json") if not (path / n).is_file()]
        if missing:
            hint = (
                " faster-whisper needs tokenizer.json to work offline: copy it from the model's Hugging Face "
                "repo (e.g. openai/whisper-small or Systran/faster-whisper-small)."
                if "tokenizer.json" in missing
                else ""
            )
            raise errors.InvalidParams(
                f"{path} is not a CTranslate2 Whisper model: missing {', '.join(missing)}.{hint}",
                path=str(path),
                missing=missing,
            )
        return _user_spec(model_id, path, "whisper", "whisper", _whisper_languages(path), files, display_name)
    if engine in ("onnx", "whisper-onnx"):
        if not any(n.endswith(".onnx") for n in names):
            raise errors.InvalidParams(f"{path} holds no .onnx file.", path=str(path))
        if "whisper" in _config_model_type(path):
            return _user_spec(
                model_id, path, "whisper-onnx", "whisper", _whisper_languages(path), files, display_name
            )
        return _user_spec(model_id, path, "onnx", "parakeet", ("en",), files, display_name)
    raise errors.InvalidParams(f"Engine {engine!r} expects a .nemo file, not a directory.", path=str(path))


def _user_spec(
    model_id: str,
    path: Path,
    engine: Engine,
    family: Family,
    languages: tuple[str, ...],
    files: list[Path],
    display_name: str | None,
) -> ModelSpec:
    root = path if path.is_dir() else path.parent
    return ModelSpec(
        id=model_id,
        display_name=display_name or model_id,
        family=family,
        engine=engine,
        parameters="unknown",
        size_bytes=sum(f.stat().st_size for f in files),
        languages=languages,
        description=f"Registered by the user from {path}.",
        source=str(path),
        files=tuple(f.relative_to(root).as_posix() for f in files),
        translate=family == "whisper" and len(languages) > 1,
        word_timestamps="estimated" if engine == "whisper-onnx" else "aligned",
        user=True,
        path=str(path),
    )


def _whisper_languages(directory: Path) -> tuple[str, ...]:
    """English-only Whisper has 51,864 tokens, multilingual 51,865 (large-v3: 51,866, adds Cantonese)."""
    configured = _read_config(directory).get("vocab_size")  # a Hugging Face config (ONNX exports)
    vocab_size = configured if isinstance(configured, int) else 0
    if not vocab_size and (directory / "vocabulary.json").is_file():
        vocab_size = len(json.loads((directory / "vocabulary.json").read_text(encoding="utf-8")))
    elif not vocab_size and (directory / "vocabulary.txt").is_file():
        with open(directory / "vocabulary.txt", "rb") as f:
            vocab_size = sum(1 for _ in f)
    if vocab_size >= 51866:
        return (*WHISPER_LANGUAGES, "yue")
    if vocab_size == 51864:
        return ("en",)
    return WHISPER_LANGUAGES


def _read_config(directory: Path) -> dict[str, object]:
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _config_model_type(directory: Path) -> str:
    return str(_read_config(directory).get("model_type", ""))
