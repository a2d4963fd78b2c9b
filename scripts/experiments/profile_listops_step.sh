#!/bin/bash
# Issue 26: where the ListOps train step's device time goes, MS-SSM at S5's size
# (configs/listops.py:ms_ssm,size=s5) against S5 (configs/listops.py:s5), one after the other
# on one GPU: train.py for 12 steps of the generated data with a jax.profiler trace of steps
# 2-11 (`config.train.profile_steps=10`), then scripts/profile_top_ops.py's tables of the device
# ops by time and by kind. From the repository root, on a device machine (~3 minutes):
#   bash scripts/experiments/profile_listops_step.sh $OUT
# MODELS="<configs/listops.py arg> ..." picks the models (default "ms_ssm,size=s5 s5").
# Writes $OUT/profile_<model>.md (the tables) and .json (every op's time); the traces stay in
# $RUNS_ROOT/wd/<model>/profile (too large to return).
set -u
dest=${1:?usage: [MODELS="ms_ssm,size=s5 s5"] bash scripts/experiments/profile_listops_step.sh OUT}
source scripts/experiments/lib.sh
mkdir -p $dest
prepare_listops 12
for model in ${MODELS:-ms_ssm,size=s5 s5}; do
  name=$(echo $model | tr ',=' '__')
  $PY train.py --config configs/listops.py:$model --config.train.num_epochs=0 \
    --config.train.num_steps=12 --config.train.eval_every=12 --config.train.profile_steps=10 \
    --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=1 \
    --config.train.log_every=1 --workdir $W/$name > $out/$name.log 2>&1 \
    || { tail -5 $out/$name.log; continue; }
  grep "profiled\|^step 1[12]/" $out/$name.log
  $PY scripts/profile_top_ops.py $W/$name/profile --steps 10 --json $dest/profile_$name.json \
    > $dest/profile_$name.md 2>&1
  head -40 $dest/profile_$name.md
done
