#!/bin/bash
# Equal-budget Pathfinder-32 runs on one GPU in one device call (~9.5 minutes), from the
# repository root: generates the 200,000 images with 14 processes, then trains for half an
# epoch (1,250 steps of 64) with configs/pathfinder.py otherwise unchanged, in three lanes that
# share the GPU: MS-SSM as configured (input-dependent mixer), MS-SSM with the static mixer
# (the fix that made ListOps train, results/h100/listops_stability/call2/), and S5 then LRU.
# Evaluates at step 1,250. Logs, metrics and best checkpoints go to OUTDIR/runs.tar.gz:
#   bash scripts/experiments/pathfinder_half_epoch.sh OUTDIR
source scripts/experiments/lib.sh
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.3
budget="--config.train.num_epochs=0.5 --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=250 --config.train.eval_every=1250 --config.train.checkpoint_every=1250 --config.train.log_every=125"
start_clock  # $CLOCK counts the generation too
$PY scripts/prepare_data.py --task pathfinder32 --generation_workers 14 \
  > $out/prepare_pathfinder32.log 2>&1
train pathfinder_ms_ssm $(left) --config configs/pathfinder.py:ms_ssm $budget &
train pathfinder_ms_ssm_static_mixer $(left) --config configs/pathfinder.py:ms_ssm $budget \
  --config.model.layer_config.mixer=static &
( for m in s5 lru; do train pathfinder_$m $(left) --config configs/pathfinder.py:$m $budget; done ) &
wait
tail -2 $out/prepare_pathfinder32.log
for f in $out/pathfinder_*.log; do grep -v "^W1\|^I1" $f | grep "^==\|eval test\|^exit\|Error" ; done
finish $1 --exclude="*/best"
