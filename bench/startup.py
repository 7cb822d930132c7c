"""Start-up: spawn → ``initialize`` answered, beside ``python -c pass``; also idle RSS.

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


def bare_python() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
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
    bare = statistics.median(bare_python() for _ in range(args.runs))
    runs = [sidecar_initialize() for _ in range(args.runs)]
    init = statistics.median(t for t, _ in runs)
    rss = statistics.median(r for _, r in runs)
    print(f"python -c pass: {bare * 1000:.0f} ms")
    print(f"spawn -> initialize answered: {init * 1000:.0f} ms (ratio {init / bare:.2f}x)")
    print(f"idle RSS after initialize: {rss / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
