#!/bin/bash
# Sequential digits (configs/sdigits.py as it is, 600 steps) for MS-SSM, S5 and LRU on the CPU,
# from the repository root: bash scripts/experiments/sdigits_cpu.sh WORKDIR
# Writes WORKDIR/<model>, copies each run's train.csv and eval.csv to $DEST (default
# results/cpu/sdigits) and prints the summary table ($DEST/summary.md).
set -e
out=${1:?usage: sdigits_cpu.sh WORKDIR}
dest=${DEST:-results/cpu/sdigits}
for m in ms_ssm s5 lru; do
  .venv/bin/python train.py --config configs/sdigits.py:$m --workdir $out/$m
  cp $out/$m/metrics/train.csv $dest/${m}_train.csv
  cp $out/$m/metrics/eval.csv $dest/${m}_eval.csv
done
.venv/bin/python scripts/summarize_runs.py $out/ms_ssm $out/s5 $out/lru | tee $dest/summary.md
