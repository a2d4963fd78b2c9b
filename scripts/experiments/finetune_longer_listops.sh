#!/bin/bash
# Issue 24's fine-tune demo: a released ListOps model (expressions of 501-1,999 tokens) trained
# on longer ListOps (2,000-3,999 tokens, padded to 4,096; 20,000 generated training examples,
# 400 steps of 50 an epoch) against the same model trained from scratch: the same config,
# steps ($STEPS, default 1,200: 3 epochs; 100 warmup steps, then cosine), seed and data, side
# by side on one GPU; the only difference is `--config.init_from=$RELEASE`.
# $RELEASE (default ms_ssm_listops_4epoch) and $CONFIG (default its config,
# configs/listops.py:ms_ssm,size=s5) go together: the zoo's manifest names each release's config.
# From the repository root, on a device machine (~9.5 minutes a call; KEEP_RUNS=1 continues):
#   CLOCK=540 bash scripts/experiments/finetune_longer_listops.sh $OUT
# TOY=1 runs the same steps at toy sizes (a CPU dry run of the driver, not a measurement):
#   TOY=1 CLOCK=300 RUNS_ROOT=/tmp/ft PYTHON=.venv/bin/python RELEASE=<a toy run's workdir> \
#     CONFIG=configs/listops.py:s5 bash scripts/experiments/finetune_longer_listops.sh /tmp/ft/out
# Writes $OUT/runs.tar.gz (logs and run directories, no checkpoints) and the summary table.
set -u
dest=${1:?usage: [RELEASE=... CONFIG=...] bash scripts/experiments/finetune_longer_listops.sh OUT}
source scripts/experiments/lib.sh
mkdir -p $dest
release=${RELEASE:-ms_ssm_listops_4epoch}
config=${CONFIG:-configs/listops.py:ms_ssm,size=s5}
data="max_length=4096 min_tree_length=2000 max_tree_length=3999 num_train=20000"
data+=" num_validation=2000 num_test=2000 data_dir=$runs_root/listops_long"
steps=${STEPS:-1200} workers=12 size="--config.train.log_every=100"
if [ "${TOY:-0}" = 1 ]; then
  data="max_length=256 min_tree_length=100 max_tree_length=250 num_train=200"
  data+=" num_validation=40 num_test=40 data_dir=$runs_root/listops_long"
  steps=${STEPS:-6} workers=1
  size="--config.model.num_layers=2 --config.train.global_batch_size=4"
  size+=" --config.train.eval_batch_size=20 --config.train.log_every=1"
fi
budget="--config.train.num_epochs=0 --config.train.num_steps=$steps"
budget+=" --config.train.eval_every=$steps --config.train.checkpoint_every=$((steps / 4))"
budget+=" --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=$((steps / 12))"
start_clock  # on a fresh machine generating the data counts too
prepare_listops $workers $data
watch_gpu
common=(--config $config "${data_flags[@]}" $size $budget)
train finetune $(left) "${common[@]}" --config.init_from=$release &
p1=$!
train scratch $(left) "${common[@]}" &
wait $p1 $!
[ -z "$monitor" ] || kill $monitor
for f in $out/finetune.log $out/scratch.log; do
  grep -v "^W1\|^I1" $f | grep "^==\|eval test\|^exit\|Error"
done
finish $dest --exclude='*/best'
