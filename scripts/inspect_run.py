"""Why does a run's evaluation differ from its training? Per-block numbers of a saved model.

    python scripts/inspect_run.py --workdir workdirs/listops_ms_ssm [--checkpoint latest]

Prints three markdown tables:
- the BatchNorm running statistics of every norm (smallest, median and largest running variance,
  largest |running mean|): evaluation normalizes with these, training with batch statistics;
- for one batch of `--split`, each block's largest |output| over valid steps in evaluation mode
  (running statistics) and in training mode (batch statistics, dropout on), and how many of its
  output values are NaN or infinite in evaluation mode;
- the `--top` parameters with the largest loss gradients on that batch (training mode), with
  their norms: where exploding gradient norms in `metrics/train.csv` come from.
A block whose evaluation-mode output grows far beyond its training-mode output, or a running
variance near zero, is where a non-finite evaluation loss starts.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ms_ssm_jax import checkpointing
from ms_ssm_jax import data
from ms_ssm_jax import evaluation
from ms_ssm_jax import model as model_lib
from ms_ssm_jax import train_lib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402  (scripts/ is not a package)


def _natural_key(path: str) -> list[Any]:
  """'blocks_10/...' after 'blocks_9/...'."""
  return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def running_stat_rows(batch_stats: Any) -> list[dict[str, Any]]:
  """One row per BatchNorm: its path and the spread of its running variance and mean."""
  rows = []
  paths = checkpointing.tree_paths(batch_stats)
  for path in sorted(paths, key=_natural_key):
    if not path.endswith("/var"):
      continue
    norm = path[:-len("/var")]
    var = np.asarray(paths[path], np.float64)
    mean = np.asarray(paths[norm + "/mean"], np.float64)
    rows.append({
        "norm": norm, "var_min": float(var.min()), "var_median": float(np.median(var)),
        "var_max": float(var.max()), "abs_mean_max": float(np.abs(mean).max())
    })
  return rows


def _block_outputs(model, variables, batch, train: bool) -> dict[str, np.ndarray]:
  """Each top-level block's output (B, L, H) for `batch`, in evaluation or training mode."""
  is_block = lambda module, method: (method == "__call__" and module.name is not None and module.
                                     name.startswith("blocks_"))
  kwargs = dict(train=train, capture_intermediates=is_block, mutable=["intermediates"])
  if train:
    kwargs.update(rngs={"dropout": jax.random.PRNGKey(0)}, mutable=["intermediates", "batch_stats"])
  _, state = model.apply(variables, batch, **kwargs)
  found = {}
  for path, value in checkpointing.tree_paths(state["intermediates"]).items():
    block = path.split("/")[0]
    if block.startswith("blocks_"):
      found[block] = np.asarray(value, np.float64)
  return dict(sorted(found.items(), key=lambda item: _natural_key(item[0])))


def block_rows(model, variables, batch) -> list[dict[str, Any]]:
  """Per block: largest |output| over valid steps in eval and train mode, non-finite count."""
  valid = np.asarray(model_lib.valid_mask(jnp.asarray(batch["lengths"]),
                                          batch["inputs"].shape[1]))[..., None]
  evals = _block_outputs(model, variables, batch, train=False)
  trains = _block_outputs(model, variables, batch, train=True)
  rows = []
  for block, out in evals.items():
    out_valid = np.where(valid, out, 0.0)
    finite = np.isfinite(out_valid)
    rows.append({
        "block": block, "eval_abs_max": float(np.abs(np.where(finite, out_valid, 0.0)).max()),
        "train_abs_max": float(np.nanmax(np.abs(np.where(valid, trains[block], 0.0)))),
        "eval_nonfinite": int((~finite).sum())
    })
  return rows


def gradient_rows(model, variables, batch, target: str, top: int) -> list[dict[str, Any]]:
  """The `top` parameters by gradient norm of the mean loss on `batch` (training mode)."""
  loss = functools.partial(train_lib.training_loss, batch_stats=variables.get("batch_stats",
                                                                              {}), batch=batch,
                           model=model, target=target, dropout_key=jax.random.PRNGKey(0))
  grads = checkpointing.tree_paths(jax.grad(loss, has_aux=True)(variables["params"])[0])
  params = checkpointing.tree_paths(variables["params"])
  rows = [{
      "parameter": path, "grad_norm": float(np.linalg.norm(np.asarray(grad))),
      "param_norm": float(np.linalg.norm(np.asarray(params[path])))
  } for path, grad in grads.items()]
  return sorted(rows, key=lambda row: -row["grad_norm"])[:top]


def first_batch(data_config, split: str, size: int) -> dict[str, np.ndarray]:
  """The first `size` examples of `split`, in stored order, as one batch."""
  return next(
      data.make_iterator(data_config, split, global_batch_size=size, seed=0, shuffle=False,
                         drop_remainder=False, process_index=0, process_count=1, max_examples=size))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, help="run workdir or checkpoint directory")
  parser.add_argument("--checkpoint", choices=["best", "latest"], default="latest")
  parser.add_argument("--split", default="validation")
  parser.add_argument("--batch_size", type=int, default=16, help="examples in the batch")
  parser.add_argument("--data_dir", default=None, help="replaces config.data.data_dir")
  parser.add_argument("--top", type=int, default=12, help="parameters in the gradient table")
  args = parser.parse_args()

  overrides = {"data_dir": args.data_dir} if args.data_dir else None
  saved = evaluation.SavedModel.from_checkpoint(args.workdir, prefer=args.checkpoint,
                                                data_overrides=overrides)
  config, spec, model = saved.config, saved.spec, saved.model
  variables = jax.device_get(saved.variables)
  print(f"{saved.info['checkpoint']} (step {saved.info['step']}), task {spec.name}, "
        f"layer {config.model.layer}, {config.model.num_layers} blocks")
  stats = running_stat_rows(variables.get("batch_stats", {}))
  if stats:
    print(bench_common.markdown_table(stats, list(stats[0])))
  else:
    print("no BatchNorm running statistics (norm='layer')")
  batch = first_batch(config.data, args.split, args.batch_size)
  for rows in (block_rows(model, variables,
                          batch), gradient_rows(model, variables, batch, spec.target, args.top)):
    print(bench_common.markdown_table(rows, list(rows[0])))


if __name__ == "__main__":
  main()
