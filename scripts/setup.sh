#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the CPU build of torch and vitune (editable).
# Re-running is cheap: each step is skipped when what it installs is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_PIN=${VITUNE_TORCH:-torch==2.13.0}   # the CPU build this machine's pip finds on local disk

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing $TORCH_PIN (CPU build first, so nothing pulls a CUDA build)"
  .venv/bin/pip install -q "$TORCH_PIN"
fi
stamp=.venv/.vitune-installed
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c "import vitune" >/dev/null 2>&1; then
  echo "[setup] installing vitune and its pinned dependencies"
  .venv/bin/pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi
bash scripts/setup_tf4.sh   # .venv-tf4: transformers 4.57 for the cross-version export check
