#!/bin/bash
# Equal-budget runs of the synthetic memory tasks (configs/synthetic.py) on one GPU in one device
# call: associative recall (length 512) and selective copying (length 1024) for MS-SSM (S4 and
# S6 variants), S5 and LRU, each 4,000 steps of 64 (the config's 20,000 cut to fit the call;
# warmup 400 instead of 1,000), otherwise unchanged. Four lanes share the GPU; a run still going
# at the deadline is stopped and checkpointed (resumable). From the repository root:
#   CLOCK=540 bash scripts/experiments/synthetic_budget.sh $OUT
# Logs, metrics and checkpoints (the latest of each run) go to $OUT/runs.tar.gz(.part-*).
# Its one call so far (results/h200/synthetic_budget/call_a/, 2026-12-04) kept 3 checkpoints
# per run: 240 MB in 16 parts, of which the device returned the first 4 (60 MB: every log, the
# summary and the complete selective_copying_ms_ssm run, which is released); hence
# keep_checkpoints=1 now.
source scripts/experiments/lib.sh
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.2
budget="--config.train.num_steps=4000 --config.optimizer.warmup_steps=400 --config.train.eval_every=1000 --config.train.checkpoint_every=1000 --config.train.log_every=250 --config.train.keep_checkpoints=1"
run() {  # run MODEL TASK
  train ${2}_$1 $(left) --config configs/synthetic.py:$1,task=$2 $budget
}
start_clock
run ms_ssm_s6 associative_recall &
run ms_ssm_s6 selective_copying &
( run ms_ssm associative_recall; run ms_ssm selective_copying ) &
( for m in s5 lru; do for t in associative_recall selective_copying; do run $m $t; done; done ) &
wait
for f in $out/*.log; do grep -v "^W1\|^I1" $f | grep "^==\|eval test\|^exit\|Error" ; done
finish $1 --with-checkpoints
