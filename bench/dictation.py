"""Dictation: how soon the text is there when the user stops speaking, idle and behind a long file.

Usage: python bench/dictation.py [--model whisper-base] [--rounds 5] [--background-minutes 10]
A 6 s two-sentence espeak-ng clip is pushed through ``stream.*`` at real-time pace in 50 ms chunks; the
time from ``stream.stop`` sent to its answer (the final text) is measured per round, beside
``transcribe.file`` of the same clip, in one run. Then the same while a long file (speech and pauses) is
transcribed in the background. Both stream policies (``dictation``, ``agreement``) run, interleaved
round by round. Prints p50/p95 of each, the ratios (goals: stop → final p95 ≤ 0.25× the file; behind a
long file ≤ 1.5× idle), each policy's final WER beside the file's, and the CPU share while streaming.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from streaming_latency import SAMPLE_RATE_HZ, Sidecar, push_in_real_time  # noqa: E402 - the bench folder's own helpers

from tests.support.wer import wer  # noqa: E402

CLIP_TEXT = "Please open the door and turn on the lights in the kitchen. Speech recognition works offline."
CHUNK_S = 0.05


def speak(text: str, folder: Path) -> np.ndarray:
    raw, out = folder / "raw.wav", folder / "clip.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
    with wave.open(str(out), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").copy()


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE_HZ)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


def dictate(sidecar: Sidecar, model: str, clip: np.ndarray, policy: str) -> tuple[float, str, float]:
    """One dictation at real-time pace: (stop → final seconds, final text, CPU seconds of the tree)."""
    tree = [psutil.Process(sidecar.process.pid), *psutil.Process(sidecar.process.pid).children(True)]
    cpu_before = sum(sum(p.cpu_times()[:2]) for p in tree)
    params = {"model": model, "language": "en", "policy": policy}
    stream_id = sidecar.call("stream.start", params)["stream_id"]
    push_in_real_time(sidecar, stream_id, clip.astype("<i2").tobytes(), int(CHUNK_S * SAMPLE_RATE_HZ))
    stop_sent = time.perf_counter()
    summary = sidecar.call("stream.stop", {"stream_id": stream_id})
    stop_s = time.perf_counter() - stop_sent
    cpu_s = sum(sum(p.cpu_times()[:2]) for p in tree) - cpu_before
    return stop_s, summary["text"], cpu_s


def transcribe_file(sidecar: Sidecar, model: str, path: Path) -> tuple[float, str]:
    started = time.perf_counter()
    result = sidecar.call("transcribe.file", {"path": str(path), "model": model, "language": "en"})
    return time.perf_counter() - started, result["text"]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


POLICIES = ("dictation", "agreement")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--background-minutes", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = speak(CLIP_TEXT, folder)
        clip_path = write_wav(folder / "clip.wav", clip)
        pause = np.zeros(2 * SAMPLE_RATE_HZ, dtype=np.int16)
        block = np.concatenate([clip, pause])
        repeats = int(args.background_minutes * 60 * SAMPLE_RATE_HZ / len(block)) + 1
        long_path = write_wav(folder / "long.wav", np.tile(block, repeats))
        sidecar = Sidecar()
        sidecar.call("initialize")
        sidecar.call("models.load", {"model": args.model})
        transcribe_file(sidecar, args.model, clip_path)  # warm-up
        dictate(sidecar, args.model, clip, POLICIES[0])
        runs: dict[str, list[tuple[float, str, float]]] = {policy: [] for policy in POLICIES}
        files: list[tuple[float, str]] = []
        for _ in range(args.rounds):  # interleaved, so that load on the machine hits every column alike
            for policy in POLICIES:
                runs[policy].append(dictate(sidecar, args.model, clip, policy))
            files.append(transcribe_file(sidecar, args.model, clip_path))
        background_id = sidecar.send(
            "transcribe.file", {"path": str(long_path), "model": args.model, "language": "en"}
        )
        busy_stop = [dictate(sidecar, args.model, clip, POLICIES[0])[0] for _ in range(args.rounds)]
        background_done = sidecar.drain(until_id=background_id, timeout_s=0.01) is not None
        sidecar.process.kill()
    report(args, len(clip) / SAMPLE_RATE_HZ, runs, files, busy_stop, background_done)


def report(
    args: argparse.Namespace,
    clip_s: float,
    runs: dict[str, list[tuple[float, str, float]]],
    files: list[tuple[float, str]],
    busy_stop: list[float],
    background_done: bool,
) -> None:
    median = statistics.median
    file_s = [seconds for seconds, _ in files]
    file_wer = statistics.mean(wer(CLIP_TEXT, text) for _, text in files)
    cores = psutil.cpu_count() or 1
    print(f"model {args.model}, a {clip_s:.1f} s clip, {args.rounds} rounds")
    print(
        f"transcribe.file            p50 {median(file_s):.2f} s  p95 {p95(file_s):.2f} s  WER {file_wer:.3f}"
    )
    for policy, rounds in runs.items():
        stop_s = [seconds for seconds, _, _ in rounds]
        stream_wer = statistics.mean(wer(CLIP_TEXT, text) for _, text, _ in rounds)
        cpu = statistics.mean(cpu_s for _, _, cpu_s in rounds) / clip_s
        print(
            f"{policy:<10} stop -> final p50 {median(stop_s):.2f} s  p95 {p95(stop_s):.2f} s"
            f"  = {p95(stop_s) / p95(file_s):.2f}x the file (goal <= 0.25x)  WER {stream_wer:.3f}"
            f"  CPU {cpu:.2f} CPU-s per audio s ({100 * cpu / cores:.0f}% of {cores} cores)"
        )
    idle = [seconds for seconds, _, _ in runs[POLICIES[0]]]
    minutes = f"{args.background_minutes:g}"
    print(
        f"{POLICIES[0]} behind a {minutes}-minute file: stop -> final p50 {median(busy_stop):.2f} s"
        f"  p95 {p95(busy_stop):.2f} s, {p95(busy_stop) / p95(idle):.2f}x idle (goal <= 1.5x)"
    )
    if background_done:
        print("  (the background file finished before the last round: raise --background-minutes)")


if __name__ == "__main__":
    main()
