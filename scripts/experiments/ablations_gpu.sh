#!/bin/bash
# Issue 25's ablation table: every row of configs/ablations.py that applies to ListOps (the
# paper's Table 5 ablations on the S4 variant at S5's size with the paper's per-channel mixer,
# and our S and K sweeps; `ablations.task_rows("listops")`) on generated ListOps, each for
# $STEPS steps of 50 (default 1,920, one epoch: $WARMUP = 100 warmup steps, then cosine to zero)
# from seed $SEED (default 0), evaluated once at the end on 2,000 validation and 2,000 test
# examples. Rows run in table order, $LANES at once on one GPU (default 4); when a row finishes
# the next unfinished one starts, while $MIN_START s (default 150: compile and a first stretch)
# are left of the call's $CLOCK s. A lane stopped at the deadline saves a checkpoint, so the same
# command continues the rows until every one is done. From the repository root, on a device
# machine (a call is ~9.5 minutes):
#   CLOCK=540 bash scripts/experiments/ablations_gpu.sh $OUT               # the first call
#   KEEP_RUNS=1 CLOCK=540 bash scripts/experiments/ablations_gpu.sh $OUT   # on the warm machine
#   RESUME_FROM=<a returned runs.tar.gz's wd/> CLOCK=540 bash ...          # on a fresh machine
# ROWS="<row> ..." runs those rows (default: every ListOps row). FINAL=1 also returns the latest
# checkpoint of every unfinished row, which RESUME_FROM needs (~6 MB a row).
# Writes $OUT/runs.tar.gz (logs and run directories), $OUT/summary.json
# (scripts/summarize_runs.py) and $OUT/ablation_table.md (scripts/ablation_table.py: ours
# beside the paper's numbers).
# TOY=1 runs the same steps at toy sizes (a CPU dry run of the driver, not a measurement):
#   TOY=1 CLOCK=200 RUNS_ROOT=/tmp/abl PYTHON=.venv/bin/python \
#     bash scripts/experiments/ablations_gpu.sh /tmp/abl/out
set -u
dest=${1:?usage: [ROWS="full conv1d ..."] bash scripts/experiments/ablations_gpu.sh OUT}
source scripts/experiments/lib.sh
shopt -s nullglob
mkdir -p $dest
[ -n "${RESUME_FROM:-}" ] && resume_runs "$RESUME_FROM"
all_rows=$($PY -c "from configs import ablations; print(*ablations.task_rows('listops'))")
rows=${ROWS:-$all_rows}
for row in $rows; do
  [[ " $all_rows " == *" $row "* ]] || { echo "unknown row $row; known: $all_rows"; exit 2; }
done

seed=${SEED:-0}
if [ "${TOY:-0}" = 1 ]; then
  steps=${STEPS:-6} warmup=${WARMUP:-1} lanes=${LANES:-4} min_start=${MIN_START:-30}
  data="num_train=200 num_validation=40 num_test=40 max_length=128 min_tree_length=20"
  data+=" max_tree_length=120 data_dir=$runs_root/data"
  workers=1
  size="--config.model.num_layers=2 --config.model.d_model=16 --config.train.global_batch_size=4"
  size+=" --config.train.eval_batch_size=20 --config.train.log_every=1"
  size+=" --config.train.checkpoint_every=2"
else
  steps=${STEPS:-1920} warmup=${WARMUP:-100} lanes=${LANES:-4} min_start=${MIN_START:-150}
  data=""  # LRA's sizes, in tfds's default data_dir
  workers=12  # processes that generate the data (which do not depend on their number)
  size="--config.train.log_every=80 --config.train.checkpoint_every=240"
fi
budget="--config.train.num_epochs=0 --config.train.num_steps=$steps"
budget+=" --config.train.eval_every=$steps"
budget+=" --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=$warmup"
budget+=" --config.train.keep_checkpoints=1 --config.train.seed=$seed"
# The call's clock starts before the data: on a fresh machine generating them counts too.
start_clock
# Generated once before the lanes start, so that they do not build it at the same time.
prepare_listops $workers $data

todo=()
for row in $rows; do [ -f $W/ablation_$row/results.json ] || todo+=($row); done
echo "rows to train: ${todo[*]:-none} ($steps steps each, $lanes at once, seed $seed)"
if command -v nvidia-smi > /dev/null; then nvidia-smi -L > $out/device.txt; fi
watch_gpu
pids=()
running() {  # lanes still training
  local n=0 pid
  for pid in "${pids[@]}"; do kill -0 $pid 2> /dev/null && n=$((n + 1)); done
  echo $n
}
for row in "${todo[@]}"; do
  while [ $(running) -ge $lanes ]; do sleep 5; done
  if [ $(left) -lt $min_start ]; then
    echo "not started: $row ($(left) s left, MIN_START=$min_start)" | tee -a $out/skipped.txt
    continue
  fi
  train ablation_$row $(left) --config configs/ablations.py:$row "${data_flags[@]}" $size $budget &
  pids+=($!)
done
[ ${#pids[@]} = 0 ] || wait "${pids[@]}"  # (a bare wait would wait for the monitor too)
[ -z "$monitor" ] || kill $monitor
for f in $out/ablation_*.log; do grep -v "^W1\|^I1" $f | grep "^==\|eval test\|^exit\|Error"; done

if [ "${FINAL:-0}" = 1 ]; then  # checkpoints of the unfinished rows only
  finished=()
  for d in $W/ablation_*/; do
    [ -f $d/results.json ] && finished+=(--exclude="wd/$(basename $d)/checkpoints")
  done
  finish $dest --with-checkpoints --exclude='*/best' "${finished[@]}"
else finish $dest --exclude='*/best'; fi
cp $out/summary.json $dest/
$PY scripts/ablation_table.py $out/summary.json > $dest/ablation_table.md
cat $dest/ablation_table.md
