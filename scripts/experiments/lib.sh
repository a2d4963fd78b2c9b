# Shared by the device drivers in this folder; source it from the repository root.
# train NAME DEADLINE_S ARGS...: train.py into $W/NAME, stopped by SIGTERM at the deadline
#   (it then saves a checkpoint), log in $out/NAME.log. $W is $RUNS_ROOT/wd and $out
#   $RUNS_ROOT/logs; RUNS_ROOT defaults to /tmp (a private folder keeps a shared machine's
#   drivers apart).
# start_clock; left: seconds left of the call's $CLOCK s (default 540) for training.
# finish DEST [--with-checkpoints] [TAR OPTIONS]: the summary table, and logs plus run
#   directories (without checkpoints unless asked; asked, each run's latest periodic checkpoint
#   and its best/, which is all a resumed run needs) packed into DEST/runs.tar.gz,
#   split into DEST/runs.tar.gz.part-aa, -ab, ... (join with cat) when over 15 MiB, the most
#   the device returns per file; it returned only the first 4 parts (60 MiB) in all, so keep
#   what a call writes under that.
# Each call starts with an empty log folder. A machine still warm from the previous call keeps
# its /tmp: KEEP_RUNS=1 continues the run directories found in $W (no transfer), otherwise $W
# starts empty too. resume_runs DIR adds the run directories of an earlier call's returned
# runs.tar.gz (its wd/) that $W does not hold yet; a run found in $W is newer and wins.
runs_root=${RUNS_ROOT:-/tmp}; out=$runs_root/logs; W=$runs_root/wd
rm -rf $out; [ "${KEEP_RUNS:-0}" = 1 ] || rm -rf $W; mkdir -p $W $out
resume_runs() { local d; for d in "$1"/*/; do [ -e $W/$(basename $d) ] || cp -r $d $W/; done; }
PY=${PYTHON:-python3}
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
# Compiled steps persist in /tmp, so a warm machine's next call skips their compile (~40 s).
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/jax_compilation_cache}
start_clock() { start=$(date +%s); }
# watch_gpu: GPU utilization and memory once a minute into $out/gpu_usage.log, in the background
#   ($monitor is its pid; empty where there is no nvidia-smi, e.g. a TOY run on a CPU).
watch_gpu() {
  monitor=
  command -v nvidia-smi > /dev/null || return 0
  ( while sleep 60; do
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
  done ) > $out/gpu_usage.log 2>&1 &
  monitor=$!
}
# prepare_listops WORKERS [FIELD=VALUE ...]: ListOps with those data-config fields, generated
#   once by WORKERS processes (log in $out/prepare_listops.log; a failure ends the driver), and
#   data_flags set to the matching --config.data.FIELD=VALUE flags of train.py.
prepare_listops() {
  local workers=$1 field prepare_flags; shift
  data_flags=() prepare_flags=(--generation_workers=$workers)
  for field in "$@"; do data_flags+=(--config.data.$field); prepare_flags+=(--$field); done
  $PY scripts/prepare_data.py --task listops "${prepare_flags[@]}" > $out/prepare_listops.log 2>&1 \
    || { tail -5 $out/prepare_listops.log; exit 1; }
}
left() { echo $(( ${CLOCK:-540} - ($(date +%s) - start) )); }
train() {
  local name=$1 deadline=$2; shift 2
  if [ "$deadline" -lt 30 ]; then echo "skipped $name: out of time" >> $out/skipped.txt; return; fi
  echo "== $name: python train.py $* --workdir $W/$name" > $out/$name.log
  timeout -s TERM $deadline $PY train.py "$@" --workdir $W/$name >> $out/$name.log 2>&1
  echo "exit $?" >> $out/$name.log
}
older_checkpoints() {  # tar excludes for each run's periodic checkpoints but the latest
  local d step
  for d in $W/*/checkpoints; do
    [ -d $d ] || continue
    for step in $(ls $d | grep -E '^[0-9]+$' | sort -n | head -n -1); do
      echo "--exclude=wd/$(basename $(dirname $d))/checkpoints/$step"
    done
  done
}
finish() {
  local dest=$1; shift
  mkdir -p $dest
  $PY scripts/summarize_runs.py $W/* --json $out/summary.json > $out/summary.md 2>&1
  cat $out/summary.md
  local excludes=(--exclude='*/checkpoints')
  [ "${1:-}" = "--with-checkpoints" ] && { excludes=($(older_checkpoints)); shift; }
  tar czf $dest/runs.tar.gz "${excludes[@]}" "$@" -C $runs_root logs wd
  if [ $(stat -c %s $dest/runs.tar.gz) -gt $((15 * 1024 * 1024)) ]; then
    split -b 15M $dest/runs.tar.gz $dest/runs.tar.gz.part- && rm $dest/runs.tar.gz
  fi
  ls -l $dest
}
