"""A small MS-SSM on JapaneseVowels: real data shipped with aeon, trains on a laptop CPU.

    python train.py --config=configs/default.py --workdir=/tmp/msssm_default
    --config=configs/default.py:s5      # any model of configs/common.py

JapaneseVowels (UEA): 12 cepstral channels, 9 speakers, 7 to 29 steps; 270 training
utterances (20% held out for validation) and 370 test utterances.
"""

from configs import common

# Ours, tuned once on 2 CPU cores (its result: docs/RESULTS.md, "Default task").
SETTINGS = {
    "all": {
        "model.num_layers": 2, "model.d_model": 32, "model.dropout": 0.1,
        "train.global_batch_size": 16, "train.eval_batch_size": 64, "train.num_steps": 400,
        "train.log_every": 20, "train.eval_every": 100, "train.checkpoint_every": 200,
        "optimizer.lr": 3e-3, "optimizer.ssm_lr": 1e-3, "optimizer.weight_decay": 0.01,
        "optimizer.warmup_steps": 20,
    },
    **common.baseline_layers(s5_state=16, s5_blocks=2, bidirectional=False),
    **common.ms_ssm_layers(num_levels=2, kernel_size=2, state_per_stream=8,
                           bidirectional=False, scan_chunk_size=0),
}


def get_config(arg: str | None = None):
  """The default config (MS-SSM unless `arg` names another model)."""
  args = common.parse_arg(arg)
  return common.make_config("japanese_vowels", args.model, SETTINGS)
