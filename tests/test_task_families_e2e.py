"""Each task family trains end to end through `train_lib.train_and_evaluate` on the CPU.

One tiny run per family: generated LRA ListOps, generated Pathfinder-32, an image task
(sMNIST, from a tiny prepared tfds fixture) and a shipped UEA time-series problem. Each run
trains a one-layer, 8-wide S5 for a few steps, evaluates on validation and writes
results.json and the metrics files.
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pytest

from ms_ssm_jax import train_lib
from tests.data.test_text_images import _png, _prepare
from tests.test_train import persistent_compilation_cache  # noqa: F401  (autouse)
from tests.test_train import read_csv, tiny_config

_NUM_STEPS = 3


def _mnist_dir(root: pathlib.Path) -> pathlib.Path:
  """A tiny prepared tfds `mnist` (array_record) under `root`."""
  rng = np.random.default_rng(0)

  def mnist(n):
    pixels = rng.integers(0, 256, (n, 28, 28), np.uint8)
    return [{"image": _png(pixels[i]), "label": i % 10} for i in range(n)]

  _prepare("mnist", root, {"train": mnist(24), "test": mnist(8)})
  return root


def _data_updates(task: str, data_dir: pathlib.Path) -> dict:
  if task == "listops":
    return {
        "data.data_dir": str(data_dir), "data.num_train": 32, "data.num_validation": 8,
        "data.num_test": 8, "data.min_tree_length": 10, "data.max_tree_length": 40,
        "data.max_length": 48
    }
  if task == "pathfinder32":
    return {
        "data.data_dir": str(data_dir), "data.num_train": 16, "data.num_validation": 8,
        "data.num_test": 8
    }
  if task == "smnist":
    return {"data.data_dir": str(_mnist_dir(data_dir)), "data.num_validation": 8}
  if task == "basic_motions":
    return {"data.data_dir": str(data_dir)}
  raise ValueError(task)


# Pathfinder-32 and sMNIST with -m slow: ListOps covers generated tasks, tests/data the
# Pathfinder generator and the image pipeline.
@pytest.mark.parametrize("task", [
    "listops",
    pytest.param("pathfinder32", marks=pytest.mark.slow),
    pytest.param("smnist", marks=pytest.mark.slow), "basic_motions"
])
def test_task_family_trains_end_to_end(task, tmp_path):
  data_dir = tmp_path / "data"
  data_dir.mkdir()
  workdir = tmp_path / "run"
  config = tiny_config(
      task,
      "s5",
      **{
          # FFT convolution, layer norm and no dropout: the cheapest programs to compile, which
          # is where almost all of each run's time goes.
          "model.layer_config.impl": "conv",
          "model.norm": "layer",
          "model.dropout": 0.0,
          "optimizer.warmup_steps": 1,
          "train.global_batch_size": 8,
          "train.eval_batch_size": 8,
          "train.num_steps": _NUM_STEPS,
          "train.log_every": _NUM_STEPS,
          "train.eval_every": 0,
          "train.checkpoint_every": 0,
          "train.eval_splits": ("validation",),
          **_data_updates(task, data_dir)
      })

  train_lib.train_and_evaluate(config, workdir)

  results = json.loads((workdir / "results.json").read_text())
  assert results["num_steps"] == _NUM_STEPS
  validation = results["final"]["validation"]
  assert math.isfinite(validation["loss"])
  assert 0.0 <= validation["accuracy"] <= 1.0
  train_rows = read_csv(workdir / "metrics" / "train.csv")
  assert train_rows and int(train_rows[-1]["step"]) == _NUM_STEPS
  assert all(math.isfinite(float(row["loss"])) for row in train_rows)
  eval_rows = read_csv(workdir / "metrics" / "eval.csv")
  assert [row["split"] for row in eval_rows] == ["validation"]
  assert 0.0 <= float(eval_rows[-1]["accuracy"]) <= 1.0
  assert json.loads((workdir / "config.json").read_text())["data"]["name"] == task
