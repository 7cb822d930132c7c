"""System methods: devices (more arrive with the system services)."""

from __future__ import annotations

import anyio

from ..devices import DeviceReport, probe_devices
from ..rpc import RequestContext, rpc_method


@rpc_method("system.devices", summary="CPU features, CUDA GPUs, Apple MPS and ONNX Runtime providers.")
async def devices(ctx: RequestContext) -> DeviceReport:
    return await anyio.to_thread.run_sync(probe_devices)


METHODS = [devices]
