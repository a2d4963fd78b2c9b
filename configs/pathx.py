"""Path-X (LRA; Tay et al. 2021): Pathfinder at 128x128, 16,384 pixel steps, 2 classes.

    --config=configs/pathx.py:<model>[,source=generated|release]

`source=generated` (default) uses our generator (task `pathx`, 160,000 training images);
`source=release` reads the LRA release PNGs (task `lra_pathx`). 5,000 steps per epoch at
batch 32.
"""

from configs import common

SOURCES = {"generated": "pathx", "release": "lra_pathx"}

# S5's recipe for every model (lindermanlab/S5 bin/run_experiments/run_lra_pathx.sh; S5 paper
# Table 11; docs/PAPER.md sec. 3): 6 layers x 128, batch 32, 75 epochs, lr 1.8e-3 (lr_factor 3 x
# ssm_lr 6e-4), weight decay 0.06, no dropout, 1 warmup epoch, BatchNorm with momentum 0.9,
# bidirectional, timescales from dt_min 1e-4 (longer memory; used for every layer here).
SETTINGS = {
    "all": {
        "model.num_layers": 6, "model.d_model": 128, "model.dropout": 0.0,
        "model.batchnorm_momentum": 0.9,
        "train.global_batch_size": 32, "train.num_epochs": 75.0,
        "train.eval_every": 5000, "train.checkpoint_every": 5000,
        "optimizer.lr": 1.8e-3, "optimizer.ssm_lr": 6e-4, "optimizer.weight_decay": 0.06,
        "optimizer.warmup_epochs": 1.0,
    },
    **common.baseline_layers(s5_state=256, s5_blocks=16, bidirectional=True,
                             siso_chunk_size=128, c_init="complex_normal", dt_min=1e-4),
    # The paper gives no Path-X settings. Ours: its S, K, N of every task it specifies
    # (3, 4, 128 per stream), bidirectional like S5's recipe; S6 variant chunked for memory.
    **common.ms_ssm_layers(num_levels=3, kernel_size=4, state_per_stream=128,
                           bidirectional=True, scan_chunk_size=128),
}
for _model in ("ms_ssm", "ms_ssm_s6", "s4d", "s6"):
  SETTINGS[_model]["model.layer_config.dt_min"] = 1e-4  # S5's Path-X timescale range


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, source="generated")
  if args.source not in SOURCES:
    raise ValueError(f"source={args.source!r} is not supported; choose one of "
                     f"{', '.join(SOURCES)}")
  return common.make_config(SOURCES[args.source], args.model, SETTINGS)
