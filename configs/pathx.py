"""Path-X (LRA; Tay et al. 2021): Pathfinder at 128x128, 16,384 pixel steps, 2 classes.

    --config=configs/pathx.py:<model>[,source=generated|release]

`source=generated` (default) uses our generator (task `pathx`, 160,000 training images);
`source=release` reads the LRA release PNGs (task `lra_pathx`). 5,000 steps per epoch at
batch 32.
"""

import ml_collections

from configs import common

SOURCES = {"generated": "pathx", "release": "lra_pathx"}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = common.parse_arg(arg, source="generated")
  if args.source not in SOURCES:
    raise ValueError(f"source={args.source!r} is not supported; choose one of "
                     f"{', '.join(SOURCES)}")
  config = common.task_config(SOURCES[args.source], args.model)

  # S5's recipe for every model (lindermanlab/S5 bin/run_experiments/run_lra_pathx.sh; S5
  # paper Table 11; docs/PAPER.md sec. 3): 6 layers x 128, batch 32, 75 epochs, lr 1.8e-3
  # (lr_factor 3 x ssm_lr 6e-4), weight decay 0.06, no dropout, 1 warmup epoch, BatchNorm with
  # momentum 0.9, bidirectional, timescales from dt_min 1e-4 (longer memory).
  config.model.num_layers = 6
  config.model.d_model = 128
  config.model.dropout = 0.0
  config.model.batchnorm_momentum = 0.9
  config.train.global_batch_size = 32
  config.train.num_epochs = 75.0
  config.train.eval_every = 5000
  config.train.checkpoint_every = 5000
  config.optimizer.lr = 1.8e-3
  config.optimizer.ssm_lr = 6e-4
  config.optimizer.weight_decay = 0.06
  config.optimizer.warmup_epochs = 1.0

  if args.model in common.BASELINES:
    common.baseline_layer(config, args.model, s5_state=256, s5_blocks=16, bidirectional=True,
                          chunked_siso=True, c_init="complex_normal")
  else:
    # The paper gives no Path-X settings. Ours: its S, K, N of every task it specifies
    # (3, 4, 128 per stream), bidirectional like S5's recipe; S6 variant chunked for memory.
    common.ms_ssm_layer(config, args.model, num_levels=3, kernel_size=4, state_per_stream=128,
                        bidirectional=True)
  if args.model != "lru":  # the LRU's timescales come from its ring, not from dt
    config.model.layer_config.dt_min = 1e-4  # S5's Path-X timescale range, for every layer
  return config
