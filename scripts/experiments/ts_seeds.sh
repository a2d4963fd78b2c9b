#!/bin/bash
# The time-series table with seeds (issues 24 and 27): MS-SSM, MS-SSM with the ListOps
# ablation's choices, S5 and LRU on UEA/UCR problems shipped in the aeon wheel, seeds $SEEDS
# (default 0 1 2) each, configs/uea.py unchanged except the budget ($STEPS steps, default 1,000,
# evaluated every $STEPS / 4), on whatever device JAX finds (a CPU or one GPU).
# `ms_ssm_s5recipe` is configs/listops.py:ms_ssm's choices on configs/uea.py:ms_ssm: bidirectional
# layers (whole-sequence classification), S5's pre-norm block and recipe, the static mixer.
# The official protocol's validation hold-out stays fixed (split_seed 2345); --config.train.seed
# varies initialization, dropout and batch order.
# $COPIES copies of the loop (default 1) train at once, each run locked by the copy that trains
# it; each training is niced and single-threaded on the CPU, for a machine shared with others.
# With $CLOCK set, no run starts after CLOCK s and a running one is stopped by SIGTERM at CLOCK
# s (it saves a checkpoint); the same command then resumes it and skips finished runs.
# Usage, from the repository root:
#   bash scripts/experiments/ts_seeds.sh WORKROOT [DATASET ...]   # a CPU, one core
#   COPIES=10 CLOCK=520 PYTHON=python3 bash scripts/experiments/ts_seeds.sh /tmp/uea ...  # a GPU
#   STEPS=4000 bash scripts/experiments/ts_seeds.sh WORKROOT Covid3Month_disc  # a longer budget
# (default datasets: the four sets of docs/RESULTS.md's CPU tables). Each run appends to
# WORKROOT/<run>.log; WORKROOT/summary.md and seed_table.md gather the finished runs (those
# with a results.json).
root=${1:?usage: ts_seeds.sh WORKROOT [DATASET ...]}; shift; mkdir -p $root
datasets=${*:-JapaneseVowels ItalyPowerDemand BasicMotions GunPoint}
py=${PYTHON:-.venv/bin/python}
copies=${COPIES:-1}
steps=${STEPS:-1000}
start=$(date +%s)
left() { if [ -n "${CLOCK:-}" ]; then echo $((CLOCK - ($(date +%s) - start))); else echo 999999; fi; }
command -v nvidia-smi > /dev/null ||  # one thread per training on a CPU
  export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # copies share a GPU
s5_recipe=(--config.model.layer_config.bidirectional=True --config.model.block=s5
  --config.model.prenorm=True --config.model.activation=half_glu2
  --config.model.batchnorm_momentum=0.95 --config.model.dropout=0.0
  --config.optimizer.weight_decay=0.04 --config.model.layer_config.mixer=static)
train_all() {
  local seed d variant name lock holder args
  for seed in ${SEEDS:-0 1 2}; do  # seed-major: a run cut short leaves every set a seed
    for d in $datasets; do
      for variant in ms_ssm ms_ssm_s5recipe s5 lru; do
        name=${d}_${variant}_seed$seed
        [ -f $root/$name/results.json ] && continue
        [ $(left) -lt 30 ] && return
        # Another copy of this loop skips the run a living copy holds.
        lock=$root/$name.lock
        if ! mkdir $lock 2> /dev/null; then
          holder=$(cat $lock/pid 2> /dev/null)  # empty: the holder is about to write it
          { [ -z "$holder" ] || kill -0 $holder 2> /dev/null; } && continue
          rm -rf $lock; mkdir $lock || continue  # the holder died: take the run over
        fi
        echo $BASHPID > $lock/pid
        args=(--config configs/uea.py:${variant%_s5recipe},dataset=$d --config.train.seed=$seed
          --config.train.num_steps=$steps --config.train.eval_every=$((steps / 4)))
        [ $variant = ms_ssm_s5recipe ] && args+=("${s5_recipe[@]}")
        echo "== python train.py ${args[*]} --workdir $root/$name" | tee -a $root/$name.log
        /usr/bin/time -f "wall %e s" timeout -s TERM $(left) nice -n 10 $py train.py "${args[@]}" \
          --workdir $root/$name >> $root/$name.log 2>&1
        tail -1 $root/$name.log
        rm -rf $lock
      done
    done
  done
}
for ((copy = 0; copy < copies; copy++)); do train_all & done
wait
finished=$(for d in $root/*/; do [ -f $d/results.json ] && echo ${d%/}; done)
$py scripts/summarize_runs.py $finished --json $root/summary.json > $root/summary.md
$py scripts/seed_table.py $root/summary.json --json $root/seed_table.json \
  > $root/seed_table.md
cat $root/seed_table.md
