"""Parakeet: real-time factor and peak RSS of the NeMo engine vs the ONNX route, side by side.

Builds the tiny random Parakeet TDT model and its ONNX export (as the tests do) unless ``--nemo FILE``
and ``--onnx DIR`` are given, writes a ``--minutes`` long speech file, and runs each engine in its own
fresh process (load, then transcribe the file), sampling that process's RSS meanwhile.

    .venv/bin/python bench/parakeet.py [--minutes 10] [--nemo M.nemo --onnx DIR] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RATE_HZ = 16000

_CHILD = r"""
import json, sys, time
import numpy as np, wave
from asrpro_rpc.system.log import configure_logging
configure_logging("warning")
from asrpro_rpc.engines import create_engine
from asrpro_rpc.engines.base import LoadSpec
from asrpro_rpc.engines.chunking import Audio
from asrpro_rpc.transcripts.types import TranscribeOptions
engine_name, model_path, wav_path, device = sys.argv[1:5]
with wave.open(wav_path, "rb") as w:
    audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
started = time.perf_counter()
engine = create_engine(engine_name)
info = engine.load(LoadSpec(model_id="bench", model_path=model_path, engine=engine_name, device=device,
                            languages=("en",)), lambda f, m: None)
loaded = time.perf_counter()
result = engine.transcribe(Audio.from_array(audio), TranscribeOptions(), lambda f: None, lambda: False)
done = time.perf_counter()
print(json.dumps({"load_s": loaded - started, "transcribe_s": done - loaded, "device": info.device,
                  "compute_type": info.compute_type, "words": len(result.text.split()),
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


def _run(engine: str, model_path: Path, wav: Path, device: str) -> dict:
    return run_child([sys.executable, "-c", _CHILD, engine, str(model_path), str(wav), device], engine)


def run_child(command: list[str], name: str) -> dict:
    """Run ``command`` in a fresh process: its last stdout line (JSON) plus its peak RSS (``peak_rss_mb``)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--nemo", type=Path, help="a .nemo file (default: the tiny random test model)")
    parser.add_argument("--onnx", type=Path, help="its ONNX export directory")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
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
        wav = _speech_file(work, args.minutes)
        rows = {
            "NeMo": _run("nemo", nemo, wav, args.device),
            "ONNX (onnx-asr)": _run("onnx", onnx, wav, args.device),
        }
    print(f"model {nemo.name if args.nemo else 'tiny random Parakeet TDT'}, {args.minutes:g} min of speech")
    print(f"{'engine':<16} {'device':<8} {'load s':>7} {'transcribe s':>13} {'RTF':>7} {'peak RSS MB':>12}")
    for name, r in rows.items():
        rtf = r["transcribe_s"] / r["audio_s"]
        print(
            f"{name:<16} {r['device']:<8} {r['load_s']:>7.2f} {r['transcribe_s']:>13.2f} {rtf:>7.4f} "
            f"{r['peak_rss_mb']:>12.0f}"
        )


if __name__ == "__main__":
    main()
