#!/bin/bash
# Next step after run.sh (call1/) and the one-epoch runs (accuracy_budget/call_d, call_e): does
# the paper-size MS-SSM learn ListOps once its mixer or norm is changed? One device call
# (~9.5 minutes), from the repository root: four 120 s runs of the task config (pre-norm) with
# the softmax mixer, the static mixer, LayerNorm, and gradient clipping at 1; logs every 25
# steps, no evaluation. Compare the loss at steps 300-400 with S5's (1.96 at 300, 1.73 at 400).
# Logs and train CSVs go to $1/logs.tar.gz.
source results/h100/accuracy_budget/lib.sh
common="--config configs/listops.py:ms_ssm --config.train.num_epochs=1 --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=100 --config.train.eval_every=100000 --config.train.checkpoint_every=100 --config.train.log_every=25"
$PY scripts/prepare_data.py --task listops > $out/prepare_listops.log 2>&1
train candidate_softmax_mixer 120 $common --config.model.layer_config.mixer=softmax_input
train candidate_static_mixer 120 $common --config.model.layer_config.mixer=static
train candidate_layernorm 120 $common --config.model.norm=layer
train candidate_clip1 120 $common --config.optimizer.grad_clip_norm=1.0
for r in $W/candidate_*; do
  echo "== $r"; cut -d, -f1,2,4 $r/metrics/train.csv | tr '\n' ' '; echo
  cp $r/metrics/train.csv $out/$(basename $r)_train.csv
done
tar czf $1/logs.tar.gz -C $out .
ls $1
