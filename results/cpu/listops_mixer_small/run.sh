#!/bin/bash
# A CPU-sized copy of the ListOps mixer instability (README, "ListOps"): the task's MS-SSM
# (20 post-norm layers, S=3, K=4) at width 32 with N=16 per stream, on a small generated ListOps
# (sequences up to 256 tokens, 20,000 training examples), batch 32, 600 steps (lr 3e-3 after
# 100 warmup steps, cosine), once with the paper's input-dependent mixer and once with the
# static one. Each run takes about 20 minutes on 2 CPU cores. From the repository root:
#   bash results/cpu/listops_mixer_small/run.sh WORKDIR
# writes WORKDIR/{linear_input,static} and copies their train.csv and eval.csv next to this
# script. The stored linear_input_train.csv ends at step 451 (that run was stopped by a time
# limit, so it has no eval.csv).
set -e
out=${1:?usage: run.sh WORKDIR}
small="--config configs/listops.py:ms_ssm --config.data.max_length=256 --config.data.min_tree_length=50 --config.data.max_tree_length=250 --config.data.num_train=20000 --config.data.num_validation=500 --config.data.num_test=500 --config.data.data_dir=$out/data --config.model.d_model=32 --config.model.layer_config.state_per_stream=16 --config.train.global_batch_size=32 --config.train.num_epochs=0 --config.train.num_steps=600 --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=100 --config.train.log_every=25 --config.train.eval_every=600 --config.train.checkpoint_every=600"
here=$(dirname "$0")
for mixer in linear_input static; do
  .venv/bin/python train.py $small --config.model.layer_config.mixer=$mixer --workdir $out/$mixer
  cp $out/$mixer/metrics/train.csv $here/${mixer}_train.csv
  cp $out/$mixer/metrics/eval.csv $here/${mixer}_eval.csv
done
