#!/bin/bash
# The fused Pallas kernel on a GPU (one device call, ~9 minutes), from the repository root:
# its tests compiled by Triton, the layer/kernel benchmark of issue 8 at the paper's ListOps size
# (with block shapes including state blocks), and the 20-layer train step with Pallas + remat.
# Writes logs and JSON into $1.
out=${1:?usage: run.sh OUTDIR}; mkdir -p $out; PY=${PYTHON:-python3}
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 BENCH_RESULTS_DIR=$out
timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_pallas_scan.py \
  tests/test_pallas_impl.py > $out/gpu_tests.log 2>&1; echo "tests exit $?" >> $out/gpu_tests.log
timeout 300 $PY scripts/bench_layers.py --section kernels --batch 50 --lengths 2048 \
  --states 16,128 --repeats 10 > $out/bench_kernels.log 2>&1
timeout 100 $PY scripts/bench_train.py --steps 10 \
  --configs configs/listops.py:ms_ssm,configs/listops.py:ms_ssm_s6 \
  --set model.layer_config.mode=scan --set model.layer_config.scan_impl=pallas \
  --set train.remat=True > $out/bench_train.log 2>&1
tail -3 $out/gpu_tests.log; grep -v "^|---" $out/bench_kernels.log | tail -40; tail -8 $out/bench_train.log
