"""ListOps (LRA; Tay et al. 2021): 10-way classification of nested MAX/MIN/MED/SM expressions.

    --config=configs/listops.py:<model>[,source=generated|release][,size=paper|s5]

`source=generated` (default) trains on our generator's data (task `listops`);
`source=release` reads the LRA release TSVs (task `lra_listops`, `--config.data.data_dir`).
`size=s5` gives MS-SSM S5's depth and state (8 layers, N=16 per stream) instead of the paper's
(20 layers, N=128 per stream): the size of the ablations in docs/RESULTS.md ("ListOps
ablations").
Models: see `configs/common.py`. 96,000 training examples: 1,920 steps per epoch at batch 50.
"""

from configs import common

SOURCES = {"generated": "listops", "release": "lra_listops"}

# Baselines: S5's recipe (lindermanlab/S5 bin/run_experiments/run_lra_listops.sh; S5 paper
# Table 11; docs/PAPER.md): 8 layers x 128, batch 50, 40 epochs, lr 3e-3 (lr_factor 3 x
# ssm_lr 1e-3), weight decay 0.04, no dropout, 1 warmup epoch, bidirectional, BatchNorm.
SETTINGS = {
    "all": {
        "model.num_layers": 8, "model.d_model": 128, "model.dropout": 0.0,
        "train.global_batch_size": 50, "train.num_epochs": 40.0,
        "train.eval_every": 1920, "train.checkpoint_every": 1920,
        "optimizer.lr": 3e-3, "optimizer.ssm_lr": 1e-3, "optimizer.weight_decay": 0.04,
        "optimizer.warmup_epochs": 1.0,
    },
    **common.baseline_layers(s5_state=16, s5_blocks=8, bidirectional=True,
                             siso_chunk_size=128, c_init="lecun_normal"),
}
SETTINGS["s5"]["model.activation"] = "half_glu2"  # S5's run_lra_listops.sh

# MS-SSM, both variants: the paper's ListOps settings (docs/PAPER.md): 20 layers x 128,
# S=3, K=4, N=128, BatchNorm, AdamW lr 3e-3, weight decay 0.03, dropout 0.1, 100 epochs,
# batch 50, 1 warmup epoch, cosine. Ours: ssm_lr 1e-3 (S5's, whose setup the paper follows);
# causal (the paper never mentions bidirectionality); N=128 read as per stream (the paper is
# ambiguous; docs/PAPER.md). The S4 variant runs as an FFT convolution; the S6 variant as a
# chunked scan, since all B L H (S+2) N states would need ~33 GB per layer (docs/PAPER.md).
_MS_SSM = {
    "model.num_layers": 20, "model.d_model": 128, "model.dropout": 0.1, "model.norm": "batch",
    "train.num_epochs": 100.0, "optimizer.lr": 3e-3, "optimizer.ssm_lr": 1e-3,
    "optimizer.weight_decay": 0.03,
}
for _model, _layer in common.ms_ssm_layers(num_levels=3, kernel_size=4, state_per_stream=128,
                                           bidirectional=False, scan_chunk_size=128).items():
  SETTINGS[_model] = {**_MS_SSM, **_layer}
# Ours, for the S4 variant, chosen by the ListOps ablations at S5's size (docs/RESULTS.md,
# "ListOps ablations"; H200, 2026-12-06): bidirectional layers (S5's LRA recipe; ListOps is not
# a causal task), S5's pre-norm block and recipe (half_glu2, BatchNorm momentum 0.95, no
# dropout, weight decay 0.04) and the static mixer (the paper's ablation).
SETTINGS["ms_ssm"].update({
    "model.layer_config.mixer": "static", "model.layer_config.bidirectional": True,
    "model.block": "s5", "model.prenorm": True, "model.activation": "half_glu2",
    "model.batchnorm_momentum": 0.95, "model.dropout": 0.0, "optimizer.weight_decay": 0.04,
})
# Ours: MS-SSM with per-stream S5s in S5's ListOps model and recipe (8 layers, bidirectional,
# half_glu2, no dropout, weight decay 0.04): N=16 per stream in 8 HiPPO-N blocks (S5's P and J),
# as an FFT convolution.
SETTINGS["ms_ssm_s5"] = {
    **SETTINGS["s5"], "model.layer_config.num_levels": 3, "model.layer_config.kernel_size": 4,
    "model.layer_config.state_per_stream": 16, "model.layer_config.s5_blocks": 8,
    "model.layer_config.mode": "conv",
}
for _key in ("state_size", "blocks", "c_init"):
  del SETTINGS["ms_ssm_s5"][f"model.layer_config.{_key}"]
SIZES = ("paper", "s5")
_S5_SIZE = {"model.num_layers": 8, "model.layer_config.state_per_stream": 16}


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, source="generated", size="paper")
  if args.source not in SOURCES:
    raise ValueError(f"source={args.source!r} is not supported; choose one of "
                     f"{', '.join(SOURCES)}")
  if args.size not in SIZES:
    raise ValueError(f"size={args.size!r} is not supported; choose one of {', '.join(SIZES)}")
  if args.size == "s5" and not args.model.startswith("ms_ssm"):
    raise ValueError(f"size=s5 resizes MS-SSM to S5's ListOps model; {args.model!r} has its "
                     "recipe's size already")
  settings = SETTINGS
  if args.size == "s5":
    settings = {**SETTINGS, args.model: {**SETTINGS[args.model], **_S5_SIZE}}
  return common.make_config(SOURCES[args.source], args.model, settings)
