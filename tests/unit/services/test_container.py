"""The services container builds at start-up only what serving needs; the rest on first use, once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.sidecar import sidecar_env

LAZY = ("audio", "downloads", "streaming", "transcription")
PROBE = (
    "import json, sys; from asrpro_rpc.services.container import App; app = App();"
    f"imported = lambda: [n for n in {LAZY!r} if 'asrpro_rpc.services.' + n in sys.modules];"
    f"at_start = imported(); services = [getattr(app, n) for n in {LAZY!r}];"
    f"same = all(getattr(app, n) is s for n, s in zip({LAZY!r}, services));"
    "print(json.dumps([at_start, imported(), same]))"
)


def _probe(tmp: Path) -> list:
    env = {**os.environ, **sidecar_env(tmp, ASRPRO_RECORDINGS_DIR=str(tmp / "recordings"))}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_services_nothing_needs_at_start_are_built_on_first_use(tmp_path: Path) -> None:
    at_start, after_use, same = _probe(tmp_path)
    assert at_start == []
    assert after_use == list(LAZY) and same


def test_an_interrupted_recording_builds_the_audio_service_at_start(tmp_path: Path) -> None:
    journal = tmp_path / "recordings" / ".in-progress"
    journal.mkdir(parents=True)
    (journal / "rec_gone.json").write_text(json.dumps({"path": str(tmp_path / "gone.wav")}))
    at_start, _, _ = _probe(tmp_path)
    assert at_start == ["audio"]
    assert not any(journal.iterdir())  # the recovery ran (a listed file that is gone is just forgotten)
