#!/bin/bash
# The speed measurements still missing from the README, in one device call (~10 minutes), from
# the repository root:
#   bash scripts/experiments/speed_rows.sh $OUT
# 1. train step of the task configs not yet timed on a GPU (random inputs, no data needed);
# 2. the S6 variant's PTB-XL and Pathfinder configs with remat (they do not fit without it;
#    Pathfinder took 1.54 s a step on an H100, results/h100/s6_remat/2026-12-06/);
# 3. the layer table with the MS-SSM static-mixer rows (separates the paper mixer's cost).
# Each part has its own time limit; a part cut short keeps what it wrote. Results under $OUT.
out=${1:?usage: speed_rows.sh OUTDIR}
PY=${PYTHON:-python3}
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
timeout 270 bash scripts/experiments/bench_train_all.sh $out/train \
  lra_retrieval scifar pathx imagenet
BENCH_RESULTS_DIR=$out/train timeout 150 $PY scripts/bench_train.py --steps 10 \
  --configs configs/ptbxl.py:ms_ssm_s6,configs/pathfinder.py:ms_ssm_s6 --set train.remat=True \
  --output_name bench_train_s6_remat 2>&1 | tee $out/bench_train_s6_remat.log
BENCH_RESULTS_DIR=$out timeout 130 $PY scripts/bench_layers.py --section layers \
  --lengths 1024,4096,16384 --tokens 65536 --only s5,lru 2>&1 | grep -v "^W1" \
  | tee $out/bench_layers.log
