"""A real virtual microphone (a pytest plugin): a private PulseAudio server whose default source records
what is played into the null sink ``asrpro_test`` (scripts/virtual_mic.sh).

PortAudio lists devices when ``sounddevice`` is imported, so ``PULSE_SERVER`` is exported here before
any test imports it, and passed to spawned sidecars through ``VirtualMic.env``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "virtual_mic.sh"


@dataclass
class VirtualMic:
    env: dict[str, str]
    """``PULSE_SERVER`` (and the vmic names) for processes that record from it."""
    sink: str
    source: str

    def pactl(self, *args: str) -> str:
        return subprocess.run(
            ["pactl", *args], env={**os.environ, **self.env}, check=True, capture_output=True, text=True
        ).stdout

    def play(self, wav: Path, sink: str | None = None) -> subprocess.Popen[bytes]:
        """Start playing ``wav`` into the sink (what the microphone hears)."""
        return subprocess.Popen(["paplay", "-d", sink or self.sink, str(wav)], env={**os.environ, **self.env})

    def restore(self) -> None:
        """Bring back what a test unloaded, and make ``asrpro_mic`` the default source again."""
        subprocess.run(
            [str(SCRIPT), "start"], env={**os.environ, **self.env}, check=True, capture_output=True
        )


@pytest.fixture(scope="session")
def virtual_mic() -> Iterator[VirtualMic]:
    """The running virtual microphone; skips when PulseAudio or PortAudio is not installed."""
    missing = [tool for tool in ("pulseaudio", "pactl", "paplay") if shutil.which(tool) is None]
    if missing or not sys.platform.startswith("linux"):
        pytest.skip("the virtual microphone needs apt-get install pulseaudio pulseaudio-utils libportaudio2")
    vmic_dir = f"/tmp/asrpro-vmic-{os.getpid()}"  # short: a unix socket path has ~100 bytes
    base = {**os.environ, "VMIC_DIR": vmic_dir}
    started = subprocess.run([str(SCRIPT), "start"], env=base, check=True, capture_output=True, text=True)
    env = dict(line.split("=", 1) for line in started.stdout.split() if "=" in line)
    env["VMIC_DIR"] = vmic_dir
    # pacmd (kill-source-output drops a stream on purpose) talks to the server through this module
    subprocess.run(["pactl", "load-module", "module-cli-protocol-unix"], env={**base, **env}, check=True)
    saved = os.environ.get("PULSE_SERVER")
    os.environ["PULSE_SERVER"] = env["PULSE_SERVER"]
    if "sounddevice" in sys.modules:  # imported before the server existed: let PortAudio look again
        from asrpro_rpc.audio.inputs import reinitialize_portaudio

        reinitialize_portaudio()
    try:
        yield VirtualMic(env=env, sink=env["VMIC_SINK"], source=env["VMIC_SOURCE"])
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=base, check=False, capture_output=True)
        shutil.rmtree(vmic_dir, ignore_errors=True)
        if saved is None:
            os.environ.pop("PULSE_SERVER", None)
        else:
            os.environ["PULSE_SERVER"] = saved


def drop_client_streams(mic: VirtualMic) -> None:
    """Make the server drop every client's capture stream, as when a device goes away under it."""
    env = {**mic.env, "PULSE_RUNTIME_PATH": f"{mic.env['VMIC_DIR']}/run"}
    for line in mic.pactl("list", "short", "source-outputs").splitlines():
        index, _, _, driver, *_ = line.split("\t")
        if driver == "protocol-native.c":
            subprocess.run(["pacmd", "kill-source-output", index], env=env, check=True, capture_output=True)


@contextlib.contextmanager
def stereo_sink(mic: VirtualMic, name: str = "stereo48") -> Iterator[str]:
    """A 48 kHz stereo null sink; yields its monitor's device id."""
    module = mic.pactl("load-module", "module-null-sink", f"sink_name={name}", "rate=48000", "channels=2")
    try:
        yield f"pulse:{name}.monitor"
    finally:
        mic.pactl("unload-module", module.strip())


def source_output_specs(mic: VirtualMic) -> list[str]:
    """The sample specs of the clients' capture streams, as the sound server sees them."""
    text = mic.pactl("list", "source-outputs")
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if "Sample Specification" in line]
