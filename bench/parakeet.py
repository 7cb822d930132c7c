"""Parakeet: load time, real-time factor and peak RSS of the NeMo engine vs the ONNX route, the ONNX
export's fp32 vs int8 graphs, and ONNX Runtime's CPU EP vs the WebGPU EP (Vulkan), side by side.

Builds the tiny random Parakeet TDT model and its ONNX export (as the tests do) unless ``--nemo FILE``
and ``--onnx DIR`` are given, adds the int8 graphs (``models export-onnx --quantize int8``'s
``quantize_int8``) when the export lacks them, writes a ``--minutes`` long speech file, and runs each case
in its own fresh process (load, then transcribe the file), sampling that process's RSS meanwhile. Every
ONNX case is compared with ONNX fp32 on the CPU: word agreement is 1 - WER of its transcript against that
one's. The WebGPU case runs where ``onnxruntime-ep-webgpu`` is installed, admitting a software Vulkan
device (Mesa's llvmpipe: ``ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER=1``), so it proves the path, not a speed.

    .venv/bin/python bench/parakeet.py [--minutes 10] [--nemo M.nemo --onnx DIR] [--device cpu] [--no-webgpu]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.wer import wer  # noqa: E402

RATE_HZ = 16000
SOFTWARE_VULKAN = {"ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER": "1"}

_CHILD = r"""
import json, sys, time
import numpy as np, wave
from asrpro_rpc.system.log import configure_logging
configure_logging("warning")
from asrpro_rpc.engines import create_engine
from asrpro_rpc.engines.base import LoadSpec
from asrpro_rpc.engines.chunking import Audio
from asrpro_rpc.transcripts.types import TranscribeOptions
engine_name, model_path, wav_path, device, compute_type = sys.argv[1:6]
with wave.open(wav_path, "rb") as w:
    audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
started = time.perf_counter()
engine = create_engine(engine_name)
info = engine.load(LoadSpec(model_id="bench", model_path=model_path, engine=engine_name, device=device,
                            compute_type=compute_type or None, languages=("en",)), lambda f, m: None)
loaded = time.perf_counter()
result = engine.transcribe(Audio.from_array(audio), TranscribeOptions(), lambda f: None, lambda: False)
done = time.perf_counter()
print(json.dumps({"load_s": loaded - started, "transcribe_s": done - loaded, "device": info.device,
                  "compute_type": info.compute_type, "text": result.text, "warnings": info.warnings,
                  "audio_s": len(audio) / 16000}))
"""


def _speech_file(directory: Path, minutes: float) -> Path:
    """espeak-ng sentences with pauses, repeated to ``minutes``."""
    raw, one = directory / "raw.wav", directory / "one.wav"
    text = "Please open the door and turn on the lights in the kitchen. Speech recognition works offline."
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(RATE_HZ), "-c", "1", "-b", "16", str(one)], check=True)
    with wave.open(str(one), "rb") as w:
        block = w.readframes(w.getnframes()) + bytes(2 * RATE_HZ)
    path = directory / f"speech_{minutes:g}min.wav"
    remaining = 2 * int(minutes * 60 * RATE_HZ)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE_HZ)
        while remaining > 0:
            out.writeframes(block[:remaining])
            remaining -= len(block)
    return path


def _run(
    engine: str,
    model_path: Path,
    wav: Path,
    device: str,
    compute_type: str = "",
    env: dict[str, str] | None = None,
) -> dict:
    command = [sys.executable, "-c", _CHILD, engine, str(model_path), str(wav), device, compute_type]
    return run_child(command, engine, env)


def run_child(command: list[str], name: str, env: dict[str, str] | None = None) -> dict:
    """Run ``command`` in a fresh process: its last stdout line (JSON) plus its peak RSS (``peak_rss_mb``)."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    watched = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    assert process.stdout is not None
    out = process.stdout.read().decode().strip().splitlines()
    if process.returncode != 0 or not out:
        raise SystemExit(f"{name} run failed (exit {process.returncode})")
    return {**json.loads(out[-1]), "peak_rss_mb": peak / 2**20}


def _with_int8(onnx: Path, work: Path) -> Path:
    """``onnx``, or a copy of it with int8 graphs when it has none."""
    if any(onnx.glob("*.int8.onnx")):
        return onnx
    from asrpro_rpc.engines.parakeet.export import quantize_int8

    copy = work / f"{onnx.name}-int8"
    shutil.copytree(onnx, copy)
    quantize_int8(copy)
    return copy


def _size_mb(onnx: Path, pattern: str) -> float:
    return sum(p.stat().st_size for p in onnx.glob(pattern)) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--nemo", type=Path, help="a .nemo file (default: the tiny random test model)")
    parser.add_argument("--onnx", type=Path, help="its ONNX export directory")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-webgpu", action="store_true", help="skip the WebGPU (Vulkan) case")
    args = parser.parse_args()
    webgpu = not args.no_webgpu and importlib.util.find_spec("onnxruntime_ep_webgpu") is not None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        nemo, onnx = args.nemo, args.onnx
        if nemo is None or onnx is None:
            nemo, onnx = work / "tiny-parakeet.nemo", work / "tiny-parakeet-onnx"
            subprocess.run(
                [sys.executable, "-m", "tests.support.make_tiny_parakeet", str(nemo), "--seed", "3",
                 "--onnx", str(onnx)],
                cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        onnx = _with_int8(onnx, work)
        fp32_mb, int8_mb = _size_mb(onnx, "*-model.onnx"), _size_mb(onnx, "*.int8.onnx")
        wav = _speech_file(work, args.minutes)
        rows = {
            "NeMo": _run("nemo", nemo, wav, args.device),
            "ONNX fp32": _run("onnx", onnx, wav, args.device),
            "ONNX int8": _run("onnx", onnx, wav, args.device, "int8"),
        }
        if webgpu:
            rows["ONNX fp32 WebGPU"] = _run("onnx", onnx, wav, "webgpu", env=SOFTWARE_VULKAN)
    model = nemo.name if args.nemo else "tiny random Parakeet TDT (random weights: words are noise)"
    print(
        f"model {model}, {args.minutes:g} min of speech; "
        f"ONNX graphs fp32 {fp32_mb:.1f} MB, int8 {int8_mb:.1f} MB"
    )
    print(
        f"{'case':<17} {'device':<7} {'compute':<8} {'load s':>7} {'transcribe s':>13} {'RTF':>7} "
        f"{'peak RSS MB':>12} {'words':>6} {'agree':>6}"
    )
    reference = rows["ONNX fp32"]["text"]
    for name, r in rows.items():
        rtf = r["transcribe_s"] / r["audio_s"]
        agree = f"{max(0.0, 1 - wer(reference, r['text'])):.3f}" if name.startswith("ONNX") else "-"
        print(
            f"{name:<17} {r['device']:<7} {r['compute_type']:<8} {r['load_s']:>7.2f} "
            f"{r['transcribe_s']:>13.2f} {rtf:>7.4f} {r['peak_rss_mb']:>12.0f} "
            f"{len(r['text'].split()):>6} {agree:>6}"
        )
        for warning in r["warnings"]:
            print(f"  {name}: {warning}")
    fp32, int8 = rows["ONNX fp32"], rows["ONNX int8"]
    print(
        f"int8 / fp32 (ONNX, CPU): load {int8['load_s'] / fp32['load_s']:.2f}x, transcribe "
        f"{int8['transcribe_s'] / fp32['transcribe_s']:.2f}x, "
        f"peak RSS {int8['peak_rss_mb'] / fp32['peak_rss_mb']:.2f}x"
    )
    if "ONNX fp32 WebGPU" in rows:
        gpu = rows["ONNX fp32 WebGPU"]
        print(
            f"WebGPU ({gpu['device']}) / CPU EP, same fp32 export: "
            f"load {gpu['load_s'] / fp32['load_s']:.2f}x, "
            f"transcribe {gpu['transcribe_s'] / fp32['transcribe_s']:.2f}x"
        )


if __name__ == "__main__":
    main()
