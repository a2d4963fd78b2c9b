#!/bin/bash
# Does a smaller learning rate for the mixer's kernel W_E (optimizer.mixer_lr) let the paper's
# input-dependent mixer train at the paper's ListOps size? One epoch of generated ListOps
# (1,920 steps of 50) with configs/listops.py:ms_ssm (post-norm, 20 x 128, N=128) switched to
# mixer=linear_input, once per rate in MIXER_LRS (default "3e-4 1e-3"), side by side on one
# H200 in one device call (~9.5 minutes), evaluated at half and at the end of the epoch. The
# static mixer's run at this budget reached 36.25% (results/h100/accuracy_budget/call_f/). From the
# repository root:
#   CLOCK=530 bash scripts/experiments/listops_mixer_lr.sh $OUT
# Logs and metrics (no checkpoints) go to $OUT/runs.tar.gz.
source scripts/experiments/lib.sh
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.45
budget="--config configs/listops.py:ms_ssm --config.model.layer_config.mixer=linear_input --config.train.num_epochs=1 --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=100 --config.train.eval_every=960 --config.train.checkpoint_every=960 --config.train.log_every=50"
$PY scripts/prepare_data.py --task listops > $out/prepare_listops.log 2>&1
start_clock
for rate in ${MIXER_LRS:-3e-4 1e-3}; do
  train listops_ms_ssm_mixer_lr_$rate $(left) $budget --config.optimizer.mixer_lr=$rate &
done
wait
for f in $out/listops_*.log; do grep -v "^W1\|^I1" $f | grep "^==\|eval test\|^exit\|Error"; done
finish $1 --exclude='*/best'
