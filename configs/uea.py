"""Any UEA multivariate time series problem, by name (docs/DATA.md, "UEA protocols").

    --config=configs/uea.py:<model>,dataset=EigenWorms[,protocol=uea_70_15_15,split_seed=2345]
    --config.data.manual_dir=/path/to/the/archive

`protocol=official` keeps the archive's TRAIN/TEST files (a share of TRAIN is held out for
validation); `protocol=uea_70_15_15` is the protocol S5, LRU, Mamba and Log-NCDE report:
TRAIN and TEST merged, duplicates dropped, a random 70/15/15 split per seed (2345, 3456,
4567, 5678, 6789), test accuracy at the best validation step.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = common.parse_arg(arg, dataset="", protocol="official", split_seed=2345)
  config = common.task_config("uea", args.model)
  if args.dataset:
    config.data.dataset = args.dataset
  config.data.protocol = args.protocol
  config.data.split_seed = args.split_seed

  # Ours for every model: small causal networks trained by steps, in the spirit of the UEA
  # benchmarks of LRU and Log-NCDE (small widths; datasets of a few hundred sequences):
  # 4 layers x 64, dropout 0.1, batch 32, 10,000 steps, lr 1e-3, weight decay 0.01, 500 warmup
  # steps (at most a quarter of the run, so short runs work), evaluation every 500 steps.
  config.model.num_layers = 4
  config.model.d_model = 64
  config.model.dropout = 0.1
  config.train.global_batch_size = 32
  config.train.num_steps = 10_000
  config.train.eval_every = 500
  config.train.checkpoint_every = 500
  config.optimizer.lr = 1e-3
  config.optimizer.ssm_lr = 1e-3
  config.optimizer.weight_decay = 0.01
  config.optimizer.warmup_steps = 500
  config.optimizer.warmup_max_fraction = 0.25

  if args.model in common.BASELINES:
    common.baseline_layer(config, args.model, s5_state=64, s5_blocks=4, bidirectional=False,
                          chunked_siso=True)
  else:
    # EigenWorms has 17,984 steps: the S6 variant as a chunked scan for memory.
    common.ms_ssm_layer(config, args.model, num_levels=3, kernel_size=4, state_per_stream=16,
                        bidirectional=False)
  return config
