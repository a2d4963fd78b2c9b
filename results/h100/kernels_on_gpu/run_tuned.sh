#!/bin/bash
# Second kernel call (~8 minutes), after run.sh set the default blocks: the GPU tests (verbose,
# so a timeout still names each result), the Pallas layer rows and a few bare-kernel shapes
# around the new default (T=8, H_blk=32, N_blk=16, 2 warps), and the ListOps train step.
out=${1:?usage: run_tuned.sh OUTDIR}; mkdir -p $out; PY=${PYTHON:-python3}
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 BENCH_RESULTS_DIR=$out
timeout 200 $PY -m pytest -v -p no:cacheprovider tests/test_pallas_scan.py \
  tests/test_pallas_impl.py > $out/gpu_tests.log 2>&1; echo "tests exit $?" >> $out/gpu_tests.log
timeout 120 $PY scripts/bench_layers.py --section kernels --batch 50 --lengths 2048 \
  --states 16,128 --repeats 10 --only pallas \
  --kernel_blocks 8x32x16x1x2,8x64x16x1x2,8x32x32x1x2,8x32x16x4x2,8x32x16x16x2 \
  > $out/bench_kernels.log 2>&1
timeout 150 $PY scripts/bench_train.py --steps 10 \
  --configs configs/listops.py:ms_ssm,configs/listops.py:ms_ssm_s6,configs/listops.py:s5,configs/listops.py:lru \
  --set train.remat=True > $out/bench_train.log 2>&1
grep -c PASSED $out/gpu_tests.log; grep -E "FAILED|exit" $out/gpu_tests.log
grep -v "^|---" $out/bench_kernels.log | grep "^| [mb]"; grep -v "^W1" $out/bench_train.log | tail -8
