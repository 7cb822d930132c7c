"""Speech engines behind one small interface (``base.Engine``), looked up by name and imported lazily."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from asrpro_rpc import errors

if TYPE_CHECKING:
    from asrpro_rpc.engines.base import Engine

ENGINES: dict[str, tuple[str, str, str]] = {
    "whisper": ("asrpro_rpc.engines.whisper", "WhisperEngine", "whisper"),
    "nemo": ("asrpro_rpc.engines.parakeet.route", "ParakeetEngine", "nemo"),
    "onnx": ("asrpro_rpc.engines.parakeet.onnx", "OnnxEngine", "onnx"),
    "whisper-onnx": ("asrpro_rpc.engines.whisper_onnx.engine", "WhisperOnnxEngine", "onnx"),
}
"""Engine name -> (module, class, pip extra that provides its dependencies)."""


def create_engine(name: str) -> Engine:
    """A fresh, unloaded engine; imports its module (and heavy dependencies) only now."""
    try:
        module_name, class_name, extra = ENGINES[name]
    except KeyError:
        known = ", ".join(sorted(ENGINES))
        raise errors.InvalidParams(f"Unknown engine {name!r}; known engines: {known}.", engine=name) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise errors.EngineUnavailable(
            f"The {name} engine is not installed ({exc}); install it with: pip install 'asrpro-rpc[{extra}]'",
            engine=name,
        ) from exc
    engine: Engine = getattr(module, class_name)()
    return engine
