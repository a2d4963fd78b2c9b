"""The paper's ablations (Karami et al. 2025, Table 5) and our S and K sweeps, one row each.

    python train.py --config=configs/ablations.py:<row>[,task=listops|ptbxl] --workdir=...

Every row is a task's base model with one change. PTB-XL's base is the paper's: its S6 variant
(`configs/ptbxl.py:ms_ssm_s6`, `--config.data.data_dir`). ListOps's is the S4 variant at S5's
size with the paper's per-channel mixer (`configs/listops.py:ms_ssm,size=s5`, the ListOps
ablation's finalist: bidirectional, S5's block and recipe; with `mixer=linear_input`, whose
input weights train at `optimizer.mixer_lr` 3e-4), because the S6 variant at that size
diverged and cost several times the S4 variant's step (docs/RESULTS.md, "Ablations"); so on
ListOps the S6-only row (`S6_ROWS`) does not apply.
Rows (`ROWS`; the paper's ListOps accuracy and PTB-XL AUROC of each: `PAPER`):
  full               the base as configured (S=3, K=4)
  no_ssm             decomposition only: the mixer merges the bands
  conv1d             plain Conv1D instead of the decomposition: each band
                     one learned depthwise conv of reach R_S
  static_mixer       E[h, j] = b[h, j]
  softmax_mixer      E_t = softmax(W_E u_t + b_E)
  mamba_init         every stream A = -1..-N (`scale_init="shared"`)
  condition_on_band  S6 projections read the stream's band, not the input (S6 only)
  levels_1, levels_2, levels_4, kernel_2: our sweeps of S and K around the paper's S=3, K=4.
The GPU driver and the table beside the paper's: scripts/experiments/ablations_gpu.sh and
scripts/ablation_table.py.
"""

from typing import Any, NamedTuple

import ml_collections

from configs import listops
from configs import ptbxl


def _listops_base() -> ml_collections.ConfigDict:
  """The S4 variant at S5's size with the paper's per-channel mixer (module docstring)."""
  config = listops.get_config("ms_ssm,size=s5")
  config.model.layer_config.mixer = "linear_input"
  config.optimizer.mixer_lr = 3e-4
  return config


TASKS = {"listops": _listops_base, "ptbxl": lambda: ptbxl.get_config("ms_ssm_s6")}

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
# Rows that change the S6 projections: they apply only to a base with S6 streams.
S6_ROWS = ("condition_on_band",)


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
  if row in S6_ROWS and config.model.layer_config.backbone != "s6":
    raise ValueError(f"row {row!r} changes the S6 projections; task={task}'s base has "
                     f"{config.model.layer_config.backbone} streams (rows for it: "
                     f"{', '.join(task_rows(task))})")
  config.model.layer_config.update(ROWS[row])
  return config


def task_rows(task: str) -> list[str]:
  """The rows that apply to `task`'s base, in table order."""
  s6_base = TASKS[task]().model.layer_config.backbone == "s6"
  return [row for row in ROWS if s6_base or row not in S6_ROWS]
