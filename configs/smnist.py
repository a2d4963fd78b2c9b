"""Sequential MNIST and permuted sequential MNIST: 784 pixel steps, 10 classes (ours).

    --config=configs/smnist.py:<model>[,permuted=true]

Not in the MS-SSM paper. `permuted=true` applies one fixed, seeded pixel permutation
(`config.data.permutation_seed`). Data: tfds `mnist`, 54,000 training images after the
6,000-image validation hold-out: 844 steps per epoch at batch 64.
"""

from configs import common

# Ours for every model: a mid-sized causal network, 6 layers x 128, dropout 0.1, batch 64,
# 100 epochs, lr 4e-3 / ssm_lr 1e-3 / weight decay 0.01 (S5's LRA scale), 1 warmup epoch.
SETTINGS = {
    "all": {
        "model.num_layers": 6, "model.d_model": 128, "model.dropout": 0.1,
        "train.global_batch_size": 64, "train.num_epochs": 100.0,
        "train.eval_every": 844, "train.checkpoint_every": 844,
        "optimizer.lr": 4e-3, "optimizer.ssm_lr": 1e-3, "optimizer.weight_decay": 0.01,
        "optimizer.warmup_epochs": 1.0,
    },
    **common.baseline_layers(s5_state=128, s5_blocks=4, bidirectional=False,
                             siso_chunk_size=128),
    **common.ms_ssm_layers(num_levels=3, kernel_size=4, state_per_stream=32,
                           bidirectional=False, scan_chunk_size=128),
}


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, permuted=False)
  return common.make_config("psmnist" if args.permuted else "smnist", args.model, SETTINGS)
