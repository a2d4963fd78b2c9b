"""The paper's ablations (Karami et al. 2025, Table 5) and our S and K sweeps, one row each.

    python train.py --config=configs/ablations.py:<row>[,task=listops|ptbxl] --workdir=...

Every row is the paper's S6 variant (`ms_ssm_s6`, on which the paper ran its ablations) with
one change; on ListOps the input weights of the per-channel and softmax mixers train at
`optimizer.mixer_lr` 3e-4 (`configs/listops.py`). ListOps at S5's size
(`configs/listops.py:ms_ssm_s6,size=s5`: 8 layers, N=16 per stream); PTB-XL at the paper's
size (`configs/ptbxl.py:ms_ssm_s6`, `--config.data.data_dir`).
Rows (`ROWS`; the paper's ListOps accuracy and PTB-XL AUROC of each: `PAPER`):
  full               the variant as configured (S=3, K=4)
  no_ssm             decomposition only: the mixer merges the bands
  conv1d             plain Conv1D instead of the decomposition: each band
                     one learned depthwise causal conv of reach R_S
  static_mixer       E[h, j] = b[h, j]
  softmax_mixer      E_t = softmax(W_E u_t + b_E)
  mamba_init         every stream A = -1..-N (`scale_init="shared"`)
  condition_on_band  S6 projections read the stream's band, not the input
  levels_1, levels_2, levels_4, kernel_2: our sweeps of S and K around the paper's S=3, K=4.
The GPU driver and the table beside the paper's: scripts/experiments/ablations_gpu.sh and
scripts/ablation_table.py.
"""

from typing import Any, NamedTuple

import ml_collections

from configs import listops
from configs import ptbxl

TASKS = {
    "listops": lambda: listops.get_config("ms_ssm_s6,size=s5"),
    "ptbxl": lambda: ptbxl.get_config("ms_ssm_s6")
}

# Each row's changes to `config.model.layer_config`.
ROWS: dict[str, dict[str, Any]] = {
    "full": {},
    "no_ssm": {"backbone": "none", "state_per_stream": None, "impl": "scan"},
    "conv1d": {"decomposition": "conv1d"},
    "static_mixer": {"mixer": "static"},
    "softmax_mixer": {"mixer": "softmax_input"},
    "mamba_init": {"scale_init": "shared"},
    "condition_on_band": {"s6_condition_on": "band"},
    **{f"levels_{s}": {"num_levels": s} for s in (1, 2, 4)},
    "kernel_2": {"kernel_size": 2},
}


class PaperResult(NamedTuple):
  """A row's numbers in the paper's Table 5 (docs/PAPER.md, sec. 2), on its S6 variant."""
  listops_accuracy: float  # test accuracy in percent
  ptbxl_auroc: float


# The rows the paper ran; our S and K sweeps have no paper numbers.
PAPER: dict[str, PaperResult] = {
    "full": PaperResult(63.04, 0.939),
    "no_ssm": PaperResult(62.59, 0.936),
    "conv1d": PaperResult(37.98, 0.916),
    "static_mixer": PaperResult(61.28, 0.932),
    "softmax_mixer": PaperResult(61.42, 0.921),
    "mamba_init": PaperResult(57.49, 0.928),
    "condition_on_band": PaperResult(62.91, 0.938),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  row, _, option = (arg or "full").partition(",")
  task = "listops"
  if option:
    key, _, task = option.partition("=")
    if key != "task":
      raise ValueError(f"configs/ablations.py takes <row>[,task=...]; got {arg!r}")
  if row not in ROWS:
    raise ValueError(f"unknown ablation row {row!r}; choose one of {', '.join(ROWS)}")
  if task not in TASKS:
    raise ValueError(f"task={task!r} is not supported; choose one of {', '.join(TASKS)}")
  config = TASKS[task]()
  config.model.layer_config.update(ROWS[row])
  return config
