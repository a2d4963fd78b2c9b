#!/bin/bash
# One epoch of generated ListOps (1,920 steps of 50) for two MS-SSM models with the task config
# (configs/listops.py:ms_ssm, causal, post-norm, static mixer on 2026-11-23; the task
# config has since moved to the ListOps ablations' winner), side by side on one GPU
# in one device call (~9.5 minutes), from the repository root; evaluated at the end of the epoch:
#   bash scripts/experiments/listops_two_sizes_one_epoch.sh OUTDIR
#   listops_ms_ssm_paper  the paper's size: 20 layers x 128, N=128 per stream (5.7M parameters)
#   listops_ms_ssm_small  S5's size (8 layers x 128) with N=16 per stream, for the zoo
# Logs, metrics and the small run's best checkpoint go to $1/runs.tar.gz.
source scripts/experiments/lib.sh
budget="--config configs/listops.py:ms_ssm --config.train.num_epochs=1 --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=100 --config.train.eval_every=1920 --config.train.checkpoint_every=960 --config.train.log_every=100"
$PY scripts/prepare_data.py --task listops > $out/prepare_listops.log 2>&1
start_clock
XLA_PYTHON_CLIENT_MEM_FRACTION=0.7 train listops_ms_ssm_paper $(left) $budget &
XLA_PYTHON_CLIENT_MEM_FRACTION=0.2 train listops_ms_ssm_small $(left) $budget \
  --config.model.num_layers=8 --config.model.layer_config.state_per_stream=16 &
wait
for name in listops_ms_ssm_paper listops_ms_ssm_small; do
  grep -v "^W1\|^I1" $out/$name.log | grep -v "^step" | tail -12
done
finish $1 --exclude='*paper/best'
