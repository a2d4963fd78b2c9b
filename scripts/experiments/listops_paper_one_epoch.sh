#!/bin/bash
# The paper-size MS-SSM (S4 variant, 20 x 128, N=128 per stream) on generated ListOps for one
# epoch (1,920 steps of 50), on one GPU in one device call (~9.5 minutes), from the repository
# root: the task config with the train.py flags given after OUTDIR. Evaluates at steps 960 and
# 1,920. Logs and metrics go to OUTDIR/runs.tar.gz. The config of that day, which the task
# config has since left for the static mixer, is pinned by these flags:
#   call_d/: RUN_TAG=lr1e-3 bash scripts/experiments/listops_paper_one_epoch.sh OUTDIR \
#              --config.model.layer_config.mixer=linear_input --config.optimizer.lr=1e-3
#   call_e/: RUN_TAG=prenorm bash scripts/experiments/listops_paper_one_epoch.sh OUTDIR \
#              --config.model.layer_config.mixer=linear_input --config.model.prenorm=True
source scripts/experiments/lib.sh
listops_budget="--config.train.num_epochs=1 --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=100 --config.train.eval_every=960 --config.train.checkpoint_every=960 --config.train.log_every=50"
$PY scripts/prepare_data.py --task listops > $out/prepare_listops.log 2>&1
dest=${1:?usage: listops_paper_one_epoch.sh OUTDIR [TRAIN FLAGS ...]}; shift
name=listops_ms_ssm_paper_${RUN_TAG:?set RUN_TAG, a name for the run}
start_clock
train $name $(left) --config configs/listops.py:ms_ssm $listops_budget "$@"
grep -v "^W1\|^I1" $out/$name.log | tail -30
finish $dest --exclude='*/best'
