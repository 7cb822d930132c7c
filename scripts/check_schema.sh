#!/usr/bin/env bash
# `asrpro schema --check` against the lock (.venv) and against the oldest and the newest versions that
# pyproject.toml's ranges allow (fresh venvs of the core dependencies, which generate the document): the
# checked-in schema/openrpc.json must not depend on which releases a machine resolved.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "schema check: the lock" >&2
.venv/bin/asrpro schema --check
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for resolution in lowest-direct highest; do
  .venv/bin/uv venv --quiet --python .venv/bin/python "$scratch/$resolution"
  .venv/bin/uv pip install --quiet --python "$scratch/$resolution/bin/python" --resolution "$resolution" -e .
  versions=$("$scratch/$resolution/bin/python" -c 'from importlib.metadata import version as v; print(*(f"{p}=={v(p)}" for p in ("msgspec", "anyio", "platformdirs", "psutil")))')
  echo "schema check: $resolution ($versions)" >&2
  "$scratch/$resolution/bin/asrpro" schema --check
done
