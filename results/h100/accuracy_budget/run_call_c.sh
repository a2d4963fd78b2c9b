#!/bin/bash
# Equal-budget Pathfinder-32 runs on one GPU (one device call, ~9 minutes), from the repository
# root: generates the 200,000 images with 14 processes, then trains S5, LRU (one lane) and
# MS-SSM (another) for 1 epoch (2,500 steps of 64) with configs/pathfinder.py otherwise
# unchanged. Packs logs and run directories (best checkpoints, no optimizer state) into
# $1/runs.tar.gz and prints the summary table.
dest=$1; out=/tmp/logs; W=/tmp/wd; mkdir -p $W $out
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
budget="--config.train.num_epochs=1 --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=250 --config.train.eval_every=1250 --config.train.checkpoint_every=1250"
python scripts/prepare_data.py --task pathfinder32 --generation_workers 14 > $out/prepare_pathfinder32.log 2>&1
start=$(date +%s); left() { echo $(( 540 - ($(date +%s) - start) )); }
train() {  # name, deadline_s, args...
  local name=$1 deadline=$2; shift 2
  if [ "$deadline" -lt 30 ]; then echo "skipped $name: out of time" >> $out/skipped.txt; return; fi
  echo "== $name: python train.py $* --workdir $W/$name" > $out/$name.log
  timeout -s TERM $deadline python train.py "$@" --workdir $W/$name >> $out/$name.log 2>&1
  echo "exit $?" >> $out/$name.log
}
( train pathfinder_ms_ssm $(left) --config configs/pathfinder.py:ms_ssm $budget ) &
( for m in s5 lru; do train pathfinder_$m $(left) --config configs/pathfinder.py:$m $budget; done ) &
wait
python scripts/summarize_runs.py $W/* --json $out/summary.json > $out/summary.md 2>&1
cat $out/summary.md
tar czf $dest/runs.tar.gz --exclude='*/checkpoints' -C /tmp logs wd
ls -l $dest
