#!/usr/bin/env bash
# Download the wheels that the device machine lacks into DEST (default .whl_gpu, ignored):
# this venv's packages at their installed versions, for CPython 3.12 on x86-64 Linux, less
# what the device image has (jax, jaxlib and their numeric stack, pillow) and what only CPU
# work here needs (the linters, aeon and its stack). A device call then carries DEST and
# starts with
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .whl_gpu/*.whl && export PYTHONPATH=/tmp/site:$PWD
# Run from the repository root after scripts/setup.sh.
set -euo pipefail
dest=${1:-.whl_gpu}
skip='^(jax|jaxlib|numpy|scipy|ml.dtypes|opt.einsum|ms.ssm.jax|aeon|scikit.learn|pyarrow|pillow|ruff|yapf|threadpoolctl|joblib|numba|llvmlite|pandas|deprecated|sktime|pytz|tzdata|python.dateutil)='
mkdir -p $dest
.venv/bin/pip freeze --exclude-editable | grep -v '^#' | grep -v -i -E "$skip" > $dest/requirements.txt
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
