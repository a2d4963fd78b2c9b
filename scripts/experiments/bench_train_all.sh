#!/bin/bash
# Train-step speed of every task config on one GPU, from the repository root:
#   bash scripts/experiments/bench_train_all.sh OUTDIR [CONFIG ...]
# (CONFIG: names under configs/, default all of them; about 1 minute each for four models;
# MODELS="s5 lru" times fewer models).
# Random inputs of each task's shapes, so no data is needed; a config that does not fit
# reports its error as its row. Writes OUTDIR/bench_train_<config>.json and one log.
out=${1:?usage: bench_train_all.sh OUTDIR [CONFIG ...]}; shift; mkdir -p $out
PY=${PYTHON:-python3}
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 BENCH_RESULTS_DIR=$out
configs=${*:-default listops pathfinder pathx lra_image lra_text lra_retrieval scifar smnist ptbxl synthetic imagenet}
for c in $configs; do
  list=$(for m in ${MODELS:-ms_ssm ms_ssm_s6 s5 lru}; do printf "configs/$c.py:$m,"; done)
  timeout 150 $PY scripts/bench_train.py --steps 10 --configs ${list%,} \
    --output_name bench_train_$c 2>&1 | grep -v "^wrote" | tee -a $out/bench_train_all.log
done
