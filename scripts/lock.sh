#!/usr/bin/env bash
# Refresh requirements/lock.txt from pyproject.toml: every package `scripts/install.sh` installs (extras
# dev,all,nemo,onnx; CPython 3.11 on x86_64 Linux; torch's CPU build), pinned with its hashes, by uv.
# Usage: bash scripts/lock.sh             re-resolve, keeping today's pins where pyproject.toml still allows them
#        bash scripts/lock.sh --upgrade   take the newest versions the ranges allow
#        bash scripts/lock.sh --check     exit 1 (with the difference) if the lock no longer matches pyproject.toml
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/torch_wheels.sh
uv=$(command -v .venv/bin/uv || command -v uv) || { echo "uv is needed: pip install uv" >&2; exit 1; }
mode="${1:-}"
output=requirements/lock.txt
if [[ "$mode" == --check ]]; then
  output=$(mktemp --suffix=.txt)
  trap 'rm -f "$output"' EXIT
  cp requirements/lock.txt "$output"   # today's pins are uv's preferences: only a pyproject.toml change moves them
fi
upgrade=()
[[ "$mode" == --upgrade ]] && upgrade=(--upgrade)
"$uv" pip compile --quiet pyproject.toml --extra dev --extra all --extra nemo --extra onnx \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
  --constraints requirements/torch-cpu.txt "${torch_links[@]}" --no-emit-find-links \
  --custom-compile-command "bash scripts/lock.sh" "${upgrade[@]}" --output-file "$output"
if [[ "$mode" == --check ]]; then
  if ! diff -u requirements/lock.txt "$output"; then
    echo "requirements/lock.txt does not match pyproject.toml: run bash scripts/lock.sh and commit it" >&2
    exit 1
  fi
  echo "requirements/lock.txt matches pyproject.toml" >&2
fi
