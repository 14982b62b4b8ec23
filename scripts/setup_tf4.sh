#!/usr/bin/env bash
# Idempotent: a second, small environment in .venv-tf4 with transformers 4.57 on the same CPU torch,
# for the cross-version export check (tests/test_export_crossversion.py, `vitune export --check`).
# Only what loading and running a LLaVA needs: torch, transformers (+ tokenizers, safetensors), Pillow.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_PIN=${VITUNE_TORCH:-torch==2.13.0}
TF4_PIN=${VITUNE_TF4:-transformers==4.57.6}
want="$TORCH_PIN $TF4_PIN pillow"
# The stamp is written only after both installs succeeded (cheaper than importing torch here).
if [ -x .venv-tf4/bin/python ] && [ "$(cat .venv-tf4/.installed 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "[setup] creating .venv-tf4 ($TF4_PIN on $TORCH_PIN) for the cross-version export check"
[ -x .venv-tf4/bin/python ] || "$PY" -m venv .venv-tf4
.venv-tf4/bin/pip install -q "$TORCH_PIN"   # CPU build first, so transformers pulls no CUDA build
.venv-tf4/bin/pip install -q "$TF4_PIN" "pillow>=10"
echo "$want" > .venv-tf4/.installed
