#!/usr/bin/env bash
# Set up (idempotent) and run the end-to-end quickstart on the embedded miniature world.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/vitune quickstart "$@"
