"""ONNX Runtime engine (onnx-asr) for Parakeet exported from NeMo: the light route (~190 MB of packages
instead of NeMo's ~2 GB) that also reaches ONNX Runtime's CUDA, ROCm, DirectML and CoreML providers and the
plugin EPs (WebGPU: Vulkan / Metal / D3D12; OpenVINO; MLX) when their packages are installed
(``engines.onnx_providers`` chooses).

The model directory holds ``encoder-model.onnx``, ``decoder_joint-model.onnx``, ``vocab.txt`` and a
``config.json`` whose ``model_type`` names the onnx-asr model (``nemo-conformer-tdt``); ``asrpro models
export-onnx ID`` writes exactly that.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asrpro_rpc import errors
from asrpro_rpc.engines.base import LoadInfo, LoadProgress, LoadSpec, SegmentSink, load_done
from asrpro_rpc.engines.onnx_providers import build_on, providers_for, session_options, start_provider
from asrpro_rpc.engines.parakeet.common import SAMPLE_RATE_HZ, transcribe_parakeet, word
from asrpro_rpc.transcripts.types import TranscribeOptions, Transcript, Word

if TYPE_CHECKING:
    import numpy as np

    from asrpro_rpc.engines.chunking import Audio


WINDOW_S = 60.0
"""Longest window at once: the export has full attention (memory grows with the window squared), and a
cancel waits for the window in flight."""
MODEL_TYPES = ("nemo-conformer-tdt", "nemo-conformer-rnnt", "nemo-conformer-ctc")
"""onnx-asr model types this engine runs (NeMo FastConformer exports: Parakeet and relatives)."""
_FRAME_STEP_S = 0.01


class OnnxEngine:
    """A NeMo FastConformer export run by onnx-asr; ``transcribe`` may run from several threads."""

    def __init__(self) -> None:
        self._model: Any = None
        self._model_id = ""
        self._languages: tuple[str, ...] = ()
        self._frame_s = 0.08

    def load(self, spec: LoadSpec, progress: LoadProgress) -> LoadInfo:
        started_s = time.perf_counter()
        config = _read_config(spec)
        progress(0.05, "importing onnx-asr")
        try:
            import onnx_asr
            import onnxruntime
        except ImportError as exc:
            raise errors.EngineUnavailable(
                f"onnx-asr is not installed ({exc}); install it with: pip install 'asrpro-rpc[onnx]'",
                engine="onnx",
            ) from exc
        device, warnings = start_provider(spec.device, onnxruntime)
        quantization, compute_type, more = _quantization(spec, Path(spec.model_path))
        warnings += more
        self._frame_s = _FRAME_STEP_S * int(config.get("subsampling_factor", 8))
        progress(0.3, f"loading the ONNX model on {device}")

        def build(device: str) -> Any:
            model = onnx_asr.load_model(
                str(config["model_type"]),
                spec.model_path,
                quantization=quantization,
                sess_options=session_options(onnxruntime, spec.cpu_threads),
                providers=providers_for(device),
            ).with_timestamps()
            model.recognize(_silence())  # fails here if the provider can't run the graph
            return model

        try:
            self._model, device = build_on(device, build, warnings)
        except Exception as exc:
            raise errors.ModelLoadFailed(
                f"Could not load ONNX model {spec.model_id!r} from {spec.model_path}: "
                f"{type(exc).__name__}: {exc}",
                model_id=spec.model_id,
            ) from exc
        self._model_id, self._languages = spec.model_id, spec.languages
        return load_done(
            spec,
            started_s,
            device=device,
            compute_type=compute_type,
            warnings=warnings,
            provider=providers_for(device)[0],
        )

    def transcribe(
        self,
        audio: Audio,
        options: TranscribeOptions,
        on_progress: Callable[[float], None],
        is_cancelled: Callable[[], bool],
        on_segment: SegmentSink | None = None,
    ) -> Transcript:
        if self._model is None:
            raise errors.InternalError("No model is loaded in this engine.")
        return transcribe_parakeet(
            audio,
            options,
            self._transcribe_window,
            on_progress,
            is_cancelled,
            languages=self._languages,
            model_id=self._model_id,
            window_s=WINDOW_S,
            on_segment=on_segment,
        )

    def unload(self) -> None:
        self._model = None

    def _transcribe_window(self, audio: np.ndarray) -> list[Word]:
        result = self._model.recognize(audio, sample_rate=SAMPLE_RATE_HZ)
        return words_from_tokens(result.tokens or [], result.timestamps or [], result.logprobs, self._frame_s)


def words_from_tokens(
    tokens: list[str], starts_s: list[float], logprobs: list[float] | None, frame_s: float
) -> list[Word]:
    """Tokens (a leading space starts a word) into words; a word ends one frame after its last token starts.

    A word's probability is the product of its tokens' probabilities.
    """
    import math

    groups: list[list[int]] = []
    for i, token in enumerate(tokens):
        if not groups or token.startswith(" "):
            groups.append([])
        groups[-1].append(i)
    words = []
    for group in groups:
        text = "".join(tokens[i] for i in group).strip()
        if not text:
            continue
        probability = math.exp(sum(logprobs[i] for i in group)) if logprobs else None
        words.append(word(text, starts_s[group[0]], starts_s[group[-1]] + frame_s, probability))
    return words


def _read_config(spec: LoadSpec) -> dict[str, Any]:
    path = Path(spec.model_path) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise errors.ModelLoadFailed(
            f"{spec.model_path} is not an ONNX model export: can't read {path.name} ({exc}).",
            model_id=spec.model_id,
        ) from exc
    if not isinstance(config, dict) or config.get("model_type") not in MODEL_TYPES:
        model_type = config.get("model_type") if isinstance(config, dict) else None
        raise errors.ModelLoadFailed(
            f"The ONNX engine runs NeMo exports ({', '.join(MODEL_TYPES)}); {spec.model_path} holds "
            f"model_type {model_type!r}.",
            model_id=spec.model_id,
        )
    return config


def _quantization(spec: LoadSpec, directory: Path) -> tuple[str | None, str, list[str]]:
    """int8 when asked for and the export has ``*.int8.onnx`` files, else float32."""
    requested = spec.compute_type
    if requested in (None, "auto", "default", "float32"):
        return None, "float32", []
    if requested.startswith("int8") and any(directory.glob("*.int8.onnx")):
        return "int8", "int8", []
    return None, "float32", [f"This ONNX export has no {requested!r} variant; running it as float32."]


def _silence() -> np.ndarray:
    import numpy as np

    return np.zeros(SAMPLE_RATE_HZ // 2, dtype=np.float32)
