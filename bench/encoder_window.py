"""Whisper's encoder windows: accuracy and speed of ``full`` (30 s), ``short``, ``medium`` and ``fit``.

Usage: python bench/encoder_window.py [--beam-size 1] [--threads 1] MODEL_DIR [MODEL_DIR ...]
(CTranslate2 Whisper directories). 30 espeak-ng sentences, each with 0 / 0.15 / 0.25 s of silence before
it (where a stream's VAD may start an utterance) and 0.3 s after, are transcribed by the sidecar's
``WindowedWhisperModel`` (``engines/whisper_window.py``) in each window, interleaved clip by clip, with a
stream's decode options (greedy, as partials; ``--beam-size 5`` as finals and files). Prints corpus WER of
each window, its total decode time against ``full``'s, and the encoder alone on 3,000 vs 2,000 frames.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asrpro_rpc.engines.whisper_window import SHORT_WINDOW_FRAMES, windowed_model_class  # noqa: E402
from tests.support.wer import wer  # noqa: E402

SENTENCES = (
    "Please open the door and turn on the lights in the kitchen. Speech recognition works offline.",
    "Today is Monday and the weather is sunny and warm.",
    "I would like to order two coffees and a glass of water, please.",
    "Hello world.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Send the quarterly report to the finance team before Friday afternoon.",
    "My flight to Berlin leaves at seven thirty tomorrow morning.",
    "Remind me to call my sister when I get home tonight.",
    "The meeting has been moved to the second floor conference room.",
    "Can you recommend a good restaurant within walking distance of the hotel?",
    "Turn the volume down a little and play some quiet music.",
    "We need three more chairs and a projector for the presentation.",
    "Please schedule a dentist appointment for next Tuesday at three.",
    "The battery is almost empty, so plug in the charger now.",
    "Our team shipped the new release after fixing twelve bugs.",
    "Could you translate this letter into Spanish by tomorrow?",
    "The train to Paris was delayed by forty minutes this morning.",
    "Add milk, eggs, bread and butter to the shopping list.",
    "I think we should postpone the launch until the tests pass.",
    "The museum opens at nine and closes at five on weekdays.",
    "Write a short summary of the meeting and email it to everyone.",
    "It started raining just as we left the office.",
    "He bought a red bicycle and rode it to the park.",
    "The temperature will drop below freezing tonight.",
    "Please read the instructions carefully before you begin.",
    "Our neighbors adopted a small brown puppy last week.",
    "The printer on the third floor is out of paper again.",
    "Let's meet at the coffee shop around the corner at noon.",
    "She finished the marathon in just under four hours.",
    "Turn left at the next traffic light and then go straight.",
)
LEADS_S = (0.0, 0.15, 0.25)
TAIL_S = 0.3
WINDOWS = ("full", "short", "medium", "fit")
DECODE = {
    "language": "en",
    "temperature": 0.0,
    "condition_on_previous_text": False,
    "word_timestamps": True,
    "vad_filter": False,
    "repetition_penalty": 1.1,
}


def speak(text: str, folder: Path, index: int, voice: str = "en") -> np.ndarray:
    raw, out = folder / f"{index}-{voice}.raw.wav", folder / f"{index}-{voice}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
    # -R: sox seeds its dither alike each run, so that every run hears the same samples
    subprocess.run(["sox", "-R", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
    with wave.open(str(out), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768


def bench(model_dir: str, clips: list[np.ndarray], beam_size: int, threads: int) -> None:
    model = windowed_model_class()(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)
    errors = dict.fromkeys(WINDOWS, 0.0)
    seconds = dict.fromkeys(WINDOWS, 0.0)
    words = 0
    for lead_s in LEADS_S:
        for text, clip in zip(SENTENCES, clips, strict=True):
            silence = np.zeros(int(lead_s * 16000), dtype=np.float32)
            audio = np.concatenate([silence, clip, np.zeros(int(TAIL_S * 16000), dtype=np.float32)])
            words += len(text.split())
            for window in WINDOWS:  # interleaved: load on the machine hits each alike
                started = time.perf_counter()
                segments, _ = model.transcribe(audio, encoder_window=window, beam_size=beam_size, **DECODE)
                heard = " ".join(segment.text.strip() for segment in segments)
                seconds[window] += time.perf_counter() - started
                errors[window] += wer(text, heard) * len(text.split())
    clips_n = len(LEADS_S) * len(clips)
    print(f"{model_dir}: {clips_n} clips, {words} words, beam {beam_size}, {threads} threads")
    for window in WINDOWS:
        print(
            f"  {window:<6} corpus WER {errors[window] / words:.3f}  decode time {seconds[window]:.1f} s"
            f"  ({seconds[window] / seconds['full']:.2f}x full)"
        )
    encoder(model)


def encoder(model: object) -> None:
    import ctranslate2

    features = np.random.default_rng(0).standard_normal((1, 80, 3000)).astype(np.float32)
    timings = {}
    for frames in (3000, SHORT_WINDOW_FRAMES):
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[..., :frames]))
        model.model.encode(view)  # type: ignore[attr-defined]
        started = time.perf_counter()
        for _ in range(5):
            model.model.encode(view)  # type: ignore[attr-defined]
        timings[frames] = (time.perf_counter() - started) / 5
    print(
        f"  encoder alone: 3000 frames {timings[3000]:.3f} s, {SHORT_WINDOW_FRAMES} frames "
        f"{timings[SHORT_WINDOW_FRAMES]:.3f} s ({timings[3000] / timings[SHORT_WINDOW_FRAMES]:.1f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="CTranslate2 threads (a stream decode has 1)")
    parser.add_argument("model_dirs", nargs="+")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clips = [speak(text, Path(tmp), index) for index, text in enumerate(SENTENCES)]
    for model_dir in args.model_dirs:
        bench(model_dir, clips, args.beam_size, args.threads)


if __name__ == "__main__":
    main()
