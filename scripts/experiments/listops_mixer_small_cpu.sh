#!/bin/bash
# A CPU-sized copy of the ListOps mixer instability (README, "ListOps"): the task's MS-SSM
# (20 post-norm layers, S=3, K=4) at width 32 with N=16 per stream, on a small generated ListOps
# (sequences up to 256 tokens, 20,000 training examples), batch 32, 600 steps (lr 3e-3 after
# 100 warmup steps, cosine), three times: the paper's input-dependent mixer (`linear_input`),
# the same with its kernel W_E at a 10x smaller learning rate (`optimizer.mixer_lr=3e-4`), and
# the static mixer. Each run takes about 20 minutes on 2 CPU cores. From the repository root:
#   bash scripts/experiments/listops_mixer_small_cpu.sh WORKDIR [RUN ...]
# (RUN: a name in `flags` below; default the three above) writes WORKDIR/<run> and copies its
# train.csv and eval.csv to $DEST (default results/cpu/listops_mixer_small). The stored
# linear_input_train.csv ends at step 451 (that run was stopped by a time limit, so it has no
# eval.csv). The mixer_lr runs are from 2026-12-04 (linear_input_mixer_lr_3e-4 with a local
# patch that is now `optimizer.mixer_lr`, identical at the steps compared), the others from
# 2026-11-23.
set -e
out=${1:?usage: listops_mixer_small_cpu.sh WORKDIR [RUN ...]}
# The ListOps MS-SSM as it was when these runs were recorded (causal, post-norm multires block,
# dropout 0.1, weight decay 0.03): configs/listops.py:ms_ssm has moved on since.
base="--config.model.layer_config.bidirectional=False --config.model.block=multires --config.model.prenorm=False --config.model.activation=glu --config.model.batchnorm_momentum=0.9 --config.model.dropout=0.1 --config.optimizer.weight_decay=0.03"
small="--config configs/listops.py:ms_ssm $base --config.data.max_length=256 --config.data.min_tree_length=50 --config.data.max_tree_length=250 --config.data.num_train=20000 --config.data.num_validation=500 --config.data.num_test=500 --config.data.data_dir=$out/data --config.model.d_model=32 --config.model.layer_config.state_per_stream=16 --config.train.global_batch_size=32 --config.train.num_epochs=0 --config.train.num_steps=600 --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=100 --config.train.log_every=25 --config.train.eval_every=600 --config.train.checkpoint_every=600"
dest=${DEST:-results/cpu/listops_mixer_small}
# The recorded linear_input* runs used the dense mixer, now `linear_input_dense`.
declare -A flags=(
  [linear_input]="--config.model.layer_config.mixer=linear_input_dense"
  [linear_input_mixer_lr_3e-4]="--config.model.layer_config.mixer=linear_input_dense --config.optimizer.mixer_lr=3e-4"
  [linear_input_mixer_lr_3e-4_seed1]="--config.model.layer_config.mixer=linear_input_dense --config.optimizer.mixer_lr=3e-4 --config.train.seed=1"
  [linear_input_mixer_lr_1e-3]="--config.model.layer_config.mixer=linear_input_dense --config.optimizer.mixer_lr=1e-3"
  [static]="--config.model.layer_config.mixer=static"
  # The paper's per-channel mixer at a constant 3e-3 after warmup (the paper-size schedule
  # holds ~3e-3 through its first epoch; a cosine over 600 steps would halve it by step 300).
  [per_channel_constant_lr]="--config.model.layer_config.mixer=linear_input --config.optimizer.schedule=constant"
)
runs=${*:2}
for run in ${runs:-linear_input linear_input_mixer_lr_3e-4 static}; do
  .venv/bin/python train.py $small ${flags[$run]:?unknown run $run} --workdir $out/$run
  cp $out/$run/metrics/train.csv $dest/${run}_train.csv
  cp $out/$run/metrics/eval.csv $dest/${run}_eval.csv
done
