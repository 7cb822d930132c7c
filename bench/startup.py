"""Start-up: spawn → ``initialize`` answered, beside the floor (a Python that only imports the sidecar's own
dependencies) and ``python -c pass``; also idle RSS. The goal: at most 1.5× the floor.

Usage: python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import psutil

DEPENDENCY_FLOOR = "import asyncio, anyio, msgspec, psutil, platformdirs, logging, json"


def python_running(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def sidecar_initialize() -> tuple[float, int]:
    """Seconds until ``initialize`` is answered, and the idle RSS after it."""
    env = {**os.environ, "ASRPRO_LOG_LEVEL": "warning"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "asrpro_rpc", "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    assert process.stdin and process.stdout
    process.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}\n')
    process.stdin.flush()
    process.stdout.readline()
    elapsed = time.perf_counter() - started
    rss = psutil.Process(process.pid).memory_info().rss
    process.stdin.close()
    process.wait()
    return elapsed, rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    bare, floor, runs = [], [], []
    for _ in range(args.runs):  # interleaved, so a busy moment costs each the same
        bare.append(python_running("pass"))
        floor.append(python_running(DEPENDENCY_FLOOR))
        runs.append(sidecar_initialize())
    bare_s, floor_s = statistics.median(bare), statistics.median(floor)
    init = statistics.median(t for t, _ in runs)
    rss = statistics.median(r for _, r in runs)
    print(f"python -c pass: {bare_s * 1000:.0f} ms")
    print(f"dependency floor ({DEPENDENCY_FLOOR}): {floor_s * 1000:.0f} ms")
    print(f"spawn -> initialize answered: {init * 1000:.0f} ms")
    print(f"ratio to the dependency floor: {init / floor_s:.2f}x (goal <= 1.5x)")
    print(f"ratio to bare python: {init / bare_s:.2f}x")
    print(f"idle RSS after initialize: {rss / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
