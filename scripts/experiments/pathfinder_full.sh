#!/bin/bash
# Pathfinder-32 (generated) to the target of issue 24: S5 and MS-SSM (configs/pathfinder.py, S5's
# recipe; MS-SSM with the ListOps choices at S5's parameter count) until validation accuracy
# passes $TARGET (default 0.90) or $EPOCHS epochs (default 20: 50,000 steps of 64, cosine over
# them after 1 warmup epoch), evaluated every epoch, side by side on one GPU and continued over
# device calls: KEEP_RUNS=1 on a machine still warm from the previous call, RESUME_FROM=<a
# returned runs.tar.gz's wd/> on a fresh one (the runs' latest and best checkpoints, ~20 MB in
# all, come back with FINAL=1). A run whose best validation has passed $TARGET is not continued.
# From the repository root:
#   CLOCK=540 FINAL=1 bash scripts/experiments/pathfinder_full.sh $OUT
#   KEEP_RUNS=1 CLOCK=540 FINAL=1 bash scripts/experiments/pathfinder_full.sh $OUT
# MODELS picks the models (default "s5 ms_ssm"); EXTRA_FLAGS adds train.py flags to every run.
source scripts/experiments/lib.sh
shopt -s nullglob
[ -n "${RESUME_FROM:-}" ] && resume_runs "$RESUME_FROM"
target=${TARGET:-0.90}
budget="--config.train.num_epochs=${EPOCHS:-20} --config.train.log_every=500 ${EXTRA_FLAGS:-}"
best_validation() {  # summarize_runs.py's best validation accuracy of run $1 (0 before any)
  $PY -c "import pathlib, sys; sys.path.insert(0, 'scripts'); import summarize_runs
run = pathlib.Path(sys.argv[1])
print((run / 'config.json').is_file() and summarize_runs.summarize(run)['best_validation'] or 0)" $1
}
models=()
for model in ${MODELS:-s5 ms_ssm}; do
  best=$(best_validation $W/pathfinder_$model)
  if awk -v best=$best -v target=$target 'BEGIN { exit !(best >= target) }'; then
    echo "pathfinder_$model: best validation $best >= $target, not continued" | tee -a $out/skipped.txt
  else models+=($model); fi
done
start_clock  # $CLOCK counts the generation too (about a minute with 14 processes, once)
if [ ${#models[@]} -gt 0 ]; then
  $PY scripts/prepare_data.py --task pathfinder32 --generation_workers 14 \
    >> $out/prepare_pathfinder32.log 2>&1 || { tail -5 $out/prepare_pathfinder32.log; exit 1; }
fi
watch_gpu
pids=()
for model in "${models[@]}"; do
  # S5's recurrence in the Pallas kernel (1.5x faster ListOps steps on an H100; same outputs).
  fast=; [ $model = s5 ] && fast=--config.model.layer_config.impl=pallas
  train pathfinder_$model $(left) --config configs/pathfinder.py:$model $budget $fast &
  pids+=($!)
done
[ ${#pids[@]} = 0 ] || wait "${pids[@]}"
[ -z "$monitor" ] || kill $monitor
for f in $out/pathfinder_*.log; do grep -v "^W1\|^I1" $f | grep "^==\|resumed\|eval\|^exit\|Error"; done
if [ "${FINAL:-0}" = 1 ]; then finish $1 --with-checkpoints; else finish $1 --exclude='*/best'; fi
