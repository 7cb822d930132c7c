"""Start-up: spawn → ``initialize`` answered, beside the floor (a Python that only imports the sidecar's own
dependencies) and ``python -c pass``; also idle RSS. The goal: at most 1.5× the floor.

They run in turn (with ``EVENT_LOOP``), so each round's ratio compares neighbours and a busy moment costs
each alike; the median of those ratios is the figure to quote, and the CPU-time ratio is the steadier one on
a busy machine. Python compiles every module it finds no bytecode for: by default the environment decides
(``PYTHONDONTWRITEBYTECODE`` set, as in this repo's setup, means every start compiles the sidecar and its
dependencies from source); ``--cached-bytecode`` measures an installed sidecar instead, with every module's
bytecode compiled once, beforehand, into a temporary ``PYTHONPYCACHEPREFIX``.

Usage: python bench/startup.py [--runs N] [--cached-bytecode]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

import psutil

DEPENDENCY_FLOOR = "import asyncio, anyio, msgspec, psutil, platformdirs, logging, json"
EVENT_LOOP = f"{DEPENDENCY_FLOOR}, anyio.from_thread, anyio.to_thread; anyio.run(anyio.sleep, 0)"
"""A reference, not the goal: the floor plus running an anyio event loop, as any anyio program must (anyio
imports its backend only then)."""


class Run(NamedTuple):
    wall_s: float
    cpu_s: float
    """User + system seconds: what a busy machine's waiting for a core does not inflate."""
    rss: int = 0


def python_running(code: str, env: dict[str, str]) -> Run:
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code], env=env)
    _, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    process.returncode = 0
    return Run(time.perf_counter() - started, usage.ru_utime + usage.ru_stime)


def sidecar_initialize(env: dict[str, str]) -> Run:
    """Until ``initialize`` is answered: seconds, CPU seconds; and the idle RSS after it."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "asrpro_rpc", "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    assert process.stdin and process.stdout
    process.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}\n')
    process.stdin.flush()
    answer = process.stdout.readline()
    elapsed = time.perf_counter() - started
    assert b'"result"' in answer, f"no initialize result (another sidecar holds the lock?): {answer!r}"
    sidecar = psutil.Process(process.pid)
    cpu = sidecar.cpu_times()
    rss = sidecar.memory_info().rss
    process.stdin.close()
    process.wait()
    return Run(elapsed, cpu.user + cpu.system, rss)


def _ms(runs: list[Run]) -> str:
    wall, cpu = [r.wall_s * 1000 for r in runs], [r.cpu_s * 1000 for r in runs]
    return (
        f"min {min(wall):.0f} ms, median {statistics.median(wall):.0f} ms "
        f"(CPU: min {min(cpu):.0f} ms, median {statistics.median(cpu):.0f} ms)"
    )


def _ratios(label: str, ratios: list[float]) -> str:
    return f"{label}: median {statistics.median(ratios):.2f}x, min {min(ratios):.2f}x, max {max(ratios):.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--cached-bytecode",
        action="store_true",
        help="measure with every module's bytecode compiled beforehand",
    )
    args = parser.parse_args()
    env = {**os.environ, "ASRPRO_LOG_LEVEL": "warning"}
    with tempfile.TemporaryDirectory(prefix="startup-pycache-") as pycache:
        if args.cached_bytecode:
            env = {key: value for key, value in env.items() if key != "PYTHONDONTWRITEBYTECODE"}
            env["PYTHONPYCACHEPREFIX"] = pycache
            python_running(EVENT_LOOP, env)  # each compiles what it imports, once
            sidecar_initialize(env)
        bytecode = (
            "cached"
            if args.cached_bytecode or "PYTHONDONTWRITEBYTECODE" not in env
            else "as found (PYTHONDONTWRITEBYTECODE is set)"
        )
        bare, floor, loop, runs = [], [], [], []
        for _ in range(args.runs):  # interleaved, so a busy moment costs each the same
            bare.append(python_running("pass", env))
            floor.append(python_running(DEPENDENCY_FLOOR, env))
            loop.append(python_running(EVENT_LOOP, env))
            runs.append(sidecar_initialize(env))
    pairs = list(zip(runs, floor, strict=True))
    median_wall = statistics.median(r.wall_s for r in runs)
    print(f"bytecode: {bytecode}; {args.runs} rounds")
    print(f"python -c pass: {_ms(bare)}")
    print(f"dependency floor ({DEPENDENCY_FLOOR}): {_ms(floor)}")
    print(f"the floor running an anyio event loop: {_ms(loop)}")
    print(f"spawn -> initialize answered: {_ms(runs)}")
    print(_ratios("ratio to the dependency floor (goal <= 1.5x)", [r.wall_s / f.wall_s for r, f in pairs]))
    print(_ratios("the same in CPU time", [r.cpu_s / f.cpu_s for r, f in pairs]))
    loop_ratios = [e.cpu_s / f.cpu_s for e, f in zip(loop, floor, strict=True)]
    print(_ratios("the event loop's alone, in CPU time", loop_ratios))
    print(f"ratio to bare python: {median_wall / statistics.median(b.wall_s for b in bare):.2f}x")
    print(f"idle RSS after initialize: {statistics.median(r.rss for r in runs) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
