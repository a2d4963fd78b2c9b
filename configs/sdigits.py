"""Sequential 8x8 digits: 64 pixel steps, 10 classes (ours; data shipped in scikit-learn).

    --config=configs/sdigits.py:<model>

Not in the MS-SSM paper: the one image task whose data ships inside a registry package, so it
trains anywhere, on a CPU in minutes (`ms_ssm_jax/data/digits.py`). 1,257 training images after
the seeded validation (180) and test (360) hold-outs: 40 steps per epoch at batch 32, so the
config's 600 steps are 15 epochs (about 3 minutes on 2 CPU cores for MS-SSM).
"""

from configs import common

# Ours for every model: 4 causal layers x 64, dropout 0.1, batch 32, 600 steps, lr 3e-3 /
# ssm_lr 1e-3 / weight decay 0.01, 50 warmup steps, cosine.
SETTINGS = {
    "all": {
        "model.num_layers": 4, "model.d_model": 64, "model.dropout": 0.1,
        "train.global_batch_size": 32, "train.eval_batch_size": 120, "train.num_steps": 600,
        "train.log_every": 50, "train.eval_every": 100, "train.checkpoint_every": 100,
        "optimizer.lr": 3e-3, "optimizer.ssm_lr": 1e-3, "optimizer.weight_decay": 0.01,
        "optimizer.warmup_steps": 50,
    },
    **common.baseline_layers(s5_state=64, s5_blocks=4, bidirectional=False),
    **common.ms_ssm_layers(num_levels=3, kernel_size=4, state_per_stream=16,
                           bidirectional=False, scan_chunk_size=0),
}


def get_config(arg: str | None = None):
  args = common.parse_arg(arg)
  return common.make_config("sdigits", args.model, SETTINGS)
