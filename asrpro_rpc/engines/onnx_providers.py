"""ONNX Runtime execution providers for every ONNX route (Parakeet, Whisper): which one a load asks for,
whether it starts here, and the session settings they share.

Our device names (``cuda``, ``webgpu``, ...) map to ONNX Runtime providers; ``choose_provider`` picks from
what ``system.hardware.onnx_runtime`` found, ``start_provider`` also proves the provider starts (falling
back to the CPU with a warning that says why).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from asrpro_rpc.system.hardware import ONNX_PLUGINS, OnnxRuntimeReport, onnx_runtime
from asrpro_rpc.system.process import default_cpu_threads

T = TypeVar("T")

PROVIDERS: dict[str, str] = {
    "cuda": "CUDAExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "webgpu": "WebGpuExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "mlx": "MLXExecutionProvider",
}
"""Our device name -> ONNX Runtime execution provider (the last three are plugin EPs: ``ONNX_PLUGINS``)."""
AUTO_ORDER = ("cuda", "rocm", "directml")
"""Providers ``device=auto`` tries, best first (the rest only on request; ``device=mps`` means CoreML)."""


def choose_provider(requested: str, runtime: OnnxRuntimeReport) -> tuple[str, list[str]]:
    """Our device name for the ONNX Runtime provider to load on, plus a warning saying why when the request
    falls back to the CPU. A plugin EP counts only when it registered and found a device."""
    have = [name for name, provider in PROVIDERS.items() if _usable(name, provider, runtime)]
    if requested == "auto":
        return next((d for d in AUTO_ORDER if d in have), "cpu"), []
    if requested == "cpu":
        return "cpu", []
    wanted = "coreml" if requested == "mps" else requested
    if wanted in have:
        return wanted, []
    return "cpu", [
        f"Device {requested!r} isn't available to ONNX Runtime: {_why(wanted, runtime)}. "
        "Running on the CPU instead."
    ]


_PROBE_MODEL = (
    b'\x08\x08\x12\x00:3\n\x0c\n\x01x\x12\x01y"\x04Relu\x12\x01pZ\x0f\n\x01x\x12\n\n\x08\x08\x01\x12\x04'
    b"\n\x02\x08\x01b\x0f\n\x01y\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01B\x04\n\x00\x10\r"
)
"""A one-Relu ONNX graph (float[1] -> float[1], opset 13): a session on it starts a provider."""


def provider_failure(onnxruntime: Any, provider: str) -> str | None:
    """Why ``provider`` can't start here, or None when it does.

    ONNX Runtime's Python API answers a provider that fails to start (a GPU adapter it can't get, CUDA
    libraries it can't load) by printing the error and using the CPU, so the load would claim a device it
    isn't on: a session on a tiny graph catches that first.
    """
    import contextlib
    import io

    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            session = onnxruntime.InferenceSession(_PROBE_MODEL, providers=[provider, "CPUExecutionProvider"])
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    if session.get_providers()[0] == provider:
        return None
    error = next((line for line in printed.getvalue().splitlines() if line.startswith("EP Error ")), "")
    error = error.removeprefix("EP Error ").split(" when using [")[0]
    return error.rsplit(". ", 1)[-1] or "it fell back to the CPU"  # the sentence after ORT's source trace


def _usable(name: str, provider: str, runtime: OnnxRuntimeReport) -> bool:
    if provider not in runtime.providers:
        return False
    return name not in ONNX_PLUGINS or any(d.provider == provider for d in runtime.devices)


def _why(wanted: str, runtime: OnnxRuntimeReport) -> str:
    if wanted not in PROVIDERS:
        return f"unknown device (use auto, cpu, {', '.join(PROVIDERS)} or mps)"
    provider = PROVIDERS[wanted]
    if wanted in ONNX_PLUGINS:
        plugin = next((p for p in runtime.plugins if p.device == wanted), None)
        if plugin is None:
            return f"its plugin isn't installed (pip install 'asrpro-rpc[{wanted}]')"
        if plugin.error is not None:
            return f"ONNX Runtime {runtime.version} refused {plugin.package} ({plugin.error})"
        return f"{provider} found no device" + _NO_DEVICE_HINT.get(wanted, "")
    return f"ONNX Runtime {runtime.version} has no {provider} (it has {', '.join(runtime.providers)})"


_NO_DEVICE_HINT = {
    "webgpu": " (it needs a GPU and its driver: Vulkan with libvulkan.so.1 on Linux, Metal on macOS, D3D12 "
    "on Windows; a CPU/software Vulkan driver counts only with ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER=1)",
}


def start_provider(requested: str, onnxruntime: Any) -> tuple[str, list[str]]:
    """``choose_provider`` on this machine's report, then a session on a tiny graph proves the provider
    starts; the device to load on and the warnings saying why it fell back to the CPU."""
    device, warnings = choose_provider(requested, onnx_runtime() or OnnxRuntimeReport())
    failure = provider_failure(onnxruntime, PROVIDERS[device]) if device in PROVIDERS else None
    if failure is not None:
        warnings.append(f"ONNX Runtime can't start {PROVIDERS[device]} ({failure}); using the CPU instead.")
        device = "cpu"
    return device, warnings


def providers_for(device: str) -> list[str]:
    """The provider list a session on ``device`` is created with (the CPU last, for unsupported nodes)."""
    return [PROVIDERS[device], "CPUExecutionProvider"] if device in PROVIDERS else ["CPUExecutionProvider"]


def session_options(onnxruntime: Any, cpu_threads: int) -> Any:
    """Session options with ``cpu_threads`` intra-op threads (0: every core this process may use)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = cpu_threads or default_cpu_threads()
    return options


def build_on(device: str, build: Callable[[str], T], warnings: list[str]) -> tuple[T, str]:
    """``build(device)`` (which should run the model once), or ``build("cpu")`` with a warning appended when
    the provider starts but can't run the model; the result and the device it is on."""
    try:
        return build(device), device
    except Exception as exc:
        if device == "cpu":
            raise
        warnings.append(f"ONNX Runtime can't run this model on {device} ({exc}); using the CPU instead.")
        return build("cpu"), "cpu"
