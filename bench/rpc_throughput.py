"""Ping throughput and latency over a real pipe, beside the same calls dispatched in-process.

Usage: python bench/rpc_throughput.py [--count N]
Prints pipelined pings/s, sequential round-trip p50/p99, and in-process dispatch calls/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import anyio

from asrpro_rpc.methods import all_methods
from asrpro_rpc.protocol.session import Session
from asrpro_rpc.services.container import App


def _spawn() -> subprocess.Popen[bytes]:
    env = {**os.environ, "ASRPRO_LOG_LEVEL": "warning"}
    return subprocess.Popen(
        [sys.executable, "-m", "asrpro_rpc", "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )


def pipelined(count: int) -> float:
    """Write ``count`` pings at once, read every answer; pings per second."""
    process = _spawn()
    assert process.stdin and process.stdout
    payload = b"".join(b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n' % i for i in range(count))
    process.stdin.write(b'{"jsonrpc":"2.0","id":-1,"method":"ping"}\n')
    process.stdin.flush()
    process.stdout.readline()
    started = time.perf_counter()
    process.stdin.write(payload)
    process.stdin.flush()
    for _ in range(count):
        process.stdout.readline()
    elapsed = time.perf_counter() - started
    process.stdin.close()
    process.wait()
    return count / elapsed


def round_trips(count: int) -> list[float]:
    """One ping at a time; each round trip in seconds."""
    process = _spawn()
    assert process.stdin and process.stdout
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        process.stdin.write(b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n' % i)
        process.stdin.flush()
        process.stdout.readline()
        latencies.append(time.perf_counter() - started)
    process.stdin.close()
    process.wait()
    return latencies[10:]


async def _in_process(count: int) -> float:
    received = 0
    done = anyio.Event()

    def send(_: bytes) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    session = Session(all_methods(), App(), send)
    lines = [b'{"jsonrpc":"2.0","id":%d,"method":"ping"}' % i for i in range(count)]
    async with anyio.create_task_group() as task_group:
        session._task_group = task_group  # drive the session's line handling without stdio
        started = time.perf_counter()
        for line in lines:
            session.handle_line(line)
        await done.wait()
        elapsed = time.perf_counter() - started
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20000)
    args = parser.parse_args()
    rate = pipelined(args.count)
    latencies = round_trips(2000)
    quantiles = statistics.quantiles(latencies, n=100)
    in_process = anyio.run(_in_process, args.count)
    print(f"pipelined pings over the pipe: {rate:,.0f}/s ({args.count} pings)")
    print(f"sequential round trip: p50 {quantiles[49] * 1e6:,.0f} us, p99 {quantiles[98] * 1e6:,.0f} us")
    print(f"in-process dispatch: {in_process:,.0f} calls/s; pipe/in-process ratio {rate / in_process:.2f}")


if __name__ == "__main__":
    main()
