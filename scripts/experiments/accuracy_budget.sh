#!/bin/bash
# Equal-budget accuracy runs on one GPU (one device call, ~9 minutes), from the repository root,
#   bash scripts/experiments/accuracy_budget.sh OUTDIR
# # ListOps (1 epoch) for MS-SSM at the paper's size and at S5's, S5 and LRU; the shipped time
# series (2,000 steps) for MS-SSM, S5 and LRU. Packs logs and run directories (best checkpoints,
# except the paper-size model's) into $1/runs.tar.gz and prints the summary table.
source scripts/experiments/lib.sh
listops_budget="--config.train.num_epochs=1 --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=100 --config.train.eval_every=960 --config.train.checkpoint_every=960"
small="--config.model.num_layers=8 --config.model.dropout=0.0 --config.model.layer_config.state_per_stream=16 --config.optimizer.weight_decay=0.04"
ts_budget="--config.train.num_steps=2000"
$PY scripts/prepare_data.py --task listops > $out/prepare_listops.log 2>&1
start_clock
( train listops_ms_ssm_paper $(( $(left) - 10 )) --config configs/listops.py:ms_ssm $listops_budget ) &
( for m in s5 lru; do train listops_$m $(left) --config configs/listops.py:$m $listops_budget; done
  train listops_ms_ssm_small $(left) --config configs/listops.py:ms_ssm $listops_budget $small ) &
lane() { for d in "$@"; do for m in ms_ssm s5 lru; do
  train uea_${d}_$m $(left) --config configs/uea.py:$m,dataset=$d $ts_budget; done; done; }
lane ACSF1 JapaneseVowels ItalyPowerDemand &
lane OSULeaf BasicMotions GunPoint &
lane PickupGestureWiimoteZ ArrowHead &
wait
finish $1 --exclude='listops_ms_ssm_paper/best'
