"""Synthetic memory tasks: associative recall and (one-token) selective copying.

    --config=configs/synthetic.py:<model>[,task=associative_recall|selective_copying]

Sequences are generated on the fly (`ms_ssm_jax/data/synthetic.py`); their length is
`config.data.length`. The answer depends on the whole sequence and is asked for at its end,
so the models are causal and classify from the last valid step (`pooling="last"`).
"""

from configs import common

TASKS = ("associative_recall", "selective_copying")

# Ours for every model: 4 causal layers x 128, no dropout, batch 64, 20,000 steps, lr 1e-3,
# weight decay 0.1, 1,000 warmup steps, cosine, gradient clipping at 1.
SETTINGS = {
    "all": {
        "model.num_layers": 4, "model.d_model": 128, "model.dropout": 0.0,
        "model.pooling": "last",
        "train.global_batch_size": 64, "train.num_steps": 20_000,
        "train.eval_every": 1000, "train.checkpoint_every": 1000,
        "optimizer.lr": 1e-3, "optimizer.ssm_lr": 1e-3, "optimizer.weight_decay": 0.1,
        "optimizer.warmup_steps": 1000, "optimizer.grad_clip_norm": 1.0,
    },
    **common.baseline_layers(s5_state=64, s5_blocks=4, bidirectional=False,
                             siso_chunk_size=128),
    **common.ms_ssm_layers(num_levels=3, kernel_size=4, state_per_stream=16,
                           bidirectional=False, scan_chunk_size=128),
}


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, task="associative_recall")
  if args.task not in TASKS:
    raise ValueError(f"task={args.task!r} is not supported; choose one of {', '.join(TASKS)}")
  return common.make_config(args.task, args.model, SETTINGS)
