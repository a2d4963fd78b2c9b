"""A small MS-SSM on JapaneseVowels: real data shipped with aeon, trains on a laptop CPU.

    python train.py --config=configs/default.py --workdir=/tmp/msssm_default
    --config=configs/default.py:s5      # any model of configs/common.py

JapaneseVowels (UEA): 12 cepstral channels, 9 speakers, 7 to 29 steps; 270 training
utterances (20% held out for validation) and 370 test utterances.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The default config (MS-SSM unless `arg` names another model)."""
  args = common.parse_arg(arg)
  config = common.task_config("japanese_vowels", args.model)

  # Ours, tuned once on 2 CPU cores (its result: docs/RESULTS.md, "Default task").
  config.model.num_layers = 2
  config.model.d_model = 32
  config.model.dropout = 0.1
  config.train.global_batch_size = 16
  config.train.eval_batch_size = 64
  config.train.num_steps = 400
  config.train.log_every = 20
  config.train.eval_every = 100
  config.train.checkpoint_every = 200
  config.optimizer.lr = 3e-3
  config.optimizer.ssm_lr = 1e-3
  config.optimizer.weight_decay = 0.01
  config.optimizer.warmup_steps = 20

  if args.model in common.BASELINES:
    common.baseline_layer(config, args.model, s5_state=16, s5_blocks=2, bidirectional=False)
  else:
    common.ms_ssm_layer(config, args.model, num_levels=2, kernel_size=2, state_per_stream=8,
                        bidirectional=False)
  return config
