"""ImageNet-1K as sequences of 196 16x16 patches (768 features each), 1,000 classes.

    --config=configs/imagenet.py:<model>

Data: tfds `imagenet2012` (manual download, see docs/DATA.md). 1,271,167 training images
after the 10,000-image validation hold-out: 1,242 steps per epoch at batch 1,024.
"""

from configs import common

# The paper's ImageNet recipe (docs/PAPER.md sec. 3) for every model: 24 layers x 256, S=3, K=4,
# N=128, Adam lr 1e-3, 300 epochs, batch 1,024, 10 warmup epochs, cosine. Ours (not given):
# weight decay 0.05 (usual for patch-sequence models trained with AdamW), LayerNorm, no
# dropout, ssm_lr 1e-3, causal.
SETTINGS = {
    "all": {
        "model.num_layers": 24, "model.d_model": 256, "model.dropout": 0.0,
        "model.norm": "layer",
        "train.global_batch_size": 1024, "train.num_epochs": 300.0,
        "train.eval_every": 1242, "train.checkpoint_every": 1242,
        "optimizer.lr": 1e-3, "optimizer.ssm_lr": 1e-3, "optimizer.weight_decay": 0.05,
        "optimizer.warmup_epochs": 10.0,
    },
    # Baseline states (ours): S5 with P=256 in 16 blocks, as its LRA runs at this width.
    **common.baseline_layers(s5_state=256, s5_blocks=16, bidirectional=False),
    # 196 steps: the full scan fits; no chunking.
    **common.ms_ssm_layers(num_levels=3, kernel_size=4, state_per_stream=128,
                           bidirectional=False, scan_chunk_size=0),
}


def get_config(arg: str | None = None):
  args = common.parse_arg(arg)
  return common.make_config("imagenet", args.model, SETTINGS)
