"""Whisper on ONNX Runtime (the ``whisper-onnx`` engine) vs CTranslate2 (the ``whisper`` engine) on the CPU.

No real ONNX export is at hand offline (hub downloads fail here), so both routes run the *same* randomly
initialised Whisper with a real size's dimensions (``--size``: tiny, base, small): built with transformers,
exported to ONNX in onnx-community's layout (``tests/support/make_tiny_whisper_onnx.py``) and converted to
CTranslate2 with its ``TransformersConverter`` (float32, and int8 as the Whisper route runs on CPUs). Both
decode greedily with timestamps, English given, ``--tokens`` new tokens at most per 30 s window (a random
model babbles to the limit, so both decode about the same number of tokens), each in a fresh process
sampling its RSS, the routes interleaved round by round. Ratios are ONNX ÷ CTranslate2 from the same run
(the median of the rounds' ratios).

    .venv/bin/python bench/whisper_onnx.py [--size tiny] [--minutes 2] [--tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIZES = {"tiny": (384, 4, 6), "base": (512, 6, 8), "small": (768, 12, 12)}
"""Whisper size -> (d_model, layers, heads) of the real model."""

_ENGINE_CHILD = r"""
import json, sys, time, wave
import numpy as np
from asrpro_rpc.system.log import configure_logging
configure_logging("warning")
from asrpro_rpc.engines import create_engine
from asrpro_rpc.engines.base import LoadSpec
from asrpro_rpc.engines.chunking import Audio
from asrpro_rpc.transcripts.types import TranscribeOptions
engine_name, model_path, wav_path, compute_type, threads, tokens = sys.argv[1:7]
with wave.open(wav_path, "rb") as w:
    audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
started = time.perf_counter()
engine = create_engine(engine_name)
spec = LoadSpec(model_id="bench", model_path=model_path, engine=engine_name, device="cpu",
                compute_type=compute_type, cpu_threads=int(threads))
info = engine.load(spec, lambda f, m: None)
loaded = time.perf_counter()
options = TranscribeOptions(language="en", beam_size=1, best_of=1, temperature=0.0, vad_filter=False,
                            condition_on_previous_text=False, max_new_tokens=int(tokens))
result = engine.transcribe(Audio.from_array(audio), options, lambda f: None, lambda: False)
done = time.perf_counter()
print(json.dumps({"load_s": loaded - started, "transcribe_s": done - loaded, "audio_s": len(audio) / 16000,
                  "tokens": sum(len(s.tokens) for s in result.segments)}))
"""
"""One engine, as the sidecar runs it: load, then transcribe the whole file."""

_MODEL_CHILD = r"""
import json, sys, time
import numpy as np
route, model_path, compute_type, threads, tokens, repeats = sys.argv[1:7]
threads, tokens, repeats = int(threads), int(tokens), int(repeats)
SOT, EN, TRANSCRIBE, NO_TIMESTAMPS, EOT = 50258, 50259, 50359, 50363, 50257
prompt = [SOT, EN, TRANSCRIBE, NO_TIMESTAMPS]
rng = np.random.default_rng(0)
samples = (rng.standard_normal(16000 * 30) * 0.1).astype(np.float32)
encode_s, decode_s = [], []
if route == "onnx":
    from asrpro_rpc.engines.base import LoadSpec
    from asrpro_rpc.engines.whisper_onnx.engine import WhisperOnnxEngine
    engine = WhisperOnnxEngine()
    engine.load(LoadSpec(model_id="bench", model_path=model_path, engine="whisper-onnx", device="cpu",
                         cpu_threads=threads), lambda f, m: None)
    sessions = engine._sessions
    for _ in range(repeats):
        t0 = time.perf_counter(); states = sessions.encode(samples); t1 = time.perf_counter()
        logits, cache = sessions._step(np.array([prompt]), states, None)
        for _ in range(tokens):  # greedy, end-of-text suppressed: exactly `tokens` steps
            scores = logits[0, -1].copy(); scores[EOT] = -np.inf
            logits, cache = sessions._step(np.array([[int(scores.argmax())]]), states, cache)
        t2 = time.perf_counter(); encode_s.append(t1 - t0); decode_s.append(t2 - t1)
else:
    import ctranslate2
    from faster_whisper.feature_extractor import FeatureExtractor
    model = ctranslate2.models.Whisper(
        model_path, device="cpu", compute_type=compute_type, intra_threads=threads
    )
    extractor = FeatureExtractor()
    for _ in range(repeats):
        t0 = time.perf_counter()
        mel = np.ascontiguousarray(extractor(samples)[None, :, :3000])
        features = ctranslate2.StorageView.from_array(mel)
        encoded = model.encode(features); t1 = time.perf_counter()
        # CTranslate2 stops Whisper at half of max_length (Whisper's sample_len): ask for twice, then cut
        result = model.generate(encoded, [prompt], beam_size=1, max_length=2 * (len(prompt) + tokens),
                                suppress_tokens=[-1, EOT], suppress_blank=False)
        t2 = time.perf_counter(); encode_s.append(t1 - t0)
        decode_s.append((t2 - t1) * tokens / len(result[0].sequences_ids[0]))  # per `tokens` tokens
median = lambda values: sorted(values)[len(values) // 2]
print(json.dumps({"encode_s": median(encode_s), "decode_s": median(decode_s)}))
"""
"""The model alone: one 30 s window's features + encoder, then exactly ``tokens`` greedy decoder steps
(end-of-text suppressed, so a random model decodes the same amount on both routes); medians of ``repeats``."""


def _run(*args: object) -> dict:
    """A child program (``args``: the program, then its arguments) in a fresh process, with its peak RSS."""
    from bench.parakeet import run_child

    return run_child([sys.executable, "-c", *map(str, args)], str(args[1]))


def _models(work: Path, size: str) -> tuple[Path, Path]:
    """The random model of ``size`` as an ONNX export and as a CTranslate2 directory (float32 weights)."""
    from ctranslate2.converters import TransformersConverter

    from asrpro_rpc.catalog import packs
    from tests.support.make_tiny_whisper_onnx import build_tiny_whisper_onnx

    d_model, layers, heads = SIZES[size]
    tokenizer = packs.pack_sources("whisper-base")["tokenizer.json"][0]
    onnx = build_tiny_whisper_onnx(
        work / "onnx", tokenizer_json=tokenizer, d_model=d_model, layers=layers, heads=heads
    )
    ct2 = work / "ct2"
    TransformersConverter(
        str(onnx / "hf"), copy_files=["tokenizer.json", "preprocessor_config.json"]
    ).convert(str(ct2), quantization="float32")
    return onnx, ct2


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--tokens", type=int, default=64, help="new tokens at most per 30 s window")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="model-level runs per route and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all routes (medians)")
    args = parser.parse_args()
    from bench.parakeet import _speech_file

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        onnx, ct2 = _models(work, args.size)
        wav = _speech_file(work, args.minutes)
        common = (args.threads, args.tokens)
        routes = {
            "ONNX Runtime f32": ("onnx", "whisper-onnx", onnx, "float32"),
            "CTranslate2 f32": ("ct2", "whisper", ct2, "float32"),
            "CTranslate2 int8": ("ct2", "whisper", ct2, "int8"),
        }
        rounds: list[dict[str, dict]] = []
        for _ in range(args.rounds):  # routes interleaved, round by round: a busy moment hits all of them
            rows = {}
            for name, (route, engine, path, compute_type) in routes.items():
                model = _run(_MODEL_CHILD, route, path, compute_type, *common, args.repeats)
                rows[name] = model | _run(_ENGINE_CHILD, engine, path, wav, compute_type, *common)
            rounds.append(rows)
    print(
        f"random Whisper with {args.size}'s dimensions, the same weights on every route; CPU, "
        f"{args.threads} threads; {args.tokens} greedy tokens per window; {args.minutes:g} min of speech; "
        f"medians of {args.rounds} rounds"
    )
    header = ("route", "encode ms", "ms/token", "file load s", "file s", "file RTF", "file tokens", "RSS MB")
    print(f"{header[0]:<18}" + "".join(f"{h:>12}" for h in header[1:]))
    for name in routes:
        r = {key: _median([rows[name][key] for rows in rounds]) for key in rounds[0][name]}
        cells = (1000 * r["encode_s"], 1000 * r["decode_s"] / args.tokens, r["load_s"], r["transcribe_s"])
        rtf = r["transcribe_s"] / r["audio_s"]
        print(
            f"{name:<18}"
            + "".join(f"{c:>12.2f}" for c in cells)
            + f"{rtf:>12.4f}{r['tokens']:>12.0f}{r['peak_rss_mb']:>12.0f}"
        )
    metrics = {
        "encoder": "encode_s",
        "decoder per token": "decode_s",
        "file (each engine's own decoding: random weights stop at different tokens)": "transcribe_s",
        "peak RSS": "peak_rss_mb",
    }
    for name in ("CTranslate2 f32", "CTranslate2 int8"):
        ratios = {
            label: _median([rows["ONNX Runtime f32"][key] / rows[name][key] for rows in rounds])
            for label, key in metrics.items()
        }
        print(f"ONNX ÷ {name}: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


if __name__ == "__main__":
    main()
