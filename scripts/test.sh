#!/usr/bin/env bash
# Run the test suite (after scripts/install.sh). Installs the system packages the tests use — espeak-ng
# (speech), sox, PortAudio and PulseAudio (a virtual microphone) — with apt-get when they are missing and
# we may (root); without them the tests that need them skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(espeak-ng sox libportaudio2 pulseaudio pulseaudio-utils)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})) && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
exec .venv/bin/python -m pytest -q "$@"
