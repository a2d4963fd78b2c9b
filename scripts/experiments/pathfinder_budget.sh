#!/bin/bash
# Pathfinder-32 (generated) for MS-SSM, S5 and LRU at an equal budget of $EPOCHS epochs (default
# 3 = 7,500 steps of 64; configs/pathfinder.py otherwise unchanged, warmup half an epoch instead
# of 1), in three lanes that share one GPU, continued over consecutive device calls (2 epochs
# take two calls of CLOCK=480, 3 epochs three). MS-SSM's checkpoint with its optimizer state
# (about 54 MB) is too large to carry to the device and back, so the runs continue on a machine
# that stays warm between calls: KEEP_RUNS=1 keeps /tmp/wd and the generated images of the
# previous call (make the next call within the device's idle window).
# A machine that was handed back in between has neither; the runs then start over. From the
# repository root, first call, then each next one:
#   EPOCHS=2 CLOCK=480 bash scripts/experiments/pathfinder_budget.sh $OUT
#   EPOCHS=2 KEEP_RUNS=1 CLOCK=480 bash scripts/experiments/pathfinder_budget.sh $OUT
# EXTRA_FLAGS adds train.py flags to every run. Each call returns logs, metrics and the best
# checkpoints (variables only, about 28 MB) in $OUT/runs.tar.gz(.part-*).
source scripts/experiments/lib.sh
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.3
budget="--config.train.num_epochs=${EPOCHS:-3} --config.optimizer.warmup_epochs=0.5 --config.train.log_every=250 --config.train.keep_checkpoints=1 ${EXTRA_FLAGS:-}"
start_clock  # $CLOCK counts the generation too (about a minute with 14 processes, once)
$PY scripts/prepare_data.py --task pathfinder32 --generation_workers 14 \
  >> $out/prepare_pathfinder32.log 2>&1
for model in ms_ssm s5 lru; do
  train pathfinder_$model $(left) --config configs/pathfinder.py:$model $budget &
done
wait
for f in $out/pathfinder_*.log; do grep -v "^W1\|^I1" $f | grep "^==\|resumed\|eval test\|^exit\|Error"; done
finish $1
