#!/usr/bin/env bash
# Download the wheels that the device machine lacks into DEST (default .whl_gpu, ignored):
# this venv's packages at their installed versions, for CPython 3.12 on x86-64 Linux, less
# what the device image has (jax and its numeric stack; tensorstore, uvloop, pytest, pillow,
# protobuf, psutil, PyYAML, requests, rich, msgpack, fsspec and their dependencies: its pip
# list on an H100, 2026-12-07) and what only CPU work here needs (the linters, aeon and its
# stack). About 15 MB: with the tracked tree under the 64 MiB a call carries. A device call
# then carries DEST and starts with
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .whl_gpu/*.whl && export PYTHONPATH=/tmp/site:$PWD
# Further requirements after DEST are added as they are: the UEA/UCR runs of ts_seeds.sh read
# the shipped sets from aeon's wheel (6 MB; its files, not its code or dependencies):
#   bash scripts/experiments/gpu_wheels.sh .whl_gpu aeon==1.6.0
# Run from the repository root after scripts/setup.sh.
set -euo pipefail
dest=${1:-.whl_gpu}; shift || true
on_device='jax|jaxlib|numpy|scipy|ml.dtypes|opt.einsum|tensorstore|uvloop|pytest|pluggy|iniconfig|pillow|protobuf|psutil|pyyaml|requests|urllib3|idna|certifi|charset.normalizer|rich|markdown.it.py|mdurl|pygments|msgpack|fsspec'
cpu_only='ms.ssm.jax|aeon|scikit.learn|pyarrow|ruff|yapf|pytest.xdist|execnet|threadpoolctl|joblib|numba|llvmlite|pandas|deprecated|sktime|pytz|tzdata|python.dateutil'
skip="^($on_device|$cpu_only)="
mkdir -p $dest && rm -f $dest/*.whl  # one version of each: pip refuses two
.venv/bin/pip freeze --exclude-editable | grep -v '^#' | grep -v -i -E "$skip" > $dest/requirements.txt
for extra in "$@"; do echo "$extra" >> $dest/requirements.txt; done
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform ${tag}_x86_64)
done
while read -r requirement; do  # a package published only as source (e.g. promise) is built here
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d $dest "$requirement" 2> /dev/null \
    || .venv/bin/pip wheel -q --no-deps -w $dest "$requirement"
done < $dest/requirements.txt
du -sh $dest
