"""System methods: devices, health, resources."""

from __future__ import annotations

import anyio

from ..services.system import HealthResult, ResourcesResult
from ..system.hardware import DeviceReport, probe_devices
from .base import RequestContext, rpc_method


@rpc_method("system.devices", summary="CPU features, CUDA GPUs, Apple MPS and ONNX Runtime providers.")
async def devices(ctx: RequestContext) -> DeviceReport:
    return await anyio.to_thread.run_sync(probe_devices)


@rpc_method("system.health", summary="Status, engine state and resident model, uptime, last error, warnings.")
async def health(ctx: RequestContext) -> HealthResult:
    return await anyio.to_thread.run_sync(ctx.app.system.health)


@rpc_method(
    "system.resources",
    summary="Sidecar and engine RSS, CPU, threads and fds; system memory; GPU memory; model-cache disk.",
)
async def resources(ctx: RequestContext) -> ResourcesResult:
    return await anyio.to_thread.run_sync(ctx.app.system.resources)


METHODS = [devices, health, resources]
