"""Streaming latency: feed speech at real-time pace and time when each word first becomes stable.

Usage: python bench/streaming_latency.py [--model whisper-base] [--chunk-ms 50] [--interval-s 0.25]
Speech: five espeak-ng sentences separated by 1 s pauses (the bundled sample if espeak-ng/sox are missing).
Per word, the delay runs from the moment the chunk holding the word's last sample was pushed to the first
``stream.partial`` whose stable text includes it (or its ``stream.final``). Prints p50/p95 of that delay,
CPU seconds of the sidecar + engine per second of audio (CPU use), the real-time factor of the decodes
(busy CPU time / audio time), and how long ``stream.stop`` took after the last push.
"""

from __future__ import annotations

import argparse
import base64
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import psutil

SAMPLE_RATE_HZ = 16000
SENTENCES = (
    "Please open the door and turn on the lights in the kitchen.",
    "Speech recognition works offline on this computer.",
    "Hello world.",
    "Today is Monday and the weather is sunny and warm.",
    "I would like to order two coffees and a glass of water, please.",
)


def speech() -> np.ndarray:
    """16 kHz float32 speech with pauses."""
    if shutil.which("espeak-ng") and shutil.which("sox"):
        parts = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, text in enumerate(SENTENCES):
                raw, wav = Path(tmp, f"{i}.raw.wav"), Path(tmp, f"{i}.wav")
                subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True)
                subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav)], check=True)
                pcm = np.frombuffer(wav.read_bytes()[44:], dtype="<i2").astype(np.float32) / 32768
                parts += [pcm, np.zeros(SAMPLE_RATE_HZ, dtype=np.float32)]
        return np.concatenate(parts)
    from asrpro_rpc.audio.decode import decode_audio
    from asrpro_rpc.samples import sample_path

    audio = decode_audio(str(sample_path()))
    return np.concatenate([audio, np.zeros(2 * SAMPLE_RATE_HZ, dtype=np.float32)])


class Sidecar:
    """The sidecar over its pipes; every incoming message is timestamped on arrival."""

    def __init__(self, log_level: str = "warning") -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "asrpro_rpc", "serve", "--log-level", log_level],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.inbox: queue.Queue[tuple[float, Any]] = queue.Queue()
        self.notifications: list[tuple[float, dict[str, Any]]] = []
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.inbox.put((time.perf_counter(), msgspec.json.decode(line)))

    def send(self, method: str, params: Any) -> int:
        assert self.process.stdin is not None
        self._next_id += 1
        message = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        self.process.stdin.write(msgspec.json.encode(message) + b"\n")
        self.process.stdin.flush()
        return self._next_id

    def drain(self, until_id: int | None = None, timeout_s: float = 300.0) -> Any:
        """Collect notifications; return the result of ``until_id`` if given."""
        while True:
            try:
                arrived, message = self.inbox.get(timeout=timeout_s if until_id is not None else 0)
            except queue.Empty:
                return None
            if "method" in message:
                self.notifications.append((arrived, message))
            elif message.get("id") == until_id:
                if "error" in message:
                    raise RuntimeError(message["error"])
                return message["result"]

    def call(self, method: str, params: Any = None, timeout_s: float = 300.0) -> Any:
        return self.drain(self.send(method, params or {}), timeout_s)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--chunk-ms", type=int, default=50)
    parser.add_argument("--interval-s", type=float, default=0.25)
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--policy", default="dictation", choices=("dictation", "agreement"))
    parser.add_argument("--log-level", default="warning", help="sidecar log (debug: each decode)")
    args = parser.parse_args()
    audio = speech()
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    chunk_samples = SAMPLE_RATE_HZ * args.chunk_ms // 1000
    sidecar = Sidecar(args.log_level)
    sidecar.call("initialize")
    sidecar.call("models.load", {"model": args.model})
    params = {
        "model": args.model,
        "language": "en",
        "interval_s": args.interval_s,
        "beam_size": args.beam_size,
        "policy": args.policy,
    }
    stream_id = sidecar.call("stream.start", params)["stream_id"]
    tree = [psutil.Process(sidecar.process.pid), *psutil.Process(sidecar.process.pid).children(True)]
    cpu_before = sum(sum(p.cpu_times()[:2]) for p in tree)
    pushed_at = push_in_real_time(sidecar, stream_id, pcm, chunk_samples)
    stop_sent = time.perf_counter()
    summary = sidecar.call("stream.stop", {"stream_id": stream_id})
    stop_s = time.perf_counter() - stop_sent
    cpu_s = sum(sum(p.cpu_times()[:2]) for p in tree) - cpu_before
    sidecar.call("shutdown")
    sidecar.process.kill()

    delays = word_delays(sidecar.notifications, pushed_at, chunk_samples)
    audio_s = len(audio) / SAMPLE_RATE_HZ
    cores = psutil.cpu_count() or 1
    partials = sum(1 for _, n in sidecar.notifications if n["method"] == "stream.partial")
    print(
        f"model {args.model}, {audio_s:.1f} s of audio in {args.chunk_ms} ms chunks, "
        f"interval {args.interval_s} s, policy {args.policy}"
    )
    print(f"text: {summary['text']}")
    finals = [n["params"] for _, n in sidecar.notifications if n["method"] == "stream.final"]
    revised = sum(1 for final in finals if final["revised"])
    print(
        f"words {len(delays)}, partials {partials}, finals {len(summary['segments'])} "
        f"({revised} revised the stable words)"
    )
    if delays:
        p95 = statistics.quantiles(delays, n=20)[-1] if len(delays) > 1 else delays[0]
        print(
            f"stable-word latency p50 {statistics.median(delays):.2f} s, p95 {p95:.2f} s, "
            f"max {max(delays):.2f} s"
        )
    print(
        f"CPU use {cpu_s / audio_s:.2f} CPU-s per audio s "
        f"({100 * cpu_s / audio_s / cores:.0f} % of {cores} cores)"
    )
    print(f"real-time factor (busy CPU time / audio time, all cores) {cpu_s / cores / audio_s:.2f}")
    print(f"stream.stop answered {stop_s:.2f} s after the last push")


def push_in_real_time(sidecar: Sidecar, stream_id: str, pcm: bytes, chunk_samples: int) -> list[float]:
    """Push PCM16 ``pcm`` to the stream in chunks at real-time pace and wait out its length; returns the
    wall time each chunk was pushed."""
    pushed_at: list[float] = []
    started = time.perf_counter()
    for index, offset in enumerate(range(0, len(pcm) // 2, chunk_samples)):
        time.sleep(max(0.0, started + offset / SAMPLE_RATE_HZ - time.perf_counter()))
        chunk = pcm[2 * offset : 2 * (offset + chunk_samples)]
        sidecar.send("stream.push", {"stream_id": stream_id, "audio": base64.b64encode(chunk).decode()})
        pushed_at.append(time.perf_counter())
        if index % 10 == 0:
            sidecar.drain()
    time.sleep(max(0.0, started + len(pcm) / 2 / SAMPLE_RATE_HZ - time.perf_counter()))
    return pushed_at


def word_delays(
    notifications: list[tuple[float, dict[str, Any]]], pushed_at: list[float], chunk: int
) -> list[float]:
    """Per final word: first time it was stable minus when its audio's last chunk was pushed."""
    first_stable: dict[tuple[int, int], float] = {}
    finals: list[tuple[float, dict[str, Any]]] = []
    for at, message in notifications:
        params = message["params"]
        if message["method"] == "stream.partial":
            for index in range(len(params["stable"].split())):
                first_stable.setdefault((params["segment_id"], index), at)
        elif message["method"] == "stream.final":
            finals.append((at, params["segment"]))
    delays = []
    for at, segment in finals:
        for index, word in enumerate(segment["words"] or []):
            stable_at = min(first_stable.get((segment["id"], index), at), at)
            chunk_index = min(int(word["end"] * SAMPLE_RATE_HZ) // chunk, len(pushed_at) - 1)
            delays.append(max(0.0, stable_at - pushed_at[chunk_index]))
    return delays


if __name__ == "__main__":
    main()
