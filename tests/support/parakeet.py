"""Parakeet fixtures (a pytest plugin): a tiny random Parakeet TDT ``.nemo`` and its ONNX export.

Built offline by ``make_tiny_parakeet.py`` in one subprocess (~10 s, mostly ``import nemo``) and cached
under the temp dir, keyed by the builder's and the exporter's source and the NeMo version, so later
sessions reuse it. The export sits beside the ``.nemo`` where the ``nemo`` engine looks for it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.sidecar import repo_root

SEED = 3
"""A seed whose random model emits many short words (most seeds emit one long one)."""


def _cache_dir() -> Path:
    sources = [
        repo_root() / "tests" / "support" / "make_tiny_parakeet.py",
        repo_root() / "asrpro_rpc" / "engines" / "parakeet" / "export.py",
    ]
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.read_bytes())
    digest.update(importlib.metadata.version("nemo_toolkit").encode())
    digest.update(str(SEED).encode())
    return Path(tempfile.gettempdir()) / "asrpro-test-cache" / f"tiny-parakeet-{digest.hexdigest()[:16]}"


@pytest.fixture(scope="session")
def tiny_parakeet_dir() -> Path:
    """A folder with ``tiny-parakeet.nemo`` and its export ``tiny-parakeet-onnx/`` (read-only for tests)."""
    for module in ("nemo", "onnx_asr"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: pip install -e '.[nemo,onnx]'")
    target = _cache_dir()
    if (target / "tiny-parakeet-onnx" / "config.json").is_file():
        return target
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.make_tiny_parakeet",
            str(partial / "tiny-parakeet.nemo"),
            "--seed",
            str(SEED),
            "--onnx",
            str(partial / "tiny-parakeet-onnx"),
        ],
        cwd=repo_root(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        os.replace(partial, target)
    except OSError:  # another session finished first
        shutil.rmtree(partial, ignore_errors=True)
    return target


@pytest.fixture(scope="session")
def tiny_parakeet_nemo(tiny_parakeet_dir: Path) -> Path:
    """The tiny random Parakeet TDT ``.nemo`` (1.5 MB; FastConformer + TDT joint, tiny dims)."""
    return tiny_parakeet_dir / "tiny-parakeet.nemo"


@pytest.fixture(scope="session")
def tiny_parakeet_onnx(tiny_parakeet_dir: Path) -> Path:
    """Its ONNX export in the onnx-asr layout (``nemo-conformer-tdt``)."""
    return tiny_parakeet_dir / "tiny-parakeet-onnx"
