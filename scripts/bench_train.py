"""Step time and examples/s of the full train step (forward, backward, optimizer) per config.

The step is the one `train.py` runs (`train_lib.jit_train_step` over a mesh of all local
devices), on random inputs of the task's shapes at the config's global batch size, so it
needs no data files. Overrides shrink a config to what a device can hold (`--set`).

With `--cost_only` nothing runs: the step is compiled for abstract inputs and XLA's count of
its FLOPs and memory traffic is printed (the backend's own count: a CPU compile estimates a
GPU-sized step without the memory to run it, but its fusions are the CPU's).

Usage:
  python scripts/bench_train.py --configs configs/listops.py:ms_ssm,configs/listops.py:s5
  python scripts/bench_train.py --cost_only --configs configs/listops.py:ms_ssm
  python scripts/bench_train.py --configs configs/default.py --set train.global_batch_size=16
  python scripts/bench_train.py --configs configs/uea.py:s5,dataset=BasicMotions,configs/default.py
Results also go to results/bench_train.json (or $BENCH_RESULTS_DIR).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import re
import sys
import time
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_common  # noqa: E402
from configs import common  # noqa: E402
from ms_ssm_jax import data, layers, model as model_lib, optim, sharding, train_lib  # noqa: E402


def load_config(spec: str):
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("bench_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def split_configs(text: str) -> list[str]:
  """`path[:arg]` specs from a comma-separated list. A comma starts a new config only where a
  `.py` path follows, so config args may hold commas themselves:
  `configs/uea.py:s5,dataset=BasicMotions,configs/default.py`."""
  return re.split(r",(?=[^,:]*\.py)", text)


def apply_overrides(config, overrides: dict[str, str]) -> None:
  """Sets `key=text` overrides (e.g. `train.global_batch_size=16`), typed like the current value."""
  for key, text in overrides.items():
    current = config
    for part in key.split("."):
      current = current[part]
    value = text.lower() == "true" if isinstance(current, bool) else type(current)(text)
    common.override(config, {key: value})


def random_batch(spec: data.TaskSpec, batch_size: int, rng: np.random.Generator) -> dict:
  batch = model_lib.dummy_batch(spec, batch_size)
  for key in ("inputs", "inputs2"):
    if key not in batch:
      continue
    if spec.input_type == "tokens":
      batch[key] = rng.integers(1, spec.vocab_size, batch[key].shape).astype(np.int32)
    else:
      batch[key] = rng.normal(size=batch[key].shape).astype(np.float32)
  if spec.target == "multilabel":
    batch["labels"] = (rng.random((batch_size, spec.num_classes)) < 0.2).astype(np.float32)
  else:
    batch["labels"] = rng.integers(0, spec.num_classes, (batch_size,)).astype(np.int32)
  batch["weights"] = np.ones((batch_size,), np.float32)
  return batch


class TrainStep(NamedTuple):
  """A config's jitted train step and what it runs on."""
  mesh: Any
  spec: data.TaskSpec
  init_state: Callable[[], Any]
  shardings: Any
  step_fn: Callable[..., Any]
  batch_size: int


def build_step(config, devices: list[jax.Device] | None = None) -> TrainStep:
  """The step `train.py` runs for `config`, over a mesh of all local (or the given) devices."""
  mesh = sharding.make_mesh(config.mesh, devices)
  batch_size = config.train.global_batch_size
  sharding.check_batch_size(mesh, batch_size, "train.global_batch_size")
  spec = data.get_task(config.data)
  model = model_lib.build_model(config.model, spec, precision=config.train.precision,
                                remat=config.train.remat)
  # The schedule's length does not change the step's cost: one long enough for any warmup.
  tx, _ = optim.make_optimizer(config.optimizer, 10**6, 100, config.freeze)
  init_state = train_lib.make_init_fn(model, tx, spec, config.train.seed)
  shardings = sharding.state_shardings(mesh, jax.eval_shape(init_state))
  step_fn = train_lib.jit_train_step(mesh, shardings, model=model, tx=tx, target=spec.target)
  return TrainStep(mesh, spec, init_state, shardings, step_fn, batch_size)


def abstract_inputs(step: TrainStep) -> tuple[Any, dict]:
  """The train state's and a batch's shapes and dtypes: what `step_fn.lower` compiles for."""
  batch = random_batch(step.spec, step.batch_size, np.random.default_rng(0))
  return jax.eval_shape(step.init_state), jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batch)


def describe(name: str, config, step: TrainStep, params: Any) -> dict:
  """The columns every row starts with."""
  return {
      "config": name, "task": step.spec.name, "layer": config.model.layer,
      "params": layers.count_parameters(params), "batch": step.batch_size, "L": step.spec.max_length
  }


def bench_config(name: str, config, steps: int) -> dict:
  step = build_step(config)
  state = jax.jit(step.init_state, out_shardings=step.shardings)()
  batch = sharding.global_batch(step.mesh,
                                random_batch(step.spec, step.batch_size, np.random.default_rng(0)),
                                step.batch_size)
  start = time.perf_counter()
  state, metrics = step.step_fn(state, batch)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - start
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = step.step_fn(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  step_ms = float(np.median(times) * 1e3)
  return {
      **describe(name, config, step, state.params), "step_ms": step_ms,
      "examples/s": step.batch_size / step_ms * 1e3, "first_step_s": compile_s,
      "loss_finite": bool(np.isfinite(float(metrics["loss_sum"])))
  }


def cost_config(name: str, config) -> dict:
  """XLA's FLOP and traffic count of one train step, compiled for abstract inputs only."""
  step = build_step(config)
  state_shapes, batch = abstract_inputs(step)
  start = time.perf_counter()
  cost = bench_common.cost_analysis(step.step_fn.lower(state_shapes, batch).compile())
  return {
      **describe(name, config, step, state_shapes.params), "GFLOP": cost.get("flops", 0.0) / 1e9,
      "traffic_GB": cost.get("bytes accessed", 0.0) / 1e9, "compile_s": time.perf_counter() - start
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--configs", required=True, help="comma-separated path[:arg] list")
  parser.add_argument("--set", action="append", default=[],
                      help="override for every config, e.g. train.global_batch_size=16")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--output_name", default="bench_train")
  parser.add_argument("--cost_only", action="store_true",
                      help="compile only and print XLA's FLOP and traffic count of the step")
  args = parser.parse_args()
  overrides = dict(item.split("=", 1) for item in args.set)
  print(f"device: {bench_common.device_description()}, jax {jax.__version__}")
  log = bench_common.RowLog(args.output_name, vars(args))
  for name in split_configs(args.configs):
    config = load_config(name)
    apply_overrides(config, overrides)
    try:
      log.add(
          cost_config(name, config) if args.cost_only else bench_config(name, config, args.steps))
    except Exception as e:  # noqa: BLE001 - a failing config (OOM, missing spec) is a result.
      log.add({"config": name, "step_ms": f"failed: {type(e).__name__}: {str(e)[:120]}"})
    # Frees the previous config's executables and buffers before the next one compiles: the
    # S6 Pathfinder step with remat fit on an H100 alone but not after the PTB-XL one.
    gc.collect()
    jax.clear_caches()
  measured = ["GFLOP", "traffic_GB", "compile_s"
             ] if args.cost_only else ["step_ms", "examples/s", "first_step_s"]
  columns = ["config", "task", "layer", "params", "batch", "L"] + measured
  print(bench_common.markdown_table(log.rows, columns))
  print("wrote", log.path)


if __name__ == "__main__":
  main()
