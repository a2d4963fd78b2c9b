"""Sequential MNIST and permuted sequential MNIST: 784 pixel steps, 10 classes (ours).

    --config=configs/smnist.py:<model>[,permuted=true]

Not in the MS-SSM paper. `permuted=true` applies one fixed, seeded pixel permutation
(`config.data.permutation_seed`). Data: tfds `mnist`, 54,000 training images after the
6,000-image validation hold-out: 844 steps per epoch at batch 64.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = common.parse_arg(arg, permuted=False)
  config = common.task_config("psmnist" if args.permuted else "smnist", args.model)

  # Ours for every model: a mid-sized causal network, 6 layers x 128, dropout 0.1, batch 64,
  # 100 epochs, lr 4e-3 / ssm_lr 1e-3 / weight decay 0.01 (S5's LRA scale), 1 warmup epoch.
  config.model.num_layers = 6
  config.model.d_model = 128
  config.model.dropout = 0.1
  config.train.global_batch_size = 64
  config.train.num_epochs = 100.0
  config.train.eval_every = 844
  config.train.checkpoint_every = 844
  config.optimizer.lr = 4e-3
  config.optimizer.ssm_lr = 1e-3
  config.optimizer.weight_decay = 0.01
  config.optimizer.warmup_epochs = 1.0

  if args.model in common.BASELINES:
    common.baseline_layer(config, args.model, s5_state=128, s5_blocks=4, bidirectional=False,
                          chunked_siso=True)
  else:
    common.ms_ssm_layer(config, args.model, num_levels=3, kernel_size=4, state_per_stream=32,
                        bidirectional=False)
  return config
