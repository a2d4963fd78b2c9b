"""Streaming decode speed: one recurrent step per sample against re-running the parallel pass.

For each model (MS-SSM, S5, ...), size and batch:
  step_ms        one `streaming.step` of the whole model from `streaming.prepare`d variables,
                 jitted once with the state donated (`streaming.jit_step`); the median over
                 `--steps` consecutive samples, dispatch and the wait for the logits included;
  unprepared_ms  the same step from the raw variables (`streaming.stream_step`, donated too),
                 which discretizes every layer at every sample: the cost `prepare` removes;
  prefix_pass_ms what a model without a recurrent form pays for a prediction after sample T:
                 the parallel pass (`model.apply`, eval mode) over the prefix of T = `--steps`
                 samples. It grows with T; a step does not;
  state_MB       the stream state (all blocks); `donated` the fraction of it that the compiled
                 step writes in place (input-output aliasing), 1.0 when no state is copied.

Sizes: `listops` is configs/listops.py with 8 layers of width 128 (the ListOps S5 size; the
MS-SSM config's 20 layers are cut to 8 so both models match; MS-SSM keeps N=128 per stream),
`default` is configs/default.py (2 layers of width 32, JapaneseVowels). Layers are made causal
(`bidirectional=False`): a bidirectional layer cannot stream. Random parameters and inputs.

Usage:
  python scripts/bench_decode.py --steps 512                     # every model, size, batch (GPU)
  python scripts/bench_decode.py --steps 32 --sizes default      # a quick CPU run
Results go to results/bench_decode.{json,md} (or under $BENCH_RESULTS_DIR).
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
from ms_ssm_jax import data, model as model_lib, provenance, streaming  # noqa: E402

SIZES = {
    "listops": (listops_config.get_config, {"model.num_layers": 8, "model.d_model": 128}),
    "default": (default_config.get_config, {}),
}
COLUMNS = [
    "model", "size", "batch", "step_ms", "unprepared_ms", "steps/s", "samples/s", "prefix_T",
    "prefix_pass_ms", "prefix/step", "state_MB", "donated"
]


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


def time_steps(step, weights, state, inputs: np.ndarray, warmup: int) -> float:
  """Median ms per compiled `step(weights, state, inputs_t)` over the samples of `inputs`, after
  `warmup` steps; `step` donates `state`."""
  samples = [jax.device_put(inputs[:, t]) for t in range(inputs.shape[1])]
  for sample in samples[:warmup]:
    state, logits = step(weights, state, sample)
  logits.block_until_ready()
  times = []
  for sample in samples:
    start = time.perf_counter()
    state, logits = step(weights, state, sample)
    logits.block_until_ready()
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def compile_step(step, weights, state, inputs_t: np.ndarray):
  """`step` compiled for these shapes, and the fraction of the state's bytes that it aliases
  to its outputs (updates in place)."""
  compiled = step.lower(weights, state, inputs_t).compile()
  state_bytes = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
  return compiled, compiled.memory_analysis().alias_size_in_bytes / state_bytes


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
  parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
  args = parser.parse_args()
  sizes = args.sizes.split(",")
  unknown = sorted(set(sizes) - set(SIZES))
  if unknown:
    parser.error(f"unknown sizes {unknown}; choose from {', '.join(SIZES)}")

  log = bench_common.RowLog("bench_decode", {"steps": args.steps, "command": " ".join(sys.argv)})
  start = time.perf_counter()
  for size in sizes:
    for model_name in args.models.split(","):
      model, spec, variables = build(model_name, size, args.steps)
      prepared = jax.block_until_ready(streaming.prepare(model, variables))
      prepared_step = streaming.jit_step(model)
      unprepared_step = jax.jit(functools.partial(streaming.stream_step, model), donate_argnums=1)
      for batch in [int(b) for b in args.batches.split(",")]:
        inputs = random_inputs(spec, batch, args.steps)
        state = streaming.init_stream(model, variables, batch)
        state_mb = sum(leaf.nbytes for leaf in jax.tree.leaves(state)) / 1e6
        compiled, donated = compile_step(prepared_step, prepared, state, inputs[:, 0])
        step_ms = time_steps(compiled, prepared, state, inputs, args.warmup)
        state = streaming.init_stream(model, variables, batch)
        compiled, _ = compile_step(unprepared_step, variables, state, inputs[:, 0])
        unprepared_ms = time_steps(compiled, variables, state, inputs, args.warmup)
        prefix_ms = time_prefix_pass(model, variables, inputs, args.repeats)
        log.add({
            "model": model_name, "size": size, "batch": batch, "step_ms": step_ms,
            "unprepared_ms": unprepared_ms, "steps/s": 1e3 / step_ms,
            "samples/s": batch * 1e3 / step_ms, "prefix_T": args.steps, "prefix_pass_ms": prefix_ms,
            "prefix/step": prefix_ms / step_ms, "state_MB": state_mb, "donated": donated,
            "elapsed_s": time.perf_counter() - start
        })  # compilations included
  table = bench_common.markdown_table(log.rows, COLUMNS)
  table_path = os.path.splitext(log.path)[0] + ".md"
  with open(table_path, "w") as f:
    f.write(f"`{' '.join(sys.argv)}` on {provenance.device_description()}\n\n{table}\n")
  print(f"\n{table}\n\nwritten to {log.path} and {table_path}")


if __name__ == "__main__":
  main()
