"""What this installation can do, found without importing heavy packages."""

from __future__ import annotations

import importlib.util

import msgspec

_ENGINE_MODULES = {
    "whisper": ("faster_whisper", "av"),
    "nemo": ("nemo", "torch"),
    "onnx": ("onnx_asr", "onnxruntime"),
    "whisper-onnx": ("onnx_asr", "onnxruntime"),
}
_FEATURE_MODULES = {"audio": ("sounddevice", "soundfile"), "http": ("fastapi", "uvicorn")}


class Capabilities(msgspec.Struct, frozen=True):
    engines: dict[str, bool]
    """Engine name → its packages are importable (``whisper`` = faster-whisper, ``nemo``, ``onnx``,
    ``whisper-onnx``)."""
    features: dict[str, bool]
    """Optional features → importable (``audio`` recording, ``http`` shim)."""


def _installed(modules: tuple[str, ...]) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in modules)


def probe_capabilities() -> Capabilities:
    """Check which extras are installed (``find_spec`` only: nothing heavy is imported)."""
    return Capabilities(
        engines={name: _installed(mods) for name, mods in _ENGINE_MODULES.items()},
        features={name: _installed(mods) for name, mods in _FEATURE_MODULES.items()},
    )
