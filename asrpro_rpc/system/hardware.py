"""Compute device detection and the device / compute-type choice made before loading a model.

``probe_devices`` looks at the machine and ``probe_gpu_memory`` at GPU memory now (on demand, never at import;
GPUs through torch when it is already imported, else ``nvidia-smi``); ``onnx_runtime`` reports ONNX Runtime's
execution providers and their devices, registering the installed plugin EPs once per process.
``choose_device`` and ``choose_compute_type`` are pure functions over what was found, so they are tested
with injected reports.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
import shutil
import subprocess
import sys
import threading
from collections.abc import Collection
from typing import Literal, cast

import msgspec

from asrpro_rpc import errors

log = logging.getLogger(__name__)

Device = Literal["cpu", "cuda", "mps"]

_CPU_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "amx_int8", "asimd")
"""CPU ISA features worth reporting (they decide CTranslate2/ONNX Runtime kernel speed)."""

_NVIDIA_SMI_TIMEOUT_S = 5.0

ONNX_PLUGINS: dict[str, str] = {
    "webgpu": "onnxruntime_ep_webgpu",
    "openvino": "onnxruntime_ep_openvino",
    "mlx": "onnxruntime_ep_mlx",
}
"""Plugin execution providers: our device name (also the pip extra) -> the package shipping its library."""


class GpuInfo(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    name: str
    memory_total_bytes: int | None = None
    compute_capability: str | None = None
    """``"major.minor"``, e.g. ``"8.9"``."""


class GpuMemory(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    used_bytes: int


class GpuReading(msgspec.Struct, frozen=True, kw_only=True):
    """One CUDA GPU as torch or ``nvidia-smi`` sees it (``None``: not known)."""

    index: int
    name: str
    total_bytes: int | None = None
    free_bytes: int | None = None
    used_bytes: int | None = None
    compute_capability: str | None = None


class OnnxDevice(msgspec.Struct, frozen=True, kw_only=True):
    """A device an ONNX Runtime execution provider can run on (``onnxruntime.get_ep_devices()``)."""

    provider: str
    """Its execution provider, e.g. ``"WebGpuExecutionProvider"``."""
    type: str
    """``cpu``, ``gpu`` or ``npu``."""
    vendor: str = ""
    vendor_id: int = 0
    device_id: int = 0


class OnnxPlugin(msgspec.Struct, frozen=True, kw_only=True):
    """An installed plugin execution provider package, and what registering its library gave."""

    device: str
    """Our device name for it (``webgpu``, ``openvino``, ``mlx``)."""
    package: str
    providers: tuple[str, ...] = ()
    """The execution providers it added; empty when ``error`` says why not."""
    error: str | None = None


class OnnxRuntimeReport(msgspec.Struct, frozen=True, kw_only=True):
    version: str = ""
    providers: tuple[str, ...] = ()
    """``onnxruntime.get_available_providers()``, registered plugins included."""
    devices: tuple[OnnxDevice, ...] = ()
    plugins: tuple[OnnxPlugin, ...] = ()


class DeviceReport(msgspec.Struct, frozen=True, kw_only=True):
    """What the machine offers for inference. Every field has a CPU-only default, for tests."""

    platform: str = ""
    machine: str = ""
    cpu_count: int = 1
    """Logical CPUs."""
    cpu_features: tuple[str, ...] = ()
    cpu_compute_types: tuple[str, ...] = ()
    """CTranslate2's supported compute types on CPU (empty if CTranslate2 isn't installed)."""
    cuda_device_count: int = 0
    cuda_compute_types: tuple[str, ...] = ()
    gpus: tuple[GpuInfo, ...] = ()
    mps_available: bool = False
    """Apple Metal (PyTorch MPS) usable: Apple silicon with torch installed (confirmed by torch if loaded)."""
    onnx_providers: tuple[str, ...] = ()
    """ONNX Runtime's execution providers, the installed plugin EPs (WebGPU, OpenVINO, MLX) included."""
    onnx_devices: tuple[OnnxDevice, ...] = ()
    """The devices those providers found (ONNX Runtime >= 1.23; a plugin EP runs only where it has one)."""
    onnx_plugins: tuple[OnnxPlugin, ...] = ()
    """Installed plugin EP packages, with the error when ONNX Runtime refused one."""


def probe_devices(*, use_torch: bool = False) -> DeviceReport:
    """Looks at CPU, CUDA, Apple MPS and ONNX Runtime without importing torch unless ``use_torch``.

    torch is used anyway when something already imported it (then it costs nothing); otherwise GPU names
    and memory come from ``nvidia-smi`` if it is on PATH.
    """
    torch_loaded = use_torch or "torch" in sys.modules
    cuda_count, cpu_types, cuda_types = _probe_ctranslate2()
    readings = _gpus_from_torch(free_memory=False) if torch_loaded else ()
    if not readings and cuda_count:
        readings = _gpus_from_nvidia_smi()
    onnx = onnx_runtime() or OnnxRuntimeReport()
    gpus = tuple(
        GpuInfo(
            index=g.index,
            name=g.name,
            memory_total_bytes=g.total_bytes,
            compute_capability=g.compute_capability,
        )
        for g in readings
    )
    return DeviceReport(
        platform=sys.platform,
        machine=platform.machine(),
        cpu_count=os.cpu_count() or 1,
        cpu_features=_cpu_features(),
        cpu_compute_types=cpu_types,
        cuda_device_count=cuda_count,
        cuda_compute_types=cuda_types,
        gpus=gpus,
        mps_available=_mps_available(torch_loaded),
        onnx_providers=onnx.providers,
        onnx_devices=onnx.devices,
        onnx_plugins=onnx.plugins,
    )


def ct2_compute_types(device: str) -> frozenset[str]:
    """CTranslate2's supported compute types on ``device`` (empty if unavailable or not installed)."""
    try:
        import ctranslate2
    except ImportError:
        return frozenset()
    try:
        return frozenset(ctranslate2.get_supported_compute_types(device))
    except (RuntimeError, ValueError):
        return frozenset()


def _probe_ctranslate2() -> tuple[int, tuple[str, ...], tuple[str, ...]]:
    try:
        import ctranslate2
    except ImportError:
        return 0, (), ()
    try:
        cuda_count = ctranslate2.get_cuda_device_count()
    except RuntimeError as exc:
        log.warning("CTranslate2 can't query CUDA: %s", exc)
        cuda_count = 0
    cpu_types = tuple(sorted(ct2_compute_types("cpu")))
    cuda_types = tuple(sorted(ct2_compute_types("cuda"))) if cuda_count else ()
    return cuda_count, cpu_types, cuda_types


def _cpu_features() -> tuple[str, ...]:
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return ("asimd",)
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    present = set(line.split(":", 1)[1].split())
                    return tuple(flag for flag in _CPU_FLAGS if flag in present)
    except OSError:
        pass
    return ()


def probe_gpu_memory() -> list[GpuMemory]:
    """Per-GPU memory now: torch if already imported, else ``nvidia-smi``, else none."""
    readings = _gpus_from_torch(free_memory=True) if "torch" in sys.modules else ()
    return [
        GpuMemory(
            index=g.index,
            name=g.name,
            total_bytes=g.total_bytes,
            free_bytes=g.free_bytes,
            used_bytes=g.used_bytes if g.used_bytes is not None else g.total_bytes - g.free_bytes,
        )
        for g in readings or _gpus_from_nvidia_smi()
        if g.total_bytes is not None and g.free_bytes is not None
    ]


def _gpus_from_torch(*, free_memory: bool) -> tuple[GpuReading, ...]:
    """CUDA GPUs through torch; ``free_memory`` also asks each for its free memory (creates a context)."""
    try:
        import torch
    except ImportError:
        return ()
    if not torch.cuda.is_available():
        return ()
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(
            GpuReading(
                index=index,
                name=props.name,
                total_bytes=props.total_memory,
                free_bytes=torch.cuda.mem_get_info(index)[0] if free_memory else None,
                compute_capability=f"{props.major}.{props.minor}",
            )
        )
    return tuple(gpus)


_NVIDIA_SMI_QUERY = "--query-gpu=index,name,memory.total,memory.free,memory.used,compute_cap"


def _gpus_from_nvidia_smi() -> tuple[GpuReading, ...]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ()
    try:
        out = subprocess.run(
            [exe, _NVIDIA_SMI_QUERY, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=_NVIDIA_SMI_TIMEOUT_S,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("nvidia-smi failed: %s", exc)
        return ()
    return parse_nvidia_smi(out)


def parse_nvidia_smi(csv_text: str) -> tuple[GpuReading, ...]:
    """Parses ``nvidia-smi`` output for ``_NVIDIA_SMI_QUERY`` (``--format=csv,noheader,nounits``): index,
    name, total, free and used MiB, compute capability; values it can't report (``[N/A]``) become None."""
    gpus = []
    for line in csv_text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 2 or not fields[0].isdigit():
            continue
        total, free, used, capability = (fields[2:] + [""] * 4)[:4]
        gpus.append(
            GpuReading(
                index=int(fields[0]),
                name=fields[1],
                total_bytes=_mib(total),
                free_bytes=_mib(free),
                used_bytes=_mib(used),
                compute_capability=capability if capability.replace(".", "").isdigit() else None,
            )
        )
    return tuple(gpus)


def _mib(cell: str) -> int | None:
    return int(cell) << 20 if cell.isdigit() else None


def _mps_available(torch_loaded: bool) -> bool:
    if sys.platform != "darwin" or platform.machine() != "arm64":
        return False
    if not torch_loaded:
        return importlib.util.find_spec("torch") is not None
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.backends.mps.is_available())


_onnx_lock = threading.Lock()
_onnx_report: OnnxRuntimeReport | None = None


def onnx_runtime() -> OnnxRuntimeReport | None:
    """ONNX Runtime's providers and their devices (None without onnxruntime).

    The first call in a process imports onnxruntime and registers every installed plugin EP of
    ``ONNX_PLUGINS``; later calls return that report.
    """
    global _onnx_report
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    with _onnx_lock:
        if _onnx_report is None:
            try:
                import onnxruntime
            except ImportError:
                return None
            plugins = tuple(
                _register_plugin(onnxruntime, device, package)
                for device, package in ONNX_PLUGINS.items()
                if importlib.util.find_spec(package) is not None
            )
            get_ep_devices = getattr(onnxruntime, "get_ep_devices", None)
            _onnx_report = OnnxRuntimeReport(
                version=onnxruntime.__version__,
                providers=tuple(onnxruntime.get_available_providers()),
                devices=tuple(
                    OnnxDevice(
                        provider=d.ep_name,
                        type=d.device.type.name.lower(),
                        vendor=d.device.vendor,
                        vendor_id=d.device.vendor_id,
                        device_id=d.device.device_id,
                    )
                    for d in (get_ep_devices() if get_ep_devices else ())
                ),
                plugins=plugins,
            )
        return _onnx_report


def _register_plugin(onnxruntime: object, device: str, package: str) -> OnnxPlugin:
    """Registers one plugin EP package's library under its EP name (the MLX EP takes that name as its own)."""
    register = getattr(onnxruntime, "register_execution_provider_library", None)
    if register is None:
        error = f"plugin EPs need onnxruntime >= 1.23 (this is {getattr(onnxruntime, '__version__', '?')})"
        return OnnxPlugin(device=device, package=package, error=error)
    try:
        module = importlib.import_module(package)
        names = tuple(module.get_ep_names())
        register(names[0], module.get_library_path())
    except Exception as exc:  # a broken or mismatched plugin must not take system.devices down
        log.warning("ONNX Runtime plugin %s not registered: %s", package, exc)
        return OnnxPlugin(device=device, package=package, error=f"{type(exc).__name__}: {exc}")
    return OnnxPlugin(device=device, package=package, providers=names)


# --- choice -----------------------------------------------------------------------------------------
ONNX_ONLY_DEVICES = ("rocm", "directml", "coreml", *ONNX_PLUGINS)
"""Device names only the ONNX route can honour (its execution providers)."""
_DEVICE_NAMES = {"cpu": "the CPU", "cuda": "a CUDA GPU", "mps": "Apple Metal (MPS)"}


def choose_device(
    requested: str,
    caps: DeviceReport,
    *,
    supported: Collection[str] = ("cpu", "cuda", "mps"),
) -> tuple[Device, list[str]]:
    """The device to load on, plus warnings for a person when the request can't be honoured.

    ``auto`` prefers CUDA, then MPS, then CPU. An unavailable device, or one of ``ONNX_ONLY_DEVICES``, falls
    back to the CPU with a warning.
    ``supported`` is what the engine can use (faster-whisper: ``("cpu", "cuda")``).

    Raises:
        errors.InvalidConfig: ``requested`` is not auto, cpu, cuda or mps.
    """
    has = {"cpu": True, "cuda": caps.cuda_device_count > 0, "mps": caps.mps_available}
    if requested == "auto":
        for device in ("cuda", "mps"):
            if has[device] and device in supported:
                return device, []
        return "cpu", []
    if requested in ONNX_ONLY_DEVICES:
        return "cpu", [
            f"Device {requested!r} is an ONNX Runtime provider, which only ONNX models use; this engine "
            "runs on the CPU instead."
        ]
    if requested not in has:
        raise errors.InvalidConfig(
            f"Unknown device {requested!r}: use auto, cpu, cuda or mps.", field="device", value=requested
        )
    if requested not in supported:
        return "cpu", [
            f"This engine can't use {_DEVICE_NAMES[requested]} (it supports {', '.join(supported)}); "
            "running on the CPU instead."
        ]
    if not has[requested]:
        reason = {
            "cuda": "no CUDA GPU was found (check the NVIDIA driver, and that the CUDA 12 / cuDNN 9 "
            "libraries are installed)",
            "mps": "Apple Metal needs an Apple silicon Mac with PyTorch installed",
        }[requested]
        return "cpu", [
            f"Requested device {requested!r} isn't available: {reason}. Running on the CPU instead."
        ]
    return cast(Device, requested), []


DEFAULT_COMPUTE_TYPE: dict[str, str] = {"cuda": "float16", "cpu": "int8", "mps": "float32"}

_FALLBACKS: dict[str, tuple[str, ...]] = {
    "float16": ("bfloat16", "float32"),
    "bfloat16": ("float16", "float32"),
    "int8_float16": ("int8_bfloat16", "int8_float32", "int8", "float16", "float32"),
    "int8_bfloat16": ("int8_float16", "int8_float32", "int8", "bfloat16", "float32"),
    "int8_float32": ("int8", "float32"),
    "int8": ("int8_float32", "float32"),
    "int16": ("int8_float32", "int8", "float32"),
    "float32": (),
}
"""Closest alternatives to each compute type, best first (keep the precision, then the speed)."""

_LAST_RESORT = ("float32", "int8_float32", "int8", "float16", "bfloat16", "int8_float16", "int8_bfloat16")

_DEFAULT_WORDS = frozenset({"auto", "default"})


def choose_compute_type(
    device: str, requested: str | None, supported: Collection[str]
) -> tuple[str, list[str]]:
    """The compute type to load with on ``device``, plus warnings for a person.

    ``requested`` None / ``auto`` / ``default`` means the device default (CUDA float16, CPU int8).
    A requested type that ``supported`` (e.g. ``ct2_compute_types(device)``) lacks falls back to its
    closest supported alternative with a warning.

    Raises:
        errors.DeviceUnavailable: ``supported`` is empty: nothing can run on ``device``.
    """
    if not supported:
        raise errors.DeviceUnavailable(
            f"No compute type is available on {device!r}; use device 'cpu' or reinstall the engine.",
            device=device,
        )
    warnings: list[str] = []
    default = DEFAULT_COMPUTE_TYPE.get(device, "float32")
    explicit = requested is not None and requested not in _DEFAULT_WORDS
    wanted = requested if requested is not None and explicit else default
    if wanted not in _FALLBACKS:
        warnings.append(
            f"Unknown compute type {requested!r} (valid: {', '.join(sorted(_FALLBACKS))}); "
            f"using the {device} default."
        )
        wanted = default
    chosen = next(
        (c for c in (wanted, *_FALLBACKS[wanted], *_LAST_RESORT) if c in supported), sorted(supported)[0]
    )
    if chosen != wanted:
        what = "The default compute type" if wanted == default and not explicit else "Compute type"
        warnings.append(
            f"{what} {wanted!r} isn't supported on {device} here "
            f"(supported: {', '.join(sorted(supported))}); using {chosen!r} instead."
        )
    return chosen, warnings
