"""``asrpro devices`` and ``asrpro record``: list input devices, record a WAV (with a level meter).

They run the audio service in this process (no sidecar); the level meter and messages go to stderr.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import AsrproError

_METER_WIDTH = 30


def devices_command(args: Any) -> int:
    from ..audio.inputs import list_input_devices

    for device in list_input_devices():
        marker = "*" if device.is_default else " "
        rates = ",".join(
            str(r // 1000 if r % 1000 == 0 else r / 1000) for r in device.supported_sample_rates_hz
        )
        sys.stdout.write(f"{marker} {device.id:<45} {device.max_input_channels:>2} ch  rates(kHz): {rates}\n")
    return 0


def _meter(method: str, params: Any) -> None:
    if method == "audio.level":
        filled = int(_METER_WIDTH * max(0.0, min(1.0, (params.peak_dbfs + 60) / 60)))
        sys.stderr.write(f"\r[{'#' * filled}{' ' * (_METER_WIDTH - filled)}] {params.peak_dbfs:6.1f} dBFS")
    elif method == "notification":
        sys.stderr.write(f"\n{params.level}: {params.message}\n")


def record_command(args: Any) -> int:
    from ..config.file import read_settings
    from ..services.audio import AudioService, RecordStartParams

    audio_settings = read_settings().audio
    service = AudioService(_meter, settings=lambda: audio_settings)
    done = threading.Event()  # set by nothing: Ctrl+C or the duration ends the wait
    try:
        started = service.start_recording(
            RecordStartParams(
                device=args.device, path=args.output, max_duration_s=args.seconds, fallback_to_default=True
            )
        )
    except AsrproError as exc:
        sys.stderr.write(f"asrpro record: {exc.message}\n")
        return 1
    sys.stderr.write(f"recording {started.device} → {started.path} (Ctrl+C to stop)\n")
    try:
        while not done.wait(0.1):
            if args.seconds is not None and service.finished(started.recording_id):
                break
    except KeyboardInterrupt:
        pass
    result = service.stop_recording(started.recording_id)
    service.close()
    sys.stderr.write(f"\nsaved {result.path}: {result.duration_s:.2f} s, peak {result.peak_dbfs} dBFS\n")
    if not args.transcribe:
        return 0
    from .commands import transcribe_command

    args.files, args.output, args.output_dir = [str(Path(result.path))], None, None
    args.format, args.task, args.word_timestamps = "text", "transcribe", False
    return transcribe_command(args)
