"""Synthetic memory tasks: associative recall and (one-token) selective copying.

    --config=configs/synthetic.py:<model>[,task=associative_recall|selective_copying]

Sequences are generated on the fly (`ms_ssm_jax/data/synthetic.py`); their length is
`config.data.length`. The answer depends on the whole sequence and is asked for at its end,
so the models are causal and classify from the last valid step (`pooling="last"`).
"""

import ml_collections

from configs import common

TASKS = ("associative_recall", "selective_copying")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = common.parse_arg(arg, task="associative_recall")
  if args.task not in TASKS:
    raise ValueError(f"task={args.task!r} is not supported; choose one of {', '.join(TASKS)}")
  config = common.task_config(args.task, args.model)

  # Ours for every model: 4 causal layers x 128, no dropout, batch 64, 20,000 steps, lr 1e-3,
  # weight decay 0.1, 1,000 warmup steps, cosine, gradient clipping at 1.
  config.model.num_layers = 4
  config.model.d_model = 128
  config.model.dropout = 0.0
  config.model.pooling = "last"
  config.train.global_batch_size = 64
  config.train.num_steps = 20_000
  config.train.eval_every = 1000
  config.train.checkpoint_every = 1000
  config.optimizer.lr = 1e-3
  config.optimizer.ssm_lr = 1e-3
  config.optimizer.weight_decay = 0.1
  config.optimizer.warmup_steps = 1000
  config.optimizer.grad_clip_norm = 1.0

  if args.model in common.BASELINES:
    common.baseline_layer(config, args.model, s5_state=64, s5_blocks=4, bidirectional=False,
                          chunked_siso=True)
  else:
    common.ms_ssm_layer(config, args.model, num_levels=3, kernel_size=4, state_per_stream=16,
                        bidirectional=False)
  return config
