"""The host examples a desktop developer copies first, run against the real sidecar."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asrpro_rpc.samples import sample_path
from tests.support.sidecar import repo_root


def _run(argv: list[str], model_cache: Path, tmp_path: Path) -> str:
    env = {
        **os.environ,
        "ASRPRO_CMD": f"{sys.executable} -m asrpro_rpc serve --log-level warning",
        "ASRPRO_MODELS_DIR": str(model_cache),
        "ASRPRO_CONFIG_DIR": str(tmp_path),
    }
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env, cwd=repo_root())
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_python_host(model_cache: Path, tmp_path: Path) -> None:
    out = _run([sys.executable, "examples/python_host.py", str(sample_path())], model_cache, tmp_path)
    assert "ping: True" in out
    assert "transcript: Please open the door and turn on the lights in the kitchen." in out
    assert "notification transcription.progress" in out
    assert "exited with code 0" in out


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_node_host(model_cache: Path, tmp_path: Path) -> None:
    out = _run(["node", "examples/node_host.mjs", str(sample_path())], model_cache, tmp_path)
    assert "ping: true" in out
    assert "transcript: Please open the door and turn on the lights in the kitchen." in out
    assert "exited with code 0" in out
