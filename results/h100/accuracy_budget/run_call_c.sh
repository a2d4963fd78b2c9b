#!/bin/bash
# Equal-budget Pathfinder-32 runs on one GPU (one device call, ~9 minutes), from the repository
# root: generates the 200,000 images with 14 processes, then trains S5, LRU (one lane) and
# MS-SSM (another) for 1 epoch (2,500 steps of 64) with configs/pathfinder.py otherwise
# unchanged. Packs logs and run directories into $1/runs.tar.gz, prints the summary table.
source results/h100/accuracy_budget/lib.sh
budget="--config.train.num_epochs=1 --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=250 --config.train.eval_every=1250 --config.train.checkpoint_every=1250"
$PY scripts/prepare_data.py --task pathfinder32 --generation_workers 14 \
  > $out/prepare_pathfinder32.log 2>&1
start_clock
( train pathfinder_ms_ssm $(left) --config configs/pathfinder.py:ms_ssm $budget ) &
( for m in s5 lru; do train pathfinder_$m $(left) --config configs/pathfinder.py:$m $budget; done ) &
wait
finish $1
