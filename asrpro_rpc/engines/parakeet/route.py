"""The ``nemo`` engine: a ``.nemo`` Parakeet model run by NeMo, or by its ONNX export when that suits better.

The choice happens here, in the engine host process, because the facts it needs (does torch see a GPU,
which ONNX Runtime providers exist) cost heavy imports the sidecar must not pay. The ONNX route is taken
when NeMo is not installed (or fails to import), or when ONNX Runtime has an accelerator that starts (CUDA,
ROCm, DirectML; WebGPU, OpenVINO, MLX on request) and torch lacks one; it needs the export
``asrpro models export-onnx ID`` writes next to the file.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

from asrpro_rpc import errors
from asrpro_rpc.engines.base import Engine, LoadInfo, LoadProgress, LoadSpec, SegmentSink
from asrpro_rpc.transcripts.types import TranscribeOptions, Transcript

if TYPE_CHECKING:
    from asrpro_rpc.engines.chunking import Audio

log = logging.getLogger(__name__)

Runtime = Literal["nemo", "onnx"]


def onnx_export_dir(nemo_path: Path) -> Path:
    """Where the ONNX export of ``nemo_path`` lives: ``<dir>/<stem>-onnx/``."""
    return nemo_path.with_name(f"{nemo_path.stem}-onnx")


def choose_runtime(
    *,
    nemo_installed: bool,
    onnx_ready: bool,
    onnx_accelerated: Callable[[], bool],
    torch_accelerated: Callable[[], bool],
) -> tuple[Runtime, str]:
    """NeMo or ONNX, and why. The probes are only called when they decide something.

    Args:
        nemo_installed: NeMo can be imported (as far as we can tell without importing it).
        onnx_ready: onnx-asr is installed and the model has an ONNX export.
        onnx_accelerated: ONNX Runtime has a GPU provider for the requested device.
        torch_accelerated: torch sees a GPU (CUDA or MPS) for the requested device.

    Raises:
        errors.EngineUnavailable: neither route can run the model.
    """
    if not nemo_installed:
        if onnx_ready:
            return "onnx", "NeMo isn't installed: running the model's ONNX export with onnx-asr."
        raise errors.EngineUnavailable(
            "Parakeet models need NVIDIA NeMo (pip install 'asrpro-rpc[nemo]'), or onnx-asr "
            "(pip install 'asrpro-rpc[onnx]') with an ONNX export of the model "
            "(`asrpro models export-onnx ID` on a machine that has NeMo).",
            engine="nemo",
        )
    if onnx_ready and onnx_accelerated() and not torch_accelerated():
        return "onnx", "ONNX Runtime can use this machine's GPU and torch can't: running the ONNX export."
    return "nemo", "NeMo is installed."


class ParakeetEngine:
    """Delegates to ``NemoEngine`` or ``OnnxEngine`` (chosen at load)."""

    def __init__(self) -> None:
        self._inner: Engine | None = None

    def load(self, spec: LoadSpec, progress: LoadProgress) -> LoadInfo:
        path = Path(spec.model_path)
        export = onnx_export_dir(path) if path.suffix == ".nemo" else None
        onnx_ready = (
            export is not None
            and (export / "config.json").is_file()
            and importlib.util.find_spec("onnx_asr") is not None
        )
        nemo_installed = importlib.util.find_spec("nemo") is not None
        runtime, reason = choose_runtime(
            nemo_installed=nemo_installed,
            onnx_ready=onnx_ready,
            onnx_accelerated=lambda: _onnx_accelerated(spec.device),
            torch_accelerated=lambda: _torch_accelerated(spec.device),
        )
        log.info("parakeet runtime chosen", extra={"runtime": runtime, "reason": reason})
        warning = reason if runtime == "onnx" and not nemo_installed else None
        if runtime == "nemo":
            from asrpro_rpc.engines.parakeet.nemo import NemoEngine

            try:
                return self._load(NemoEngine(), spec, progress)
            except errors.EngineUnavailable as exc:
                if not onnx_ready:
                    raise
                warning = f"{exc.message} Running the model's ONNX export with onnx-asr instead."
        assert export is not None
        from asrpro_rpc.engines.parakeet.onnx import OnnxEngine

        info = self._load(OnnxEngine(), msgspec.structs.replace(spec, model_path=str(export)), progress)
        if warning is not None:
            info = msgspec.structs.replace(info, warnings=[*info.warnings, warning])
        return info

    def _load(self, engine: Engine, spec: LoadSpec, progress: LoadProgress) -> LoadInfo:
        info = engine.load(spec, progress)
        self._inner = engine
        return info

    def transcribe(
        self,
        audio: Audio,
        options: TranscribeOptions,
        on_progress: Callable[[float], None],
        is_cancelled: Callable[[], bool],
        on_segment: SegmentSink | None = None,
    ) -> Transcript:
        if self._inner is None:
            raise errors.InternalError("No model is loaded in this engine.")
        return self._inner.transcribe(audio, options, on_progress, is_cancelled, on_segment)

    def unload(self) -> None:
        if self._inner is not None:
            self._inner.unload()
            self._inner = None


def _onnx_accelerated(device: str) -> bool:
    import onnxruntime

    from asrpro_rpc.engines.onnx_providers import PROVIDERS, choose_provider, provider_failure
    from asrpro_rpc.system.hardware import OnnxRuntimeReport, onnx_runtime

    if device == "cpu":
        return False
    chosen, _ = choose_provider(device, onnx_runtime() or OnnxRuntimeReport())
    return chosen != "cpu" and provider_failure(onnxruntime, PROVIDERS[chosen]) is None


def _torch_accelerated(device: str) -> bool:
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        return True
    return device in ("auto", "mps") and torch.backends.mps.is_available()
