#!/usr/bin/env bash
# Creates ./.venv with ms_ssm_jax, its test tools, and the shipped time-series data.
#
# aeon is installed without its dependencies: we only read the UEA/UCR `.ts` files that its
# wheel ships (ms_ssm_jax/data/shipped.py), never import it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/python -m pip install --quiet --no-deps 'aeon==1.6.0'
