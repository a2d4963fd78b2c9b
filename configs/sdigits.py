"""Sequential 8x8 digits: 64 pixel steps, 10 classes (ours; data shipped in scikit-learn).

    --config=configs/sdigits.py:<model>

Not in the MS-SSM paper: the one image task whose data ships inside a registry package, so it
trains anywhere, on a CPU in minutes (`ms_ssm_jax/data/digits.py`). 1,257 training images after
the seeded validation (180) and test (360) hold-outs: 40 steps per epoch at batch 32, so the
config's 600 steps are 15 epochs (about 3 minutes on 2 CPU cores for MS-SSM).
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = common.parse_arg(arg)
  config = common.task_config("sdigits", args.model)

  # Ours for every model: 4 causal layers x 64, dropout 0.1, batch 32, 600 steps, lr 3e-3 /
  # ssm_lr 1e-3 / weight decay 0.01, 50 warmup steps, cosine.
  config.model.num_layers = 4
  config.model.d_model = 64
  config.model.dropout = 0.1
  config.train.global_batch_size = 32
  config.train.eval_batch_size = 120
  config.train.num_steps = 600
  config.train.log_every = 50
  config.train.eval_every = 100
  config.train.checkpoint_every = 100
  config.optimizer.lr = 3e-3
  config.optimizer.ssm_lr = 1e-3
  config.optimizer.weight_decay = 0.01
  config.optimizer.warmup_steps = 50

  if args.model in common.BASELINES:
    common.baseline_layer(config, args.model, s5_state=64, s5_blocks=4, bidirectional=False)
  else:
    common.ms_ssm_layer(config, args.model, num_levels=3, kernel_size=4, state_per_stream=16,
                        bidirectional=False)
  return config
