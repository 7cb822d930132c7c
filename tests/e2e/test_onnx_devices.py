"""ONNX Runtime execution providers through the real sidecar: ``system.devices`` lists them with their
devices, ``device.preferred`` or ``models.load``'s ``device`` chooses one for the ONNX route,
``models.status`` says what was asked for and what runs, and a provider that can't run falls back to the
CPU with a ``device_fallback`` notification. Vulkan is real here: the WebGPU plugin EP (Dawn on Vulkan) on
Mesa's software driver llvmpipe, which skips where the plugin or a Vulkan driver Dawn accepts is missing.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.sidecar import Sidecar, sidecar_env

ONNX_ID = "tiny-parakeet-onnx"
WEBGPU = "WebGpuExecutionProvider"
SOFTWARE = {"ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER": "1"}
"""The WebGPU EP's own switch that lets a CPU (software) Vulkan device stand in for a GPU."""

_PROBE = """
import numpy as np, onnx, onnxruntime as ort, onnxruntime_ep_webgpu as webgpu
from onnx import TensorProto, helper
ort.register_execution_provider_library(webgpu.get_ep_name(), webgpu.get_library_path())
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
graph = helper.make_graph([helper.make_node("MatMul", ["x", "x"], ["y"])], "g", [x], [y])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
session = ort.InferenceSession(model.SerializeToString(), providers=[webgpu.get_ep_name()])
assert session.get_providers()[0] == webgpu.get_ep_name(), session.get_providers()
assert session.run(None, {"x": np.eye(2, dtype=np.float32)})[0].tolist() == [[1, 0], [0, 1]]
"""


@pytest.fixture(scope="module")
def vulkan() -> None:
    """Skips unless the WebGPU EP runs a graph on a Vulkan device here (software ones admitted)."""
    if importlib.util.find_spec("onnxruntime_ep_webgpu") is None:
        pytest.skip("onnxruntime-ep-webgpu is not installed (pip install 'asrpro-rpc[webgpu]')")
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**os.environ, **SOFTWARE}, capture_output=True, text=True
    )
    if probe.returncode:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"the WebGPU EP can't run on a Vulkan device here (Mesa >= 23 llvmpipe works): {last}")


def _start(tmp: Path, model: Path, env: dict[str, str], device: str) -> Sidecar:
    sidecar = Sidecar(env=sidecar_env(tmp, **env))
    sidecar.call("initialize")
    sidecar.call("models.register", {"id": ONNX_ID, "path": str(model)})
    sidecar.call("config.set", {"values": {"device": {"preferred": device}}})
    return sidecar


def _placement(sidecar: Sidecar) -> tuple[str, str, str]:
    """``models.status``'s requested device, device and provider."""
    status = sidecar.call("models.status")
    return status["requested_device"], status["device"], status["provider"]


def _fallbacks(sidecar: Sidecar) -> list[str]:
    return [
        n["params"]["message"] for n in sidecar.notifications if n["params"].get("kind") == "device_fallback"
    ]


@pytest.mark.parametrize(
    ("device", "provider", "reason"),
    [
        ("openvino", "OpenVINOExecutionProvider", ("asrpro-rpc[openvino]", "OpenVINOExecutionProvider")),
        ("webgpu", WEBGPU, ("asrpro-rpc[webgpu]", "found no device")),
    ],
)
def test_unusable_provider_falls_back_to_cpu_saying_why(
    device: str,
    provider: str,
    reason: tuple[str, ...],
    tiny_parakeet_onnx: Path,
    tmp_path: Path,
    speech_wav: Path,
) -> None:
    sidecar = _start(tmp_path, tiny_parakeet_onnx, {"ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER": "0"}, device)
    try:
        devices = sidecar.call("system.devices")
        assert {"provider": "CPUExecutionProvider", "type": "cpu"}.items() <= devices["onnx_devices"][
            0
        ].items()
        if any(d["provider"] == provider for d in devices["onnx_devices"]):
            pytest.skip(f"{provider} has a device here: nothing to fall back from")
        sidecar.notifications.clear()
        assert sidecar.call("models.load", {"model": ONNX_ID}, timeout_s=180)["device"] == "cpu"
        [warning] = _fallbacks(sidecar)
        assert "CPU instead" in warning and any(r in warning for r in reason), warning
        assert sidecar.call("models.status")["device"] == "cpu"
        params = {"path": str(speech_wav), "model": ONNX_ID}
        assert sidecar.call("transcribe.file", params, timeout_s=180)["text"]
    finally:
        sidecar.kill()


def test_transcribes_on_vulkan_through_webgpu(
    vulkan: None, tiny_parakeet_onnx: Path, tmp_path: Path, speech_wav: Path
) -> None:
    sidecar = _start(tmp_path, tiny_parakeet_onnx, SOFTWARE, "webgpu")
    try:
        devices = sidecar.call("system.devices")
        assert WEBGPU in devices["onnx_providers"]
        assert any(d["provider"] == WEBGPU for d in devices["onnx_devices"]), devices["onnx_devices"]
        assert {"device": "webgpu", "providers": [WEBGPU], "error": None}.items() <= next(
            p for p in devices["onnx_plugins"] if p["device"] == "webgpu"
        ).items()
        assert sidecar.call("models.load", {"model": ONNX_ID}, timeout_s=300)["device"] == "webgpu"
        assert _fallbacks(sidecar) == []
        assert sidecar.call("models.status")["device"] == "webgpu"
        params = {"path": str(speech_wav), "model": ONNX_ID, "timestamp_granularities": ["word"]}
        result = sidecar.call("transcribe.file", params, timeout_s=300)
        assert result["text"] and result["words"]
        assert all(0 <= w["start"] <= w["end"] <= result["duration"] for w in result["words"])
    finally:
        sidecar.kill()


def test_per_load_device_falls_back_to_cpu_saying_why(
    tiny_parakeet_onnx: Path, tmp_path: Path, speech_wav: Path
) -> None:
    sidecar = _start(tmp_path, tiny_parakeet_onnx, {}, "cpu")
    try:
        providers = sidecar.call("system.devices")["onnx_providers"]
        for device, provider in (("coreml", "CoreMLExecutionProvider"), ("cuda", "CUDAExecutionProvider")):
            if provider in providers:
                continue  # it has one here: nothing to fall back from
            sidecar.notifications.clear()
            info = sidecar.call("models.load", {"model": ONNX_ID, "device": device}, timeout_s=180)
            assert (info["device"], info["requested_device"]) == ("cpu", device)
            [warning] = _fallbacks(sidecar)
            assert provider in warning and "CPU instead" in warning, warning
            assert _placement(sidecar) == (device, "cpu", "CPUExecutionProvider")
        sidecar.notifications.clear()  # no device: the resident model stays where it is, unreloaded
        pid = sidecar.call("models.status")["pid"]
        sidecar.call("models.load", {"model": ONNX_ID}, timeout_s=180)
        assert sidecar.call("models.status")["pid"] == pid and _fallbacks(sidecar) == []
        params = {"path": str(speech_wav), "model": ONNX_ID}
        assert sidecar.call("transcribe.file", params, timeout_s=180)["text"]
        error = sidecar.error("models.load", {"model": ONNX_ID, "device": "tpu"})
        assert error["code"] == -32602 and "device" in error["message"], error
    finally:
        sidecar.kill()


def test_per_load_device_runs_on_vulkan_over_the_setting(
    vulkan: None, tiny_parakeet_onnx: Path, tmp_path: Path, speech_wav: Path
) -> None:
    sidecar = _start(tmp_path, tiny_parakeet_onnx, SOFTWARE, "cpu")
    try:
        assert sidecar.call("models.load", {"model": ONNX_ID}, timeout_s=180)["provider"] == (
            "CPUExecutionProvider"
        )
        info = sidecar.call("models.load", {"model": ONNX_ID, "device": "webgpu"}, timeout_s=300)
        assert (info["device"], info["provider"]) == ("webgpu", WEBGPU)
        assert _fallbacks(sidecar) == []
        assert _placement(sidecar) == ("webgpu", "webgpu", WEBGPU)
        params = {"path": str(speech_wav), "model": ONNX_ID}
        assert sidecar.call("transcribe.file", params, timeout_s=300)["text"]
    finally:
        sidecar.kill()
