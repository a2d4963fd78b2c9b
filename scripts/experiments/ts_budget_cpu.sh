#!/bin/bash
# Equal-budget time-series comparison on the CPU: MS-SSM, S5 and LRU on UEA/UCR problems shipped
# in the aeon wheel, configs/uea.py unchanged except the budget (2,000 steps instead of 10,000).
# Usage, from the repository root: bash scripts/experiments/ts_budget_cpu.sh WORKROOT [DATASET
# ...]# (default: the four in the README table). Runs that finished are skipped.
root=${1:?usage: ts_budget_cpu.sh WORKROOT [DATASET ...]}; shift; mkdir -p $root
datasets=${*:-JapaneseVowels ItalyPowerDemand BasicMotions GunPoint}
py=${PYTHON:-.venv/bin/python}
for d in $datasets; do
  for m in ms_ssm s5 lru; do
    name=${d}_$m
    [ -f $root/$name/results.json ] && continue
    echo "== python train.py --config configs/uea.py:$m,dataset=$d --config.train.num_steps=2000 --workdir $root/$name"
    /usr/bin/time -f "wall %e s" $py train.py --config configs/uea.py:$m,dataset=$d \
      --config.train.num_steps=2000 --workdir $root/$name > $root/$name.log 2>&1
    tail -1 $root/$name.log
  done
done
$py scripts/summarize_runs.py $(ls -d $root/*/ | sed 's:/$::') --json $root/summary.json
