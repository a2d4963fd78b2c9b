#!/bin/bash
# Issue 26's speed measurements, before and after a change, in one device call on one GPU:
# bench_layers (the MS-SSM layer's parts, and whole layers against S5 and S4D) and bench_train
# (the ListOps train step, MS-SSM at S5's size against S5), each run at an older commit
# ($BEFORE, checked out with `git worktree` into /tmp/before) and at the current checkout,
# back to back, so that each pair shares the GPU, its clocks and the JAX install. Both sides
# run today's bench_layers.py and bench_common.py (copied into the old tree: one harness, two
# packages); bench_train.py is each tree's own. Pairs run in order of importance; a side is
# skipped when the call's clock ($CLOCK s, default 520) cannot hold its budget. From the
# repository root, on a device machine (at most ~9 minutes):
#   BEFORE=5f6404a bash scripts/experiments/speed_before_after.sh $OUT   # the band-wise conv path
# Writes $OUT/<before|after>/bench_<section>.json and bench_train_<model>.json (one per train
# pair), logs in $OUT/logs, and $OUT/compare.md: every timed column of both sides and the
# ratio after / before.
# ONLY="<name> ..." runs those pairs alone (names: parts, train_ms_ssm, train_s5, layers).
# TOY=1 runs the same steps at toy sizes (a CPU dry run of the driver, not a measurement);
# BEFORE_TREE moves the old checkout from /tmp/before. Like every driver here it sources lib.sh,
# which empties $RUNS_ROOT/logs and $RUNS_ROOT/wd (RUNS_ROOT defaults to /tmp): mind that on a
# shared machine.
set -u
export CLOCK=${CLOCK:-520}
source scripts/experiments/lib.sh
dest=${1:?usage: BEFORE=<commit> bash scripts/experiments/speed_before_after.sh OUT}
: "${BEFORE:?set BEFORE to the commit to compare against, e.g. BEFORE=5f6404a}"
mkdir -p $dest/logs
if [ -n "${BEFORE_EXPORT:-}" ]; then
  # The device's copy of the checkout has no .git: export the old tree here first,
  #   mkdir -p .before && git archive $BEFORE ms_ssm_jax configs scripts train.py | tar -x -C .before
  # and carry it (.before is ignored); the commit names are the ones given.
  before_tree=$BEFORE_EXPORT
  [ -d $before_tree/ms_ssm_jax ] || { echo "BEFORE_EXPORT=$before_tree holds no tree"; exit 2; }
  echo "before: $BEFORE (exported into $before_tree)" | tee $dest/commits.txt
  echo "after:  ${AFTER:-the current checkout}" | tee -a $dest/commits.txt
else
  before_tree=${BEFORE_TREE:-/tmp/before}
  git worktree remove --force $before_tree > /dev/null 2>&1; rm -rf $before_tree
  git worktree prune
  git worktree add --detach $before_tree "$BEFORE" > $dest/logs/worktree.log 2>&1 \
    || { cat $dest/logs/worktree.log; exit 2; }
  echo "before: $(git -C $before_tree log -1 --format='%h %s')" | tee $dest/commits.txt
  echo "after:  $(git log -1 --format='%h %s')$(git diff --quiet HEAD || echo ' (+ uncommitted changes)')" \
    | tee -a $dest/commits.txt
fi
cp scripts/bench_layers.py scripts/bench_common.py $before_tree/scripts/

# The ListOps MS-SSM at S5's size with the ablation's winning block, pinned field by field so
# that both commits build the same model (configs/listops.py gained `size=s5` on 2026-12-06).
MS_SSM_AT_S5_SIZE="--set model.num_layers=8 --set model.layer_config.state_per_stream=16 --set model.layer_config.bidirectional=True --set model.layer_config.mixer=static --set model.block=s5 --set model.prenorm=True --set model.activation=half_glu2 --set model.batchnorm_momentum=0.95 --set model.dropout=0.0"
# name|budget_s|script and arguments (the same at both commits).
if [ "${TOY:-0}" = 1 ]; then
  pairs=(
    "parts|120|scripts/bench_layers.py --section parts --lengths 256 --tokens 512 --repeats 2 --only s5 x3 streams, static mixer"
    "layers|120|scripts/bench_layers.py --section layers --lengths 256 --tokens 512 --repeats 2 --only =s5,s4d (real), conv"
    "train_ms_ssm|240|scripts/bench_train.py --output_name bench_train_ms_ssm --configs configs/listops.py:ms_ssm --steps 2 $MS_SSM_AT_S5_SIZE --set train.global_batch_size=2 --set model.num_layers=1"
  )
else
  pairs=(
    "parts|110|scripts/bench_layers.py --section parts --lengths 4096 --tokens 65536 --repeats 20 --only s5 x6"
    "train_ms_ssm|90|scripts/bench_train.py --output_name bench_train_ms_ssm --configs configs/listops.py:ms_ssm --steps 20 $MS_SSM_AT_S5_SIZE"
    "train_s5|60|scripts/bench_train.py --output_name bench_train_s5 --configs configs/listops.py:s5 --steps 20"
    "layers|90|scripts/bench_layers.py --section layers --lengths 4096 --tokens 65536 --repeats 20 --only =s5,s4d (real), conv,ms_ssm s5 x6 streams, static mixer,ms_ssm s4d_real x6 streams, conv"
  )
fi

start_clock
for pair in "${pairs[@]}"; do
  IFS='|' read -r name budget command <<< "$pair"
  [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $name "* ]] || continue
  # The --only filter holds spaces: it is the rest of the line after --only.
  args=(${command%% --only *})
  [[ $command == *" --only "* ]] && args+=(--only "${command#* --only }")
  for side in before after; do
    tree=$PWD; [ $side = before ] && tree=$before_tree
    if [ $(left) -lt $budget ]; then
      echo "skipped $name ($side): $(left) s left, budget $budget s" | tee -a $dest/logs/skipped.txt
      continue
    fi
    echo "== $name $side: $PY ${args[*]}" | tee $dest/logs/${name}_$side.log
    (cd $tree && BENCH_RESULTS_DIR=$dest/$side timeout $budget $PY "${args[@]}") \
      >> $dest/logs/${name}_$side.log 2>&1
    echo "exit $? after $(( CLOCK - $(left) )) s" | tee -a $dest/logs/${name}_$side.log
  done
done

$PY - "$dest" > $dest/compare.md 2>&1 <<'EOF'
"""Rows of both sides matched on their non-timed columns; timed columns with after / before."""
import json, os, sys

dest = sys.argv[1]
timed = ("_ms", "_GFLOP", "_traffic_GB", "_temp_GB", "_peak_GB", "step_ms")
for name in sorted(os.listdir(os.path.join(dest, "after")) if os.path.isdir(
    os.path.join(dest, "after")) else []):
  sides = {}
  for side in ("before", "after"):
    path = os.path.join(dest, side, name)
    sides[side] = json.load(open(path))["rows"] if os.path.exists(path) else []
  print(f"## {name}\n")
  key = lambda row: tuple((k, str(v)) for k, v in row.items()
                          if not k.endswith(timed) and k not in ("examples/s", "first_step_s",
                                                                 "tokens/s (fwd+bwd)",
                                                                 "loss_finite"))
  before = {key(row): row for row in sides["before"]}
  print("| row | column | before | after | after / before |\n|---|---|---|---|---|")
  for row in sides["after"]:
    old = before.get(key(row), {})
    label = ", ".join(str(v) for _, v in key(row))
    for column, value in row.items():
      if column.endswith(timed):
        prev = old.get(column)
        ratio = (f"{value / prev:.2f}" if isinstance(value, float) and isinstance(prev, float)
                 and prev else "")
        fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
        print(f"| {label} | {column} | {fmt(prev) if prev is not None else ''} | {fmt(value)} "
              f"| {ratio} |")
  print()
EOF
cat $dest/compare.md
[ -n "${BEFORE_EXPORT:-}" ] || git worktree remove --force $before_tree > /dev/null 2>&1
ls -l $dest $dest/before $dest/after 2> /dev/null
