#!/bin/bash
# Issue 26: the MS-SSM conv layer (s4d_real streams, S=3, causal and bidirectional, both
# mixers) before and after a change, on a CPU: scripts/bench_layers.py --section layers at the
# time-series shapes (B x L = 16 x 144 and 16 x 500, H=64, N=16 per stream), run alternately
# in the old tree ($BEFORE, exported with `git archive`, with today's bench_layers.py and
# bench_common.py copied in: one harness, two packages) and in the current checkout, $ROUNDS
# rounds (default 2), so that a load change on a shared machine hits both sides.
#   BEFORE=717a126 bash scripts/experiments/folded_conv_before_after_cpu.sh OUT
# Writes OUT/<before|after>.r<round>.L<length>.md (the tables) and .../bench_layers.json.
set -u
dest=${1:?usage: BEFORE=<commit> bash scripts/experiments/folded_conv_before_after_cpu.sh OUT}
: "${BEFORE:?set BEFORE to the commit to compare against}"
py=${PYTHON:-$PWD/.venv/bin/python}
old=$(mktemp -d)
git archive $BEFORE | tar -x -C $old && cp scripts/bench_layers.py scripts/bench_common.py $old/scripts/
mkdir -p $dest
echo "before: $(git log -1 --format='%h %s' $BEFORE)" > $dest/commits.txt
echo "after:  $(git log -1 --format='%h %s') $(git status --porcelain | grep -q . && echo '(with uncommitted changes)')" >> $dest/commits.txt
for round in $(seq ${ROUNDS:-2}); do
  for side in before after; do
    tree=$PWD; [ $side = before ] && tree=$old
    for shape in "144 2304" "500 8000"; do
      set -- $shape
      (cd $tree && BENCH_RESULTS_DIR=$dest/$side.r$round.L$1 $py scripts/bench_layers.py \
        --section layers --lengths $1 --tokens $2 --width 64 --siso_state 80 --suite_levels 3 \
        --only "s4d_real x5 streams, conv" --directions causal,bidirectional) \
        > $dest/$side.r$round.L$1.md 2>&1
    done
  done
done
rm -rf $old
