"""An engine crash costs the request that was running on it, never the ones that had not started there."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

from tests.support.models import TINY_FAST as FAST
from tests.support.sidecar import Sidecar


def _tiny(start_sidecar: Callable[..., Sidecar], tiny_whisper_dir: Path, **env: str) -> Sidecar:
    sidecar = start_sidecar(env=env)
    sidecar.call("models.register", {"id": "tiny", "path": str(tiny_whisper_dir)})
    sidecar.call("models.load", {"model": "tiny"})
    return sidecar


def _transcribe_request(sidecar: Sidecar, path: Path) -> int:
    return sidecar.request("transcribe.file", {"path": str(path), "model": "tiny", **FAST})


def test_an_engine_killed_to_end_a_cancel_costs_only_the_cancelled_request(
    start_sidecar: Callable[..., Sidecar], tiny_whisper_dir: Path, speech_wav: Path, long_audio_factory
) -> None:
    sidecar = _tiny(start_sidecar, tiny_whisper_dir)
    engine = sidecar.call("models.status")["pid"]
    cancelled = _transcribe_request(sidecar, long_audio_factory(120.0))
    sidecar.wait_for_notification(
        lambda n: n["method"] == "transcription.progress" and n["params"]["stage"] == "transcribing"
    )
    os.kill(engine, signal.SIGSTOP)  # busy and deaf: it can't honour the cancel, so the sidecar must kill it
    try:
        waiting = [_transcribe_request(sidecar, speech_wav) for _ in range(3)]  # sent to that engine
        sidecar.notify("$/cancelRequest", {"id": cancelled})
        assert sidecar.response(cancelled)["error"]["code"] == -32800
        for request_id in waiting:
            reply = sidecar.response(request_id, timeout_s=120)
            assert "result" in reply, reply
            assert reply["result"]["model"] == "tiny" and reply["result"]["duration"] > 3
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed and reaped, as it should be
            os.kill(engine, signal.SIGCONT)
    assert sidecar.call("models.status")["pid"] not in (None, engine)


def test_requests_sent_right_after_a_crash_run_on_a_fresh_engine(
    start_sidecar: Callable[..., Sidecar], tiny_whisper_dir: Path, speech_wav: Path
) -> None:
    sidecar = _tiny(start_sidecar, tiny_whisper_dir)
    crashed = sidecar.call("models.status")["pid"]
    os.kill(crashed, signal.SIGKILL)
    after = [_transcribe_request(sidecar, speech_wav) for _ in range(3)]
    for request_id in after:
        reply = sidecar.response(request_id, timeout_s=120)
        assert "result" in reply, reply
    assert sidecar.call("models.status")["pid"] not in (None, crashed)
