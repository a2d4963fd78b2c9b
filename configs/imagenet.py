"""ImageNet-1K as sequences of 196 16x16 patches (768 features each), 1,000 classes.

    --config=configs/imagenet.py:<model>

Data: tfds `imagenet2012` (manual download, see docs/DATA.md). 1,271,167 training images
after the 10,000-image validation hold-out: 1,242 steps per epoch at batch 1,024.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = common.parse_arg(arg)
  config = common.task_config("imagenet", args.model)

  # The paper's ImageNet recipe (docs/PAPER.md sec. 3) for every model: 24 layers x 256, S=3,
  # K=4, N=128, Adam lr 1e-3, 300 epochs, batch 1,024, 10 warmup epochs, cosine. Ours (not
  # given): weight decay 0.05 (usual for patch-sequence models trained with AdamW), LayerNorm,
  # no dropout, ssm_lr 1e-3, causal.
  config.model.num_layers = 24
  config.model.d_model = 256
  config.model.dropout = 0.0
  config.model.norm = "layer"
  config.train.global_batch_size = 1024
  config.train.num_epochs = 300.0
  config.train.eval_every = 1242
  config.train.checkpoint_every = 1242
  config.optimizer.lr = 1e-3
  config.optimizer.ssm_lr = 1e-3
  config.optimizer.weight_decay = 0.05
  config.optimizer.warmup_epochs = 10.0

  if args.model in common.BASELINES:
    # Baseline states (ours): S5 with P=256 in 16 blocks, as its LRA runs at this width.
    common.baseline_layer(config, args.model, s5_state=256, s5_blocks=16, bidirectional=False)
  else:
    common.ms_ssm_layer(config, args.model, num_levels=3, kernel_size=4, state_per_stream=128,
                        bidirectional=False)
  return config
