"""NVIDIA NeMo engine for Parakeet TDT: restores a ``.nemo`` file (or a hub name already in the local
Hugging Face cache) and transcribes with word and segment timestamps.

``import nemo`` takes seconds and ~800 MB, so it happens only here, inside the engine host process, when a
Parakeet model loads; ending that process is what returns the memory. NeMo's own logger is rerouted into
the stderr JSON log (never the protocol). The user's vocabulary words become NeMo's phrase boosting (GPU-PB:
a boosting tree fused into greedy-batch decoding, on any device).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asrpro_rpc import errors
from asrpro_rpc.engines.base import LoadInfo, LoadProgress, LoadSpec, SegmentSink, load_done
from asrpro_rpc.engines.parakeet.common import SAMPLE_RATE_HZ, transcribe_parakeet, word
from asrpro_rpc.system.process import default_cpu_threads
from asrpro_rpc.transcripts.types import TranscribeOptions, Transcript, Word
from asrpro_rpc.transcripts.vocabulary import VocabularyRules

if TYPE_CHECKING:
    import numpy as np

    from asrpro_rpc.engines.chunking import Audio

log = logging.getLogger(__name__)

WINDOW_S = 300.0
"""Longest window NeMo sees at once (cut at a pause): bounds memory on long files."""
FULL_ATTENTION_MAX_S = 120.0
"""Windows longer than this use local attention (linear memory) where the encoder supports it."""
LOCAL_ATTENTION_CONTEXT = [128, 128]
"""Frames of left/right context for local attention (NVIDIA's setting for long-form Parakeet)."""

_CUDA_COMPUTE_TYPES = ("bfloat16", "float16", "float32")

BOOSTING_ALPHA = 1.0
"""Weight of the phrase-boosting tree in shallow fusion (NeMo's ``boosting_tree_alpha``; 0 turns it off)."""
BOOSTING_TREE = {"context_score": 1.0, "depth_scaling": 2.0, "use_triton": False}
"""NeMo's defaults for RNN-T/TDT, without Triton (not installed with NeMo; its CUDA kernels are optional)."""


class NemoEngine:
    """A Parakeet (or any NeMo ASR) model on torch; transcriptions take turns window by window."""

    def __init__(self) -> None:
        self._model: Any = None
        self._model_id = ""
        self._languages: tuple[str, ...] = ()
        self._device = "cpu"
        self._autocast_dtype: Any = None
        self._lock = threading.Lock()
        self._local_attention = False
        self._is_cancelled: Callable[[], bool] | None = None
        self._boosted: tuple[str, ...] = ()
        """The phrases in the decoder's boosting tree now."""

    def load(self, spec: LoadSpec, progress: LoadProgress) -> LoadInfo:
        started_s = time.perf_counter()
        source = _check_source(spec)
        progress(0.02, "importing torch")
        os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")  # ops MPS lacks run on the CPU
        try:
            import torch
        except ImportError as exc:
            raise _unavailable(exc) from exc
        progress(0.1, "importing NeMo (takes several seconds)")
        asr_models = import_nemo_asr()
        device, compute_type, warnings = _choose(spec, torch)
        torch.set_num_threads(spec.cpu_threads or default_cpu_threads())
        progress(0.6, f"restoring {Path(source).name}")
        try:
            if os.path.exists(source):
                model = asr_models.ASRModel.restore_from(source, map_location="cpu")
            else:
                model = asr_models.ASRModel.from_pretrained(source, map_location="cpu")
        except Exception as exc:
            raise errors.ModelLoadFailed(
                f"Could not load model {spec.model_id!r} from {source}: {type(exc).__name__}: {exc}",
                model_id=spec.model_id,
            ) from exc
        model.eval()
        _keep_word_confidence(model)
        self._model, self._model_id, self._languages = model, spec.model_id, spec.languages
        self._add_cancel_hooks()
        if device != "cpu":
            progress(0.85, f"moving the model to {device}")
            device, compute_type, more = self._move(device, compute_type, torch)
            warnings += more
        self._device = device
        self._autocast_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(compute_type)
        return load_done(spec, started_s, device=device, compute_type=compute_type, warnings=warnings)

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
        phrases = VocabularyRules.of(options.vocabulary).words
        try:
            return transcribe_parakeet(
                audio,
                options,
                lambda window: self._transcribe_window(window, is_cancelled, phrases),
                on_progress,
                is_cancelled,
                languages=self._languages,
                model_id=self._model_id,
                window_s=WINDOW_S,
                on_segment=on_segment,
            )
        finally:
            self._free_device_cache()

    def unload(self) -> None:
        self._model = None
        self._free_device_cache()

    # --- internals -----------------------------------------------------------------------------------
    def _transcribe_window(
        self,
        audio: np.ndarray,
        is_cancelled: Callable[[], bool] | None = None,
        phrases: tuple[str, ...] = (),
    ) -> list[Word]:
        import contextlib

        import torch

        with self._lock:
            self._is_cancelled = is_cancelled
            self._set_attention(len(audio) > FULL_ATTENTION_MAX_S * SAMPLE_RATE_HZ)
            self._set_boosting(phrases)
            autocast = (
                torch.autocast(self._device, dtype=self._autocast_dtype)
                if self._autocast_dtype is not None
                else contextlib.nullcontext()
            )
            try:
                with torch.inference_mode(), autocast:
                    hypotheses = self._model.transcribe(
                        [audio], batch_size=1, num_workers=0, timestamps=True, verbose=False
                    )
            finally:
                self._is_cancelled = None
        hypothesis = hypotheses[0][0] if isinstance(hypotheses[0], list) else hypotheses[0]
        stamps = (getattr(hypothesis, "timestamp", None) or {}).get("word") or []
        confidences = getattr(hypothesis, "word_confidence", None) or []
        if len(confidences) != len(stamps):
            confidences = [None] * len(stamps)
        return [
            word(w["word"], float(w["start"]), float(w["end"]), None if c is None else float(c))
            for w, c in zip(stamps, confidences, strict=True)
        ]

    def _add_cancel_hooks(self) -> None:
        """A cancel lands within one encoder layer or decoder step, not only between windows."""

        def check(module: Any, args: Any) -> None:
            if self._is_cancelled is not None and self._is_cancelled():
                raise errors.RequestCancelled("The transcription was cancelled.")

        encoder_layers = list(getattr(self._model.encoder, "layers", ()))
        for module in (*encoder_layers, self._model.decoder, self._model.joint):
            module.register_forward_pre_hook(check)

    def _set_attention(self, local: bool) -> None:
        """Local attention for long windows (called with the lock held); no-op where unsupported."""
        encoder_cfg = self._model.cfg.encoder
        if local == self._local_attention or not hasattr(self._model, "change_attention_model"):
            return
        if encoder_cfg.get("self_attention_model") not in ("rel_pos", "rel_pos_local_attn"):
            return
        if local:
            self._model.change_attention_model("rel_pos_local_attn", LOCAL_ATTENTION_CONTEXT)
            self._model.change_subsampling_conv_chunking_factor(1)  # 1 = chunk the convolutions as needed
        else:
            self._model.change_attention_model("rel_pos", [-1, -1])
        self._local_attention = local

    def _set_boosting(self, phrases: tuple[str, ...]) -> None:
        """Rebuild the decoder with a boosting tree of ``phrases`` (none: without one) when they changed
        (called with the lock held). A decoder that can't take one (not greedy-batch RNN-T/TDT) decodes
        unboosted, with a warning in the log."""
        if phrases == self._boosted:
            return
        import copy

        from omegaconf import open_dict

        decoding = copy.deepcopy(self._model.cfg.decoding)
        alpha = BOOSTING_ALPHA if phrases else 0.0
        try:
            with open_dict(decoding):
                decoding.greedy.boosting_tree = (
                    {"key_phrases_list": list(phrases), **BOOSTING_TREE} if phrases else None
                )
                decoding.greedy.boosting_tree_alpha = alpha
            self._model.change_decoding_strategy(decoding, verbose=False)
        except Exception as exc:  # noqa: BLE001 - a decoder without fusion support: transcribe unboosted
            log.warning(
                "NeMo can't boost phrases with this model's decoder; the vocabulary words are not used",
                extra={"model_id": self._model_id, "strategy": decoding.get("strategy"), "error": str(exc)},
            )
            self._boosted = phrases  # don't retry on every window
            return
        self._boosted = phrases
        log.info(
            "phrase boosting set",
            extra={"model_id": self._model_id, "phrases": len(phrases), "alpha": alpha},
        )

    def _move(self, device: str, compute_type: str, torch: Any) -> tuple[str, str, list[str]]:
        """Move to the GPU and run one tiny window there; fall back to the CPU if that fails."""
        try:
            self._model.to(device)
            self._device = device
            self._autocast_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(compute_type)
            self._transcribe_window(torch.zeros(SAMPLE_RATE_HZ).numpy())
        except (RuntimeError, NotImplementedError) as exc:
            self._model.to("cpu")
            self._device, self._autocast_dtype = "cpu", None
            return (
                "cpu",
                "float32",
                [f"NeMo can't run this model on {device} ({exc}); using the CPU instead."],
            )
        return device, compute_type, []

    def _free_device_cache(self) -> None:
        import sys

        torch = sys.modules.get("torch")
        if torch is None:
            return
        if self._device == "cuda":
            torch.cuda.empty_cache()
        elif self._device == "mps":
            torch.mps.empty_cache()


def _keep_word_confidence(model: Any) -> None:
    """Have the decoder keep a confidence per word: the product of its tokens' (normalised) top
    probabilities, on the same 0..1 scale as Whisper's word probabilities, so ``min_confidence`` works."""
    import copy

    from omegaconf import open_dict

    decoding = copy.deepcopy(model.cfg.decoding)
    with open_dict(decoding):
        decoding.confidence_cfg = {
            "preserve_word_confidence": True,
            "preserve_token_confidence": True,
            "aggregation": "prod",
            "method_cfg": {"name": "max_prob", "alpha": 1.0},
        }
    try:
        model.change_decoding_strategy(decoding, verbose=False)
    except Exception:  # noqa: BLE001 - an older or unusual decoder: words just carry no confidence
        log.warning(
            "this NeMo model can't report word confidence; min_confidence won't filter it", exc_info=True
        )


def import_nemo_asr() -> Any:
    """``nemo.collections.asr.models``, with NeMo's logging sent to our stderr log at warning level.

    Raises:
        errors.EngineUnavailable: NeMo isn't installed (or is broken).
    """
    os.environ.setdefault("NEMO_REDIRECT_LOGS_TO_STDERR", "1")
    try:
        from nemo.utils import logging as nemo_logging

        _route_nemo_logging(nemo_logging)
        from nemo.collections.asr import models
    except ImportError as exc:
        raise _unavailable(exc) from exc
    return models


def _route_nemo_logging(nemo_logging: Any) -> None:
    """NeMo's logger writes INFO to whatever stdout was at import; send it through the root logger instead."""
    logger = logging.getLogger("nemo_logger")
    logger.handlers.clear()
    logger.propagate = True
    nemo_logging.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.WARNING)


def _unavailable(exc: ImportError) -> errors.EngineUnavailable:
    return errors.EngineUnavailable(
        f"NVIDIA NeMo is not installed ({exc}); install it with: pip install 'asrpro-rpc[nemo]' "
        "(or export the model to ONNX on a machine that has NeMo: `asrpro models export-onnx ID`).",
        engine="nemo",
    )


def _check_source(spec: LoadSpec) -> str:
    """The ``.nemo`` file to restore, or a hub name (``org/name``) for ``from_pretrained``."""
    path = spec.model_path
    if os.path.isdir(path):
        found = sorted(Path(path).glob("*.nemo"))
        if not found:
            raise errors.ModelLoadFailed(f"{path} holds no .nemo file.", model_id=spec.model_id)
        return str(found[0])
    if os.path.isfile(path) or (path.count("/") == 1 and not path.startswith((".", "/", "~"))):
        return path
    raise errors.ModelLoadFailed(f"Model file {path} does not exist.", model_id=spec.model_id)


def _choose(spec: LoadSpec, torch: Any) -> tuple[str, str, list[str]]:
    """Device and compute type: CUDA bfloat16 where supported (else float16), MPS float32, CPU float32."""
    from asrpro_rpc.system.hardware import DeviceReport, choose_device

    report = DeviceReport(
        cuda_device_count=torch.cuda.device_count() if torch.cuda.is_available() else 0,
        mps_available=bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    )
    device, warnings = choose_device(spec.device, report, supported=("cpu", "cuda", "mps"))
    supported: tuple[str, ...] = ("float32",)
    if device == "cuda":
        torch.cuda.set_device(spec.device_index)
        supported = _CUDA_COMPUTE_TYPES if torch.cuda.is_bf16_supported() else _CUDA_COMPUTE_TYPES[1:]
    requested = spec.compute_type if spec.compute_type not in (None, "auto", "default") else supported[0]
    if requested in supported:
        return device, requested, warnings
    warnings.append(
        f"NeMo runs {requested!r} as {supported[0]!r} on {device} "
        f"(NeMo supports {', '.join(supported)} there)."
    )
    return device, supported[0], warnings
