"""``asrpro models export-onnx ID``: export a ``.nemo`` Parakeet model with NeMo into the directory layout
onnx-asr loads (``encoder-model.onnx``, ``decoder_joint-model.onnx``, ``vocab.txt``, ``config.json``).
``--quantize int8`` adds ONNX Runtime's dynamic int8 quantization of both graphs (``*.int8.onnx``, about a
quarter of the size), which the ``onnx`` engine runs when the load asks for ``compute_type: int8``.

The export is written to a temporary sibling directory and renamed into place, so a failed export never
leaves a half-written model where the ``nemo`` engine would pick it up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from asrpro_rpc import errors

log = logging.getLogger(__name__)

Quantization = Literal["int8"]


def export_onnx(
    nemo_path: Path,
    out_dir: Path,
    progress: Callable[[str], None] = lambda message: None,
    *,
    quantize: Quantization | None = None,
) -> Path:
    """Export ``nemo_path`` to ``out_dir`` (replaced if present), with int8 copies of the graphs when
    ``quantize`` says so; returns ``out_dir``.

    Raises:
        errors.EngineUnavailable: NeMo isn't installed. errors.ModelLoadFailed: the file can't be restored
        or exported.
    """
    from asrpro_rpc.engines.parakeet.nemo import import_nemo_asr

    progress("importing NeMo")
    models = import_nemo_asr()
    progress(f"restoring {nemo_path.name}")
    try:
        model = models.ASRModel.restore_from(str(nemo_path), map_location="cpu").eval()
    except Exception as exc:
        raise errors.ModelLoadFailed(f"Could not restore {nemo_path}: {type(exc).__name__}: {exc}") from exc
    model_type, vocabulary = _describe(model)
    partial = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        progress(f"exporting to ONNX ({model_type})")
        model.export(str(partial / "model.onnx"))
        (partial / "vocab.txt").write_text(
            "".join(f"{token} {i}\n" for i, token in enumerate(vocabulary)), encoding="utf-8"
        )
        config = {
            "model_type": model_type,
            "features_size": int(model.cfg.preprocessor.features),
            "subsampling_factor": int(model.cfg.encoder.subsampling_factor),
        }
        (partial / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if quantize == "int8":
            quantize_int8(partial, progress)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(partial, out_dir)
    except Exception as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, errors.AsrproError):
            raise
        raise errors.ModelLoadFailed(f"Exporting {nemo_path} failed: {type(exc).__name__}: {exc}") from exc
    return out_dir


def quantize_int8(directory: Path, progress: Callable[[str], None] = lambda message: None) -> None:
    """Write ``<name>.int8.onnx`` beside each float graph: weights int8, activations quantized at run time
    (ONNX Runtime's dynamic quantization of MatMul/Gemm; the convolutions stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for graph in sorted(directory.glob("*-model.onnx")):
        progress(f"quantizing {graph.name} to int8")
        quantize_dynamic(
            graph,
            graph.with_name(graph.name.replace(".onnx", ".int8.onnx")),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
        )


def _describe(model: Any) -> tuple[str, list[str]]:
    """onnx-asr's model type and the vocabulary (the blank token last, as NeMo numbers it)."""
    joint = getattr(model, "joint", None)
    if joint is not None:
        tdt = model.cfg.decoding.get("model_type") == "tdt" or getattr(joint, "num_extra_outputs", 0) > 0
        return ("nemo-conformer-tdt" if tdt else "nemo-conformer-rnnt"), [*joint.vocabulary, "<blk>"]
    decoder_vocabulary = getattr(model.decoder, "vocabulary", None)
    if decoder_vocabulary is None:
        raise errors.InvalidParams(
            f"{type(model).__name__} is not a transducer or CTC model; onnx-asr can't run its export."
        )
    return "nemo-conformer-ctc", [*decoder_vocabulary, "<blk>"]


def _say(message: str) -> None:
    sys.stderr.write(f"asrpro: {message}\n")


def export_command(model: str, output: str | None, quantize: Quantization | None = None) -> int:
    """The CLI: resolve ``model`` (an id or a ``.nemo`` path), export, report on stderr."""
    from asrpro_rpc.catalog.store import ModelStore
    from asrpro_rpc.engines.parakeet.route import onnx_export_dir

    started_s = time.perf_counter()
    try:
        if model.endswith(".nemo"):
            nemo_path = Path(model).expanduser().resolve()
            if not nemo_path.is_file():
                raise errors.FileNotFound(f"{nemo_path} doesn't exist.", path=str(nemo_path))
        else:
            store = ModelStore.default()
            spec = store.get(model)
            nemo_path = store.resolve_path(spec)
            if spec.engine != "nemo" or nemo_path.suffix != ".nemo":
                raise errors.InvalidParams(
                    f"Model {spec.id!r} is not a NeMo model (engine {spec.engine!r}); only .nemo models "
                    "export to ONNX.",
                    model_id=spec.id,
                )
        out_dir = Path(output).expanduser().resolve() if output else onnx_export_dir(nemo_path)
        with contextlib.redirect_stdout(sys.stderr):  # NeMo and its telemetry print; stdout stays clean
            export_onnx(nemo_path, out_dir, _say, quantize=quantize)
    except errors.AsrproError as exc:
        sys.stderr.write(f"asrpro: {exc.message}\n")
        return 1
    sys.stderr.write(f"asrpro: wrote {out_dir} in {time.perf_counter() - started_s:.1f} s\n")
    return 0
