#!/bin/bash
# The paper-size MS-SSM (S4 variant, 20 x 128, N=128 per stream) on generated ListOps for one
# epoch (1,920 steps of 50), with the task config (pre-norm blocks since the stability runs in
# results/h100/listops_stability/), on one GPU in one device call (~9.5 minutes), from the
# repository root. Evaluates at steps 960 and 1,920. Logs and metrics go to $1/runs.tar.gz.
source results/h100/accuracy_budget/lib.sh
listops_budget="--config.train.num_epochs=1 --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=100 --config.train.eval_every=960 --config.train.checkpoint_every=960 --config.train.log_every=50"
$PY scripts/prepare_data.py --task listops > $out/prepare_listops.log 2>&1
name=listops_ms_ssm_paper_${RUN_TAG:-prenorm}
start_clock
train $name $(left) --config configs/listops.py:ms_ssm $listops_budget
grep -v "^W1\|^I1" $out/$name.log | tail -30
finish $1 --exclude='*/best'
