"""Audio methods: input devices, recording to WAV, microphone permission."""

from __future__ import annotations

import anyio
import msgspec

from ..audio.inputs import AudioDevice
from ..audio.permissions import MicrophonePermission
from ..audio.recorder import RecordingResult
from ..services.audio import RecordStartParams, RecordStartResult, RecordStopParams
from .base import RequestContext, rpc_method


class DevicesParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refresh: bool = False
    """Re-read the operating system's device list now (skipped while a recording is running)."""


class DevicesResult(msgspec.Struct, frozen=True):
    devices: list[AudioDevice]


@rpc_method(
    "audio.devices",
    summary="Input devices with stable ids (PortAudio's and the sound server's sources); starts the "
    "hot-swap watch that sends audio.devices_changed.",
)
async def devices(ctx: RequestContext, params: DevicesParams) -> DevicesResult:
    found = await anyio.to_thread.run_sync(ctx.app.audio.devices, params.refresh)
    return DevicesResult(found)


@rpc_method(
    "audio.record.start",
    summary="Record an input device to a 16-bit mono WAV file; sends audio.level (~20 Hz).",
    errors=("device_unavailable", "permission_denied", "invalid_params"),
)
async def record_start(ctx: RequestContext, params: RecordStartParams) -> RecordStartResult:
    return await anyio.to_thread.run_sync(ctx.app.audio.start_recording, params)


@rpc_method(
    "audio.record.stop",
    summary="Stop a recording (or collect one that ended on its own): path, duration, levels.",
    errors=("not_found",),
)
async def record_stop(ctx: RequestContext, params: RecordStopParams) -> RecordingResult:
    return await anyio.to_thread.run_sync(ctx.app.audio.stop_recording, params.recording_id)


@rpc_method(
    "audio.permission",
    summary="Whether this process may use the microphone, with guidance (and the settings URL on macOS).",
)
async def permission(ctx: RequestContext) -> MicrophonePermission:
    return await anyio.to_thread.run_sync(ctx.app.audio.permission)


METHODS = [devices, record_start, record_stop, permission]
