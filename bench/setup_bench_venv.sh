#!/usr/bin/env bash
# The benchmark's own environment: torchsm as a regular (non-editable) install, plus the
# libraries it is compared with. These are never torchsm dependencies.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python3 -m venv "$here/.venv"
"$here/.venv/bin/pip" install --quiet "$here/.." "persist-queue==1.1.0" "litequeue==0.9"
