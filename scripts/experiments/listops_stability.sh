#!/bin/bash
# Why does the paper-size MS-SSM's gradient norm explode on ListOps (results/h100/accuracy_budget/
# call_a/: 0.39 at step 100, 2.6e4 at 200, 2.1e9 at 400) while a copy trained on short trees on
# the CPU stays near 1-2? One device call (~9.5 minutes), from the repository root: four 120 s
# runs of the failing command (1-epoch schedule, 100 warmup steps, logs every 25 steps,
# checkpoints every 100, no evaluation): as is, pre-norm blocks, lr 1e-3, and full-precision
# float32 matmuls (no TF32); then scripts/inspect_run.py on the first run's latest checkpoint.
# "As is" is the task config of that day, post-norm with the input-dependent mixer, which the
# mixer flag in $common pins (the task config has since moved to the static mixer). Logs go to
# OUTDIR/logs.tar.gz:
#   bash scripts/experiments/listops_stability.sh OUTDIR
source scripts/experiments/lib.sh
common="--config configs/listops.py:ms_ssm --config.model.layer_config.mixer=linear_input --config.train.num_epochs=1 --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=100 --config.train.eval_every=100000 --config.train.checkpoint_every=100 --config.train.log_every=25"
$PY scripts/prepare_data.py --task listops > $out/prepare_listops.log 2>&1
train stability_as_is 120 $common
train stability_prenorm 120 $common --config.model.prenorm=True
train stability_lr1e-3 120 $common --config.optimizer.lr=1e-3
JAX_DEFAULT_MATMUL_PRECISION=highest train stability_fp32_matmul 120 $common
timeout 75 $PY scripts/inspect_run.py --workdir $W/stability_as_is --checkpoint latest \
  > $out/inspect_as_is.md 2>&1
for r in $W/stability_*; do
  echo "== $r"; cut -d, -f1,2,4 $r/metrics/train.csv | tr '\n' ' '; echo
  cp $r/metrics/train.csv $out/$(basename $r)_train.csv
done
grep -v "^W1\|^I1" $out/inspect_as_is.md | tail -60
tar czf $1/logs.tar.gz -C $out .
ls $1
