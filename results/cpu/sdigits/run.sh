#!/bin/bash
# Sequential digits (configs/sdigits.py as it is, 600 steps) for MS-SSM, S5 and LRU on the CPU,
# from the repository root: bash results/cpu/sdigits/run.sh WORKDIR
# Writes WORKDIR/<model>, copies each run's train.csv and eval.csv next to this script and
# prints the summary table (summary.md here).
set -e
out=${1:?usage: run.sh WORKDIR}
here=$(dirname "$0")
for m in ms_ssm s5 lru; do
  .venv/bin/python train.py --config configs/sdigits.py:$m --workdir $out/$m
  cp $out/$m/metrics/train.csv $here/${m}_train.csv
  cp $out/$m/metrics/eval.csv $here/${m}_eval.csv
done
.venv/bin/python scripts/summarize_runs.py $out/ms_ssm $out/s5 $out/lru | tee $here/summary.md
