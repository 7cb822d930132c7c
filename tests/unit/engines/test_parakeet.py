"""The Parakeet engines' pure parts: runtime and provider choice, words and segments, cuts at pauses."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from asrpro_rpc import errors
from asrpro_rpc.engines.chunking import Audio, silero_cut_finder
from asrpro_rpc.engines.onnx_providers import choose_provider, provider_failure
from asrpro_rpc.engines.parakeet.common import MAX_SEGMENT_S, build_transcript, check_language, word
from asrpro_rpc.engines.parakeet.onnx import words_from_tokens
from asrpro_rpc.engines.parakeet.route import choose_runtime, onnx_export_dir
from asrpro_rpc.system.hardware import OnnxDevice, OnnxPlugin, OnnxRuntimeReport
from asrpro_rpc.transcripts.types import TranscribeOptions


def _never() -> bool:
    raise AssertionError("this probe should not be needed")


def test_runtime_choice() -> None:
    def choose(nemo: bool, onnx: bool, ort_gpu: bool = False, torch_gpu: bool = False) -> str:
        return choose_runtime(
            nemo_installed=nemo,
            onnx_ready=onnx,
            onnx_accelerated=lambda: ort_gpu,
            torch_accelerated=lambda: torch_gpu,
        )[0]

    assert choose(nemo=True, onnx=False) == "nemo"
    assert choose(nemo=False, onnx=True) == "onnx"
    assert choose(nemo=True, onnx=True) == "nemo"
    assert choose(nemo=True, onnx=True, ort_gpu=True) == "onnx"  # e.g. DirectML on Windows
    assert choose(nemo=True, onnx=True, ort_gpu=True, torch_gpu=True) == "nemo"
    runtime, _ = choose_runtime(
        nemo_installed=False, onnx_ready=True, onnx_accelerated=_never, torch_accelerated=_never
    )
    assert runtime == "onnx"
    with pytest.raises(errors.EngineUnavailable, match="export-onnx"):
        choose(nemo=False, onnx=False)


def _runtime(*providers: str, devices: tuple[str, ...] = (), plugins: tuple[OnnxPlugin, ...] = ()):
    """What ONNX Runtime would report on hardware we lack: ``providers`` plus ``CPUExecutionProvider``."""
    return OnnxRuntimeReport(
        version="1.32.0",
        providers=(*providers, "CPUExecutionProvider"),
        devices=tuple(OnnxDevice(provider=p, type="gpu") for p in devices),
        plugins=plugins,
    )


def test_provider_choice() -> None:
    cpu_only = _runtime()
    assert choose_provider("auto", cpu_only) == ("cpu", [])
    assert choose_provider("auto", _runtime("DmlExecutionProvider")) == ("directml", [])
    assert choose_provider("auto", _runtime("CoreMLExecutionProvider")) == ("cpu", [])
    assert choose_provider("mps", _runtime("CoreMLExecutionProvider")) == ("coreml", [])
    assert choose_provider("cpu", _runtime("CUDAExecutionProvider")) == ("cpu", [])
    device, warnings = choose_provider("cuda", cpu_only)
    assert device == "cpu" and "has no CUDAExecutionProvider" in warnings[0]
    device, warnings = choose_provider("vulkan", cpu_only)
    assert device == "cpu" and "unknown device" in warnings[0] and "webgpu" in warnings[0]


def test_plugin_provider_choice() -> None:
    """A plugin EP is chosen only on request, and only once it registered and found a device; otherwise
    the warning names what is missing."""
    webgpu = OnnxPlugin(
        device="webgpu", package="onnxruntime_ep_webgpu", providers=("WebGpuExecutionProvider",)
    )
    ready = _runtime("WebGpuExecutionProvider", devices=("WebGpuExecutionProvider",), plugins=(webgpu,))
    assert choose_provider("webgpu", ready) == ("webgpu", [])
    assert choose_provider("auto", ready) == ("cpu", [])
    _, [missing] = choose_provider("webgpu", _runtime())
    assert "pip install 'asrpro-rpc[webgpu]'" in missing
    _, [no_device] = choose_provider("webgpu", _runtime(plugins=(webgpu,)))
    assert "found no device" in no_device and "ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER" in no_device
    refused = OnnxPlugin(device="openvino", package="onnxruntime_ep_openvino", error="RuntimeError: too old")
    assert choose_provider("openvino", _runtime(plugins=(refused,))) == (
        "cpu",
        [
            "Device 'openvino' isn't available to ONNX Runtime: ONNX Runtime 1.32.0 refused "
            "onnxruntime_ep_openvino (RuntimeError: too old). Running on the CPU instead."
        ],
    )


def test_provider_failure_catches_the_silent_cpu_fallback() -> None:
    """ONNX Runtime here, for real: the CPU starts; a provider it lacks would quietly become the CPU."""
    import onnxruntime

    assert provider_failure(onnxruntime, "CPUExecutionProvider") is None
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert provider_failure(onnxruntime, "CUDAExecutionProvider") == "it fell back to the CPU"


def test_export_sits_beside_the_nemo_file() -> None:
    assert onnx_export_dir(Path("/m/p/parakeet.nemo")) == Path("/m/p/parakeet-onnx")


def test_words_from_tokens() -> None:
    tokens = [" he", "llo", " wor", "ld", "."]
    words = words_from_tokens(tokens, [0.0, 0.16, 0.56, 0.64, 0.72], [-0.1, -0.2, 0.0, 0.0, -0.3], 0.08)
    assert [w.word for w in words] == [" hello", " world."]
    assert (words[0].start, words[0].end, words[1].start, words[1].end) == (0.0, 0.24, 0.56, 0.8)
    assert words[0].probability == pytest.approx(np.exp(-0.3))


def test_segments_split_at_sentences_pauses_length_and_windows() -> None:
    first = [word("Hi.", 0.0, 0.5), word("there", 0.6, 1.0), word("you", 3.0, 3.2)]
    steady = [word("la", 10.0 + i, 10.5 + i) for i in range(40)]
    transcript = build_transcript(
        [first, steady], duration_s=60.0, language="en", word_timestamps=True, model_id="m"
    )
    texts = [s.text for s in transcript.segments]
    assert texts[:3] == [" Hi.", " there", " you"]
    assert all(s.end - s.start <= MAX_SEGMENT_S for s in transcript.segments)
    assert transcript.segments[3].start == 10.0  # the second window starts a segment
    assert transcript.text.startswith("Hi. there you la la") and transcript.words is not None
    without = build_transcript([first], duration_s=5.0, language="en", word_timestamps=False, model_id="m")
    assert without.words is None and all(s.words is None for s in without.segments)


def test_language_check() -> None:
    assert check_language(TranscribeOptions(), ("en",), "m") == "en"
    assert check_language(TranscribeOptions(), ("de", "en"), "m") == "und"
    assert check_language(TranscribeOptions(language="de"), ("de", "en"), "m") == "de"
    with pytest.raises(errors.InvalidParams, match="'fr'"):
        check_language(TranscribeOptions(language="fr"), ("en",), "m")


def test_silero_cut_lands_in_the_longest_pause(speech_wav: Path) -> None:
    with wave.open(str(speech_wav), "rb") as wav:
        speech = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768
    rate = 16000
    gap = np.zeros(rate * 2, dtype=np.float32)
    short_gap = np.zeros(rate // 2, dtype=np.float32)
    region = np.concatenate([speech, short_gap, speech, gap, speech])
    cut = silero_cut_finder()(region, rate)
    long_gap_start = 2 * len(speech) + len(short_gap)
    assert long_gap_start < cut < long_gap_start + len(gap)
    pre = np.tile(speech, 2)
    audio = np.concatenate([pre, region, speech])
    window_s, search_s = (len(pre) + len(region)) / rate, len(region) / rate
    windows = Audio.from_array(audio).windows(window_s, search_s, find_cut=silero_cut_finder())
    bounds = [(start, start + len(samples)) for start, samples in windows]
    gap_start = len(pre) + long_gap_start
    assert len(bounds) == 2 and gap_start < bounds[0][1] < gap_start + len(gap)
