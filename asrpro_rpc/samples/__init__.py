"""A short real speech sample shipped with the package, for smoke tests and the README's first run.

``speech_en.ogg``: espeak-ng (1.51, ``-s 150``) saying "Please open the door and turn on the lights in the
kitchen.", resampled to 16 kHz mono and encoded once with PyAV as Ogg Opus at 12 kbit/s (3.7 s, 5.6 KB).
Whisper tiny.en and base both transcribe it exactly.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SAMPLE_TEXT = "Please open the door and turn on the lights in the kitchen."


def sample_path() -> Path:
    """Path of the bundled English speech sample (the package is installed as files, never zipped)."""
    return Path(str(files(__name__) / "speech_en.ogg"))
