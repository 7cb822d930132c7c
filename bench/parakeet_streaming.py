"""Streaming latency for Parakeet through the ONNX route: stable-word latency at real-time pace.

The same measurement as ``streaming_latency.py`` (speech, pacing and the per-word delay are its own),
on a Parakeet ONNX export: the tiny random Parakeet TDT built offline as the tests do (random weights: its
words are noise, so read the latency and CPU figures, not the text), or ``--onnx DIR``, a real export
(``asrpro models export-onnx``). The sidecar runs with settings, models and temp files in a temporary
directory, never the user's.

Usage: python bench/parakeet_streaming.py [--onnx DIR] [--chunk-ms 50] [--interval-s 0.5] [--device cpu]
       [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from streaming_latency import (  # the bench folder's helpers
    SAMPLE_RATE_HZ,
    Sidecar,
    push_in_real_time,
    speech,
    word_delays,
)

ROOT = Path(__file__).resolve().parent.parent

MODEL_ID = "parakeet-onnx-bench"


def _tiny_export(work: Path) -> Path:
    """The tiny random Parakeet TDT and its ONNX export (``tests.support.make_tiny_parakeet``)."""
    onnx = work / "tiny-parakeet-onnx"
    subprocess.run(
        [sys.executable, "-m", "tests.support.make_tiny_parakeet", str(work / "tiny-parakeet.nemo"),
         "--seed", "3", "--onnx", str(onnx)],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return onnx


def _one_round(sidecar: Sidecar, audio: np.ndarray, chunk_ms: int, interval_s: float) -> dict:
    """Push ``audio`` at real-time pace through one stream; the delays, stop time and CPU it took."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    chunk_samples = SAMPLE_RATE_HZ * chunk_ms // 1000
    sidecar.notifications.clear()
    stream_id = sidecar.call("stream.start", {"model": MODEL_ID, "interval_s": interval_s})["stream_id"]
    root = psutil.Process(sidecar.process.pid)
    tree = [root, *root.children(True)]
    cpu_before = sum(sum(p.cpu_times()[:2]) for p in tree)
    pushed_at = push_in_real_time(sidecar, stream_id, pcm, chunk_samples)
    stop_sent = time.perf_counter()
    summary = sidecar.call("stream.stop", {"stream_id": stream_id})
    stop_s = time.perf_counter() - stop_sent
    cpu_s = sum(sum(p.cpu_times()[:2]) for p in tree) - cpu_before
    delays = word_delays(sidecar.notifications, pushed_at, chunk_samples)
    partials = sum(1 for _, n in sidecar.notifications if n["method"] == "stream.partial")
    return {"delays": delays, "stop_s": stop_s, "cpu_s": cpu_s, "partials": partials, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--onnx", type=Path, help="a Parakeet ONNX export (default: the tiny random one)")
    parser.add_argument("--chunk-ms", type=int, default=50)
    parser.add_argument("--interval-s", type=float, default=0.5)
    parser.add_argument("--device", default="cpu", help="models.load's device (e.g. webgpu)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        onnx = args.onnx or _tiny_export(work)
        (work / "tmp").mkdir()
        os.environ.update(
            ASRPRO_CONFIG_DIR=str(work / "config"),
            ASRPRO_MODELS_DIR=str(work / "models"),
            ASRPRO_RUNTIME_DIR=str(work / "run"),
            TMPDIR=str(work / "tmp"),
        )
        audio = speech()
        sidecar = Sidecar()
        try:
            sidecar.call("initialize")
            sidecar.call("models.register", {"id": MODEL_ID, "path": str(onnx)})
            info = sidecar.call("models.load", {"model": MODEL_ID, "device": args.device})
            rounds = [_one_round(sidecar, audio, args.chunk_ms, args.interval_s) for _ in range(args.rounds)]
            sidecar.call("shutdown")
        finally:
            sidecar.process.kill()
    audio_s = len(audio) / SAMPLE_RATE_HZ
    cores = psutil.cpu_count() or 1
    model = args.onnx.name if args.onnx else "tiny random Parakeet TDT (random weights: words are noise)"
    print(f"model {model}, ONNX route on {info['device']} ({info.get('provider')})")
    print(
        f"{audio_s:.1f} s of speech in {args.chunk_ms} ms chunks at real-time pace, interval "
        f"{args.interval_s} s, {args.rounds} rounds on one loaded model"
    )
    print(
        f"{'round':>5} {'words':>6} {'partials':>9} {'p50 s':>6} {'p95 s':>6} {'max s':>6} "
        f"{'stop s':>7} {'CPU %':>6}"
    )
    every: list[float] = []
    for number, r in enumerate(rounds, 1):
        delays = r["delays"]
        every += delays
        p50, p95, worst = _quantiles(delays)
        print(
            f"{number:>5} {len(delays):>6} {r['partials']:>9} {p50:>6.2f} {p95:>6.2f} {worst:>6.2f} "
            f"{r['stop_s']:>7.2f} {100 * r['cpu_s'] / audio_s / cores:>6.0f}"
        )
    p50, p95, worst = _quantiles(every)
    print(f"all rounds: stable-word latency p50 {p50:.2f} s, p95 {p95:.2f} s, max {worst:.2f} s")


def _quantiles(delays: list[float]) -> tuple[float, float, float]:
    if not delays:
        return float("nan"), float("nan"), float("nan")
    p95 = statistics.quantiles(delays, n=20)[-1] if len(delays) > 1 else delays[0]
    return statistics.median(delays), p95, max(delays)


if __name__ == "__main__":
    main()
