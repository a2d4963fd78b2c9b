#!/bin/bash
# Third kernel call (~9 minutes), after session 5 added `state_loop` (one program walks all
# state blocks: no (B, G, N / N_blk, L, H) partial sums of y, du, ddelta) and `delta=None`
# (the s4d_real streams no longer read a tensor of ones nor compute its gradient). Runs the GPU
# tests, the Pallas layer rows (s4d_real now without delta), the bare kernel at the default
# shape with and without the state loop (and with 32 states per pass), and the 20-layer
# S6-variant ListOps train step with Pallas and remat (first step compiles for ~60 s).
out=${1:?usage: run_state_loop.sh OUTDIR}; mkdir -p $out; PY=${PYTHON:-python3}
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 BENCH_RESULTS_DIR=$out
timeout 200 $PY -m pytest -v -p no:cacheprovider tests/test_pallas_scan.py \
  tests/test_pallas_impl.py > $out/gpu_tests.log 2>&1; echo "tests exit $?" >> $out/gpu_tests.log
timeout 150 $PY scripts/bench_layers.py --section kernels --batch 50 --lengths 2048 \
  --states 16,128 --repeats 10 --only pallas \
  --kernel_blocks 8x32x16x1x2,8x32x16x1x2x1,8x32x32x1x2x1,8x32x16x1x4x1 \
  > $out/bench_kernels.log 2>&1
timeout 180 $PY scripts/bench_train.py --steps 10 --configs configs/listops.py:ms_ssm_s6 \
  --set train.remat=True > $out/bench_train.log 2>&1
grep -c PASSED $out/gpu_tests.log; grep -E "FAILED|exit" $out/gpu_tests.log
grep -v "^|---" $out/bench_kernels.log | grep "^| [mb]"; grep -v "^W1" $out/bench_train.log | tail -8
