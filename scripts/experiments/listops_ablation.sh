#!/bin/bash
# Issue 27's ablations: which choices make MS-SSM learn ListOps at S5's depth and width.
# Generated ListOps, configs/listops.py, 4 epochs (7,680 steps of 50, 1 warmup epoch), every
# MS-SSM lane at S5's size (8 x 128, N=16 per stream) with one factor changed, against S5 in
# the same call on one GPU; plus the paper-size model (20 x 128, N=128) with the paper's
# per-channel mixer for one epoch at lr 3e-3, with and without its own mixer rate; and S5 and
# LRU at their recipe's full 40 epochs (issue 24), and MS-SSM at S5's size for the same 40
# epochs (`ms_full`: configs/listops.py:ms_ssm,size=s5, the finalist of the ablation), continued
# over as many calls as they need.
# From the repository root, on a device machine (one call is ~9.5 minutes; the runs continue
# over consecutive calls on a warm machine with KEEP_RUNS=1, or from a returned runs.tar.gz
# with RESUME_FROM=<its wd/ folder>):
#   CLOCK=540 bash scripts/experiments/listops_ablation.sh $OUT
#   KEEP_RUNS=1 CLOCK=540 bash scripts/experiments/listops_ablation.sh $OUT
# LANES picks lanes by name (default: all), SEEDS the seeds of each (default 0; seed s > 0
# runs in listops_<lane>_seed<s>); a lane written <lane>:<seed> runs that seed alone. FINAL=1
# returns each run's latest and best checkpoints too (best/ keeps a resumed run's choice of
# its best step), except the paper-size runs' (68 MB each). Memory: 11 lanes at once ran the
# paper-size and S5-stream lanes out of an H200's memory; give the paper-size lanes a call of
# their own.
# The finalists, 4 epochs and 2 seeds against S5 (about 3 calls at ~0.45 s a step shared):
#   LANES="s5 ms_bi_s5block ms_bi_pc_s5block" SEEDS="0 1" CLOCK=540 bash ... $OUT
source scripts/experiments/lib.sh
[ -n "${RESUME_FROM:-}" ] && resume_runs "$RESUME_FROM"
# The lanes' common base pins the ListOps config of 2026-12-06 before this ablation (causal,
# static mixer, post-norm multires block, dropout 0.1, weight decay 0.03); each lane changes it.
small="--config.train.num_epochs=4 --config.model.num_layers=8 --config.model.layer_config.state_per_stream=16 --config.train.log_every=240 --config.model.layer_config.bidirectional=False --config.model.layer_config.mixer=static --config.model.block=multires --config.model.prenorm=False --config.model.activation=glu --config.model.batchnorm_momentum=0.9 --config.model.dropout=0.1 --config.optimizer.weight_decay=0.03"
bi="--config.model.layer_config.bidirectional=True"
pc="--config.model.layer_config.mixer=linear_input"
s5block="--config.model.block=s5 --config.model.prenorm=True --config.model.activation=half_glu2 --config.model.batchnorm_momentum=0.95 --config.model.dropout=0.0 --config.optimizer.weight_decay=0.04"
s5streams="--config.model.layer_config.backbone=s5 --config.model.layer_config.s5_blocks=8 --config.model.layer_config.impl=scan"
# The full-budget baselines run their recurrence in the Pallas kernel from S5's step 17,872 and
# LRU's 16,247 on (2026-12-08; the scan before: same outputs, S5's step 18.7 -> 12.2 ms).
pallas="--config.model.layer_config.impl=pallas"
paper="--config.model.layer_config.bidirectional=False --config.model.block=multires --config.model.prenorm=False --config.model.activation=glu --config.model.batchnorm_momentum=0.9 --config.model.dropout=0.1 --config.optimizer.weight_decay=0.03 --config.model.layer_config.mixer=linear_input --config.train.num_epochs=1 --config.optimizer.warmup_epochs=0 --config.optimizer.warmup_steps=100 --config.train.eval_every=960 --config.train.checkpoint_every=960 --config.train.log_every=50"
declare -A LANE=(
  [s5]="--config configs/listops.py:s5 --config.train.num_epochs=4 --config.train.log_every=240"
  [ms_bi]="--config configs/listops.py:ms_ssm $small $bi"
  [ms_pc]="--config configs/listops.py:ms_ssm $small $pc"
  [ms_bi_pc]="--config configs/listops.py:ms_ssm $small $bi $pc"
  [ms_bi_s5block]="--config configs/listops.py:ms_ssm $small $bi $s5block"
  [ms_bi_pc_s5block]="--config configs/listops.py:ms_ssm $small $bi $pc $s5block"
  [ms_s5streams_bi]="--config configs/listops.py:ms_ssm $small $bi $s5streams"
  [paper_pc]="--config configs/listops.py:ms_ssm $paper"
  [s5_full]="--config configs/listops.py:s5 --config.train.log_every=960 $pallas"
  [lru_full]="--config configs/listops.py:lru --config.train.log_every=960 $pallas"
  [ms_full]="--config configs/listops.py:ms_ssm,size=s5 --config.train.num_epochs=40 --config.train.log_every=960"
  [paper_pc_mixer_lr]="--config configs/listops.py:ms_ssm $paper --config.optimizer.mixer_lr=3e-4"
)
lanes=${LANES:-"s5 ms_bi ms_pc ms_bi_pc ms_bi_s5block ms_bi_pc_s5block ms_s5streams_bi paper_pc paper_pc_mixer_lr s5_full lru_full ms_full"}
$PY scripts/prepare_data.py --task listops > $out/prepare_listops.log 2>&1  # quick once generated
start_clock
watch_gpu
pids=()
for entry in $lanes; do
  lane=${entry%%:*}; seeds=${SEEDS:-0}; [ "$entry" = "$lane" ] || seeds=${entry#*:}
  [ -n "${LANE[$lane]:-}" ] || { echo "unknown lane $lane; known: ${!LANE[*]}"; exit 2; }
  for seed in $seeds; do
    name=listops_$lane; [ "$seed" = 0 ] || name=${name}_seed$seed
    train $name $(left) ${LANE[$lane]} --config.train.seed=$seed &
    pids+=($!)
  done
done
wait "${pids[@]}"
[ -z "$monitor" ] || kill $monitor
for f in $out/listops_*.log; do grep -v "^W1\|^I1" $f | grep "^==\|eval test\|^exit\|Error" ; done
if [ "${FINAL:-0}" = 1 ]; then
  finish $1 --with-checkpoints --exclude='wd/listops_paper_*/checkpoints' \
    --exclude='wd/listops_paper_*/best'
else finish $1 --exclude='*/best'; fi
