#!/usr/bin/env bash
# Creates ./.venv with ms_ssm_jax, its test tools, and the shipped data: time series (aeon)
# and 8x8 digit images (scikit-learn).
#
# aeon and scikit-learn are installed without their dependencies: we only read the data files
# that their wheels ship (ms_ssm_jax/data/shipped.py, ms_ssm_jax/data/digits.py), never import
# them.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/python -m pip install --quiet --no-deps 'aeon==1.6.0' 'scikit-learn==1.7.2'
