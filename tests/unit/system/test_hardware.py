"""Device detection on this machine, and device / compute-type choice over injected capabilities."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asrpro_rpc import errors
from asrpro_rpc.system.hardware import (
    DeviceReport,
    GpuReading,
    choose_compute_type,
    choose_device,
    ct2_compute_types,
    onnx_runtime,
    parse_nvidia_smi,
    probe_devices,
)

CPU_ONLY = DeviceReport(cpu_count=8, cpu_compute_types=("float32", "int8", "int8_float32"))
ONE_GPU = DeviceReport(cpu_count=8, cuda_device_count=1)
APPLE = DeviceReport(platform="darwin", machine="arm64", mps_available=True)
CT2_CPU = {"float32", "int8", "int8_float32"}
CT2_AMPERE = {"float32", "float16", "bfloat16", "int8", "int8_float32", "int8_float16", "int8_bfloat16"}
CT2_PASCAL = {"float32", "int8", "int8_float32"}  # compute capability 6.1: no efficient float16
COMPUTE_TYPES = sorted(CT2_AMPERE | {"int16"})


# --- probing this machine ------------------------------------------------------------------------
def test_probe_reports_the_cpu_and_any_gpu() -> None:
    report = probe_devices()
    assert report.cpu_count >= 1
    assert {"int8", "float32"} <= set(report.cpu_compute_types)
    assert "CPUExecutionProvider" in report.onnx_providers
    assert report.platform == sys.platform
    if report.cuda_device_count:
        assert "float32" in report.cuda_compute_types
    else:
        assert report.gpus == () and report.cuda_compute_types == ()


def test_probe_does_not_import_torch() -> None:
    code = (
        "import sys; from asrpro_rpc.system import hardware; hardware.probe_devices();"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_ct2_compute_types() -> None:
    assert {"int8", "float32"} <= ct2_compute_types("cpu")
    if probe_devices().cuda_device_count == 0:
        assert ct2_compute_types("cuda") == frozenset()  # empty, not an exception


def test_parse_nvidia_smi() -> None:
    text = (
        "0, NVIDIA H100 80GB HBM3, 81559, 80000, 1559, 9.0\n1, Tesla P4, 7680, [N/A], [N/A], [N/A]\n"
        "\nNo devices were found\n"
    )
    assert parse_nvidia_smi(text) == (
        GpuReading(
            index=0,
            name="NVIDIA H100 80GB HBM3",
            total_bytes=81559 << 20,
            free_bytes=80000 << 20,
            used_bytes=1559 << 20,
            compute_capability="9.0",
        ),
        GpuReading(index=1, name="Tesla P4", total_bytes=7680 << 20),
    )


# --- device choice ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("caps", "supported", "expected"),
    [
        (CPU_ONLY, ("cpu", "cuda", "mps"), "cpu"),
        (ONE_GPU, ("cpu", "cuda"), "cuda"),
        (APPLE, ("cpu", "cuda", "mps"), "mps"),
        (APPLE, ("cpu", "cuda"), "cpu"),  # faster-whisper has no Metal backend
        (ONE_GPU, ("cpu",), "cpu"),
    ],
)
def test_auto_picks_the_best_device_without_warnings(
    caps: DeviceReport, supported: tuple[str, ...], expected: str
) -> None:
    assert choose_device("auto", caps, supported=supported) == (expected, [])


def test_explicit_available_device_is_honoured() -> None:
    assert choose_device("cpu", ONE_GPU) == ("cpu", [])
    assert choose_device("cuda", ONE_GPU) == ("cuda", [])
    assert choose_device("mps", APPLE) == ("mps", [])


def test_cuda_without_gpu_falls_back_to_cpu_with_a_warning() -> None:
    device, warnings = choose_device("cuda", CPU_ONLY)
    assert device == "cpu"
    assert len(warnings) == 1 and "no CUDA GPU" in warnings[0] and "CPU instead" in warnings[0]


def test_mps_off_apple_or_unsupported_by_engine_falls_back_to_cpu() -> None:
    device, warnings = choose_device("mps", ONE_GPU)
    assert device == "cpu" and "Apple silicon" in warnings[0]
    device, warnings = choose_device("mps", APPLE, supported=("cpu", "cuda"))
    assert device == "cpu" and "can't use Apple Metal" in warnings[0]


def test_onnx_provider_device_runs_other_engines_on_cpu() -> None:
    device, warnings = choose_device("webgpu", ONE_GPU)
    assert device == "cpu" and "only ONNX models use" in warnings[0]


def test_onnx_runtime_registers_installed_plugins_once() -> None:
    """The real ONNX Runtime here, with whatever plugin EP packages are installed: each one registered
    (or its error kept), and a second call the same report without registering again."""
    first = onnx_runtime()
    assert first is not None and "CPUExecutionProvider" in first.providers
    assert any(d.provider == "CPUExecutionProvider" and d.type == "cpu" for d in first.devices)
    for plugin in first.plugins:
        assert bool(plugin.providers) != bool(plugin.error), plugin
    assert onnx_runtime() is first
    report = probe_devices()
    assert (report.onnx_providers, report.onnx_devices, report.onnx_plugins) == (
        first.providers,
        first.devices,
        first.plugins,
    )


def test_unknown_device_is_a_config_error() -> None:
    with pytest.raises(errors.InvalidConfig, match="auto, cpu, cuda or mps"):
        choose_device("tpu", CPU_ONLY)


# --- compute type -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("device", "requested", "supported", "expected", "warns"),
    [
        ("cpu", None, CT2_CPU, "int8", False),
        ("cpu", "auto", CT2_CPU, "int8", False),
        ("cpu", "default", CT2_CPU, "int8", False),
        ("cpu", "float32", CT2_CPU, "float32", False),
        ("cpu", "int8", {"float32", "int8_float32"}, "int8_float32", True),
        ("cpu", "int8", {"float32"}, "float32", True),
        ("cpu", "float16", CT2_CPU, "float32", True),
        ("cpu", "int8_float16", CT2_CPU, "int8_float32", True),
        ("cpu", "int16", CT2_CPU, "int8_float32", True),
        ("cuda", None, CT2_AMPERE, "float16", False),
        ("cuda", "int8_float16", CT2_AMPERE, "int8_float16", False),
        ("cuda", "bfloat16", CT2_AMPERE, "bfloat16", False),
        ("cuda", None, CT2_PASCAL, "float32", True),
        ("cuda", "float16", CT2_PASCAL, "float32", True),
        ("cuda", "int8_float16", CT2_PASCAL, "int8_float32", True),
        ("cuda", "bfloat16", {"float32", "float16", "int8_float16"}, "float16", True),
        ("mps", None, {"float32", "float16"}, "float32", False),
    ],
)
def test_compute_type_choice(
    device: str, requested: str | None, supported: set[str], expected: str, warns: bool
) -> None:
    chosen, warnings = choose_compute_type(device, requested, supported)
    assert chosen == expected
    assert bool(warnings) == warns
    for warning in warnings:
        assert repr(expected) in warning and device in warning


def test_default_fallback_says_it_was_the_default() -> None:
    _, warnings = choose_compute_type("cuda", None, CT2_PASCAL)
    assert warnings[0].startswith("The default compute type 'float16' isn't supported on cuda")


def test_unknown_compute_type_uses_the_default_with_a_warning() -> None:
    chosen, warnings = choose_compute_type("cpu", "fp16", CT2_CPU)
    assert chosen == "int8"
    assert "Unknown compute type 'fp16'" in warnings[0]


def test_nothing_supported_is_the_only_error() -> None:
    with pytest.raises(errors.DeviceUnavailable):
        choose_compute_type("cuda", "float16", set())


@given(
    device=st.sampled_from(["cpu", "cuda", "mps"]),
    requested=st.none() | st.sampled_from([*COMPUTE_TYPES, "auto", "bogus"]),
    supported=st.sets(st.sampled_from(COMPUTE_TYPES), min_size=1),
)
def test_choice_is_always_supported(device: str, requested: str | None, supported: set[str]) -> None:
    chosen, warnings = choose_compute_type(device, requested, supported)
    assert chosen in supported
    if requested in supported:
        assert chosen == requested and warnings == []
