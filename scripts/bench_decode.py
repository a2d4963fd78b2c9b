"""Streaming decode speed: one recurrent step per sample against re-running the parallel pass.

For each model (MS-SSM, S5, ...), size and batch: the latency of one `streaming.stream_step`
(a jitted step of the whole model, measured over `--steps` consecutive samples, dispatch
included) and its steps/s; and the latency of what a model without a recurrent form must do
for a prediction after sample T: the parallel pass (`model.apply`, eval mode) over the whole
prefix of T = `--steps` samples. The parallel pass's cost grows with T; the step's does not.

Sizes: `listops` is configs/listops.py with 8 layers of width 128 (the ListOps S5 size; the
MS-SSM config's 20 layers are cut to 8 so both models match), `default` is
configs/default.py (2 layers of width 32, JapaneseVowels). Layers are made causal
(`bidirectional=False`): a bidirectional layer cannot stream. Random parameters and inputs.

Usage:
  python scripts/bench_decode.py                                  # every model, size, batch
  python scripts/bench_decode.py --steps 32 --sizes default       # a quick CPU run
Results also go to results/bench_decode.json (or $BENCH_RESULTS_DIR).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_common  # noqa: E402
from configs import common  # noqa: E402
from configs import default as default_config  # noqa: E402
from configs import listops as listops_config  # noqa: E402
from ms_ssm_jax import data, model as model_lib, streaming  # noqa: E402

SIZES = {
    "listops": (listops_config.get_config, {"model.num_layers": 8, "model.d_model": 128}),
    "default": (default_config.get_config, {}),
}
COLUMNS = ["model", "size", "batch", "step_ms", "steps/s", "samples/s", "prefix_T",
           "prefix_pass_ms", "prefix/step"]


def build(model_name: str, size: str, steps: int):
  """The causal model, its task spec (length `steps`) and random variables."""
  get_config, overrides = SIZES[size]
  config = get_config(model_name)
  common.override(config, overrides)
  if "bidirectional" in config.model.layer_config:
    config.model.layer_config.bidirectional = False
  spec = data.get_task(config.data)
  model = model_lib.build_model(config.model, spec, precision=config.train.precision)
  variables = jax.jit(lambda key: model.init(key, model_lib.dummy_batch(spec, 1, steps)))(
      jax.random.key(0))
  return model, spec, variables


def random_inputs(spec: data.TaskSpec, batch: int, steps: int) -> np.ndarray:
  rng = np.random.default_rng(0)
  if spec.input_type == "tokens":
    return rng.integers(1, spec.vocab_size, (batch, steps)).astype(np.int32)
  return rng.normal(size=(batch, steps, spec.num_channels)).astype(np.float32)


def time_steps(model, variables, inputs: np.ndarray) -> float:
  """Median ms per `stream_step` over the samples of `inputs`, after one warm-up pass."""
  step = jax.jit(functools.partial(streaming.stream_step, model), donate_argnums=(1,))
  samples = [jax.device_put(inputs[:, t]) for t in range(inputs.shape[1])]
  times = []
  for _ in range(2):  # the first pass compiles and warms up
    state = streaming.init_stream(model, variables, inputs.shape[0])
    times = []
    for sample in samples:
      start = time.perf_counter()
      state, logits = step(variables, state, sample)
      logits.block_until_ready()
      times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def time_prefix_pass(model, variables, inputs: np.ndarray, repeats: int) -> float:
  """ms of the eval-mode parallel pass over the whole prefix `inputs`."""
  batch = {"inputs": inputs, "lengths": np.full((inputs.shape[0],), inputs.shape[1], np.int32)}
  timing = bench_common.time_fn(lambda v, b: model.apply(v, b, train=False), variables, batch,
                                repeats=repeats, warmup=1)
  return timing.median_ms


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="ms_ssm,s5", help="comma-separated configs/common.py "
                      "models")
  parser.add_argument("--sizes", default="listops,default", help=f"of {', '.join(SIZES)}")
  parser.add_argument("--batches", default="1,64")
  parser.add_argument("--steps", type=int, default=512,
                      help="samples decoded, and the prefix length T of the parallel pass")
  parser.add_argument("--repeats", type=int, default=5, help="timed parallel passes")
  args = parser.parse_args()
  sizes = args.sizes.split(",")
  unknown = sorted(set(sizes) - set(SIZES))
  if unknown:
    parser.error(f"unknown sizes {unknown}; choose from {', '.join(SIZES)}")

  log = bench_common.RowLog("bench_decode", {"steps": args.steps, "command": " ".join(sys.argv)})
  for size in sizes:
    for model_name in args.models.split(","):
      model, spec, variables = build(model_name, size, args.steps)
      for batch in [int(b) for b in args.batches.split(",")]:
        inputs = random_inputs(spec, batch, args.steps)
        step_ms = time_steps(model, variables, inputs)
        prefix_ms = time_prefix_pass(model, variables, inputs, args.repeats)
        log.add({"model": model_name, "size": size, "batch": batch, "step_ms": step_ms,
                 "steps/s": 1e3 / step_ms, "samples/s": batch * 1e3 / step_ms,
                 "prefix_T": args.steps, "prefix_pass_ms": prefix_ms,
                 "prefix/step": prefix_ms / step_ms})
  print(f"\n{bench_common.markdown_table(log.rows, COLUMNS)}\n\nwritten to {log.path}")


if __name__ == "__main__":
  main()
