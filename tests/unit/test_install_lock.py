"""The lock keeps its word: it covers pyproject.toml's ranges, pins torch's CPU build, and is installed."""

from __future__ import annotations

import platform
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"
LOCKED_EXTRAS = ("dev", "all", "nemo", "onnx")
# The lock's target (scripts/lock.sh): CPython 3.11 on x86_64 Linux.
LOCK_MARKERS = {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def locked_versions() -> dict[str, Version]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", LOCK.read_text(), flags=re.MULTILINE)
    return {canonicalize_name(name): Version(version) for name, version in pins}


def project_requirements() -> list[Requirement]:
    """The project's requirements for the locked extras, self-references (``asrpro-rpc[http]``) expanded."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras, seen = list(LOCKED_EXTRAS), set()
    requirements = [Requirement(text) for text in project["dependencies"]]
    while extras:
        extra = extras.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in project["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == "asrpro-rpc":
                extras.extend(requirement.extras)
            else:
                requirements.append(requirement)
    return requirements


def test_every_requirement_of_pyproject_is_pinned_within_its_range() -> None:
    pins = locked_versions()
    for requirement in project_requirements():
        if requirement.marker and not requirement.marker.evaluate({**LOCK_MARKERS, "extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements/lock.txt: run bash scripts/lock.sh"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements/lock.txt pins {name}=={pins[name]}, outside pyproject.toml's {requirement}: "
            "run bash scripts/lock.sh"
        )


def test_every_pin_carries_a_hash_and_torch_is_the_cpu_build() -> None:
    text = LOCK.read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text[text.index("\n", text.index("bash scripts/lock.sh")) + 1 :])
    assert len(entries) == len(locked_versions())
    for entry in entries:
        assert "--hash=sha256:" in entry, entry.splitlines()[0]
    assert locked_versions()["torch"].local == "cpu"


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11) or sys.platform != "linux" or platform.machine() != "x86_64",
    reason="the lock is for CPython 3.11 on x86_64 Linux",
)
def test_the_environment_running_the_tests_is_the_lock() -> None:
    """``scripts/install.sh`` installed exactly the locked versions (so CI tests what users get)."""
    installed = {canonicalize_name(d.metadata["Name"]): Version(d.version) for d in metadata.distributions()}
    differing = {
        name: (str(version), str(installed.get(name)))
        for name, version in locked_versions().items()
        if installed.get(name) != version
    }
    assert not differing, f"installed differs from requirements/lock.txt (locked, installed): {differing}"
