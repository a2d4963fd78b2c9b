#!/bin/bash
# The synthetic memory tasks at the config's full budget (configs/synthetic.py unchanged:
# 20,000 steps of 64, warmup 1,000), MS-SSM (S4 variant), S5 and LRU, in four lanes that
# share one GPU. One device call does not fit it, so the same command continues across calls:
# every run checkpoints each 1,000 steps and at the deadline, and with RESUME_FROM=<dir of run
# directories from the previous call> the runs resume from there (train.py picks up the latest
# checkpoint; a finished run returns at once). From the repository root:
#   CLOCK=480 bash scripts/experiments/synthetic_full.sh $OUT                  # first call
#   RESUME_FROM=<wd> CLOCK=450 bash scripts/experiments/synthetic_full.sh $OUT # next calls
# TASKS="selective_copying" (default: both tasks) limits a call to one task.
# Logs, metrics and checkpoints (the latest and the best of each run) go to $OUT/runs.tar.gz.
source scripts/experiments/lib.sh
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.2
[ -n "${RESUME_FROM:-}" ] && resume_runs "$RESUME_FROM"
settings="--config.train.log_every=500 --config.train.keep_checkpoints=1"
run() {  # run MODEL TASK
  train ${2}_$1 $(left) --config configs/synthetic.py:$1,task=$2 $settings
}
tasks=${TASKS:-selective_copying associative_recall}
start_clock
for task in $tasks; do run ms_ssm $task & done
for model in s5 lru; do ( for task in $tasks; do run $model $task; done ) & done
wait
for f in $out/*.log; do grep -v "^W1\|^I1" $f | grep "^==\|resumed\|eval test\|^exit\|Error" ; done
finish $1 --with-checkpoints
