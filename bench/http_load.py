"""Load on the OpenAI-compatible HTTP shim: N concurrent clients on loopback, bounded in count and time.

Usage: python bench/http_load.py [--clients 4] [--duration-s 10] [--rounds 3] [--model whisper-tiny.en]
       [--endpoint transcriptions|models] [--file PATH]

Spawns ``asrpro serve --http 127.0.0.1:0`` (private settings dir, the usual model cache; an installed offline
weight pack is assembled into it), loads the model, then runs ``--rounds`` rounds of ``--clients`` threads,
each sending the short file to ``/v1/audio/transcriptions`` (or GET ``/v1/models``, the shim's own cost)
until ``--duration-s`` has passed. Prints requests/s, p50/p99 latency, errors, and the RSS of the sidecar
plus its engine process before and after each round (it should not grow from round to round).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

from asrpro_rpc.catalog.packs import available_packs
from asrpro_rpc.catalog.store import ModelStore
from asrpro_rpc.protocol.client import SidecarClient
from asrpro_rpc.samples import sample_path

MAX_CLIENTS = 64
MAX_DURATION_S = 300.0
FORM = {"response_format": "json", "language": "en", "beam_size": "1", "temperature_fallback": "false"}


def tree_rss(pid: int) -> int:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def client_loop(
    url: str, endpoint: str, audio: bytes, deadline_s: float, latencies_s: list[float], errors: list[str]
) -> None:
    with httpx.Client(base_url=url, timeout=120) as http:
        while time.perf_counter() < deadline_s:
            started = time.perf_counter()
            try:
                if endpoint == "models":
                    response = http.get("/v1/models")
                else:
                    files = {"file": ("speech.ogg", audio, "audio/ogg")}
                    response = http.post(
                        "/v1/audio/transcriptions", files=files, data={"model": "whisper-1", **FORM}
                    )
                ok = response.status_code == 200
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
                continue
            elapsed_s = time.perf_counter() - started
            if ok:
                latencies_s.append(elapsed_s)
            else:
                errors.append(str(response.status_code))


def run_round(url: str, endpoint: str, audio: bytes, clients: int, duration_s: float) -> dict[str, float]:
    latencies_s: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    deadline_s = started + duration_s
    threads = [
        threading.Thread(target=client_loop, args=(url, endpoint, audio, deadline_s, latencies_s, errors))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - started
    ordered = sorted(latencies_s) or [float("nan")]
    return {
        "requests": len(latencies_s),
        "rps": len(latencies_s) / wall_s,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "errors": len(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="whisper-tiny.en")
    parser.add_argument("--endpoint", choices=["transcriptions", "models"], default="transcriptions")
    parser.add_argument("--file", type=Path, default=sample_path())
    args = parser.parse_args()
    clients = max(1, min(args.clients, MAX_CLIENTS))
    duration_s = max(0.5, min(args.duration_s, MAX_DURATION_S))
    if args.model in available_packs():
        ModelStore.default().install_pack(args.model)
    audio = args.file.read_bytes()
    mib = 2**20
    with tempfile.TemporaryDirectory() as config_dir:
        env = {**os.environ, "ASRPRO_CONFIG_DIR": config_dir}
        argv = ["--allow-multiple", "--log-level", "warning", "--http", "127.0.0.1:0"]
        with SidecarClient(argv, env=env) as sidecar:
            url = sidecar.call("http.status")["url"]
            sidecar.call("models.select", {"model": args.model, "load": True})
            pid = sidecar.process.pid
            print(f"{args.endpoint} x {clients} clients, {duration_s:g} s a round, model {args.model}")
            print(f"file {args.file.name} ({len(audio) / 1024:.0f} KiB), shim at {url}")
            for number in range(1, args.rounds + 1):
                before = tree_rss(pid)
                result = run_round(url, args.endpoint, audio, clients, duration_s)
                after = tree_rss(pid)
                print(
                    f"round {number}: {result['requests']:.0f} ok, {result['rps']:.2f} req/s, "
                    f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, "
                    f"errors {result['errors']:.0f}, RSS {before / mib:.0f} -> {after / mib:.0f} MiB"
                )


if __name__ == "__main__":
    main()
