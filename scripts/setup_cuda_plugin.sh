#!/usr/bin/env bash
# Installs JAX's CUDA compiler plugin, at .venv's JAX version, into ./.cuda_plugin: what
# scripts/train_compile.py needs to compile for a GPU on a machine without one (~180 MB; no
# CUDA libraries, no GPU). It stays out of .venv, where it would look for a GPU at every import
# of jax; put it on the path for the compile only:
#   PYTHONPATH=.cuda_plugin .venv/bin/python scripts/train_compile.py --configs ...
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(.venv/bin/python -c 'import jax; print(jax.__version__)')
.venv/bin/python -m pip install --quiet --no-deps --upgrade --target .cuda_plugin \
  "jax-cuda12-plugin==$version" "jax-cuda12-pjrt==$version"
