"""Speed and memory of the recurrence and of the sequence layers; prints markdown tables.

Sections:
  scan    the bare recurrence `x_t = a_t x_{t-1} + b_t` (complex64) against the bandwidth
          floor: read `b` once and write `x` once (16 bytes per element; 24 when `a` varies
          in time), at the copy bandwidth measured in the same run.
  layers  forward and forward+backward time, tokens/s and memory of each layer at matched
          width H and total state per step.

Usage:
  python scripts/bench_layers.py --section scan --lengths 1024,4096,16384,65536
  python scripts/bench_layers.py --section layers --lengths 1024,4096
Results also go to results/bench_<section>.json (or $BENCH_RESULTS_DIR).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_common  # noqa: E402
from ms_ssm_jax import layers, scan  # noqa: E402


def _sequential(a, b):
  """Reference point: a step-by-step `lax.scan` over time (what the layers must not do)."""

  def step(x, ab):
    x = ab[0] * x + ab[1]
    return x, x

  a_t = jnp.broadcast_to(a, b.shape)
  _, xs = jax.lax.scan(step, jnp.zeros_like(b[:, 0]), (jnp.swapaxes(a_t, 0, 1), jnp.swapaxes(b, 0, 1)))
  return jnp.swapaxes(xs, 0, 1)


def bench_scan(lengths: list[int], batch: int, states: int, repeats: int,
               block_sizes: list[int]) -> list[dict]:
  bandwidth = bench_common.copy_bandwidth_gbs()
  print(f"copy bandwidth: {bandwidth:.0f} GB/s (read + write)")
  rows = []
  rng = np.random.default_rng(0)
  for length in lengths:
    shape = (batch, length, states)
    b = jnp.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape), jnp.complex64)
    a_inv = jnp.asarray(0.99 * np.exp(1j * rng.uniform(-1, 1, states)), jnp.complex64)
    a_var = jnp.broadcast_to(a_inv, shape) * jnp.asarray(rng.uniform(0.9, 1.0, shape), jnp.float32)
    variants = {
        "associative, a (P,)": (scan.linear_recurrence, a_inv, 16),
        "associative, a (B,L,P)": (scan.linear_recurrence, a_var, 24),
        "sequential lax.scan, a (P,)": (_sequential, a_inv, 16),
    }
    for block in block_sizes:
      blocked = functools.partial(scan.linear_recurrence, block_size=block)
      variants[f"blocked T={block}, a (P,)"] = (blocked, a_inv, 16)
      variants[f"blocked T={block}, a (B,L,P)"] = (blocked, a_var, 24)
    for name, (fn, a, bytes_per_element) in variants.items():
      timing = bench_common.time_fn(fn, a, b, repeats=repeats)
      floor_ms = bytes_per_element * b.size / (bandwidth * 1e9) * 1e3
      rows.append({
          "L": length, "B": batch, "P": states, "variant": name,
          "ms": timing.median_ms, "floor_ms": floor_ms,
          "fraction_of_floor": floor_ms / timing.median_ms,
          "temp_GB": None if timing.temp_bytes is None else timing.temp_bytes / 1e9,
      })
      print(bench_common.markdown_table(rows[-1:], list(rows[-1])), flush=True)
  return rows


def layer_suite(mimo_state: int, siso_state: int) -> dict[str, tuple[str, dict]]:
  """Layers at matched total state: MIMO ones carry `mimo_state` floats per step (S5 with
  P = mimo_state under conjugate symmetry, LRU with mimo_state/2 complex states, MS-SSM with
  per-stream S5 sharing P = mimo_state), SISO ones `siso_state` states per channel (S4D-real,
  MS-SSM with S4D-real streams splitting them, S6)."""
  suite = {
      "s5": ("s5", {"state_size": mimo_state}),
      "lru": ("lru", {"state_size": mimo_state // 2}),
      "s4d (real)": ("s4d", {"state_size": siso_state, "a_init": "real"}),
      "s6": ("s6", {"state_size": siso_state}),
  }
  for levels in (1, 2, 4):
    streams = levels + 2
    suite[f"ms_ssm s5 x{streams} streams"] = (
        "ms_ssm", {"num_levels": levels, "backbone": "s5",
                   "total_state": mimo_state // (2 * streams) * 2 * streams})
    suite[f"ms_ssm s4d_real x{streams} streams"] = (
        "ms_ssm", {"num_levels": levels, "backbone": "s4d_real",
                   "total_state": siso_state // streams * streams})
  return suite


def bench_layers(lengths: list[int], tokens: int, width: int, mimo_state: int, siso_state: int,
                 repeats: int, only: list[str]) -> list[dict]:
  rows = []
  rng = jax.random.PRNGKey(0)
  for name, (layer_name, overrides) in layer_suite(mimo_state, siso_state).items():
    if only and not any(o in name for o in only):
      continue
    cfg = layers.default_layer_config(layer_name)
    cfg.update(overrides)
    layer = layers.make_layer(layer_name, width, cfg)
    for length in lengths:
      batch = max(1, tokens // length)
      u = jax.random.normal(rng, (batch, length, width), jnp.float32)
      params = layer.init(rng, u[:1, :16])
      forward = lambda p, u: layer.apply(p, u)
      loss_grad = jax.grad(lambda p, u: jnp.sum(layer.apply(p, u) ** 2), argnums=(0, 1))
      row = {"layer": name, "L": length, "B": batch, "H": width,
             "floats/step": layer.state_counts().carried_floats,
             "params": layers.count_parameters(params)}
      for label, fn in (("fwd", forward), ("fwd+bwd", loss_grad)):
        try:
          timing = bench_common.time_fn(fn, params, u, repeats=repeats)
          row[f"{label}_ms"] = timing.median_ms
          row[f"{label}_temp_GB"] = None if timing.temp_bytes is None else timing.temp_bytes / 1e9
        except Exception as e:  # noqa: BLE001 - out of memory is a result, reported as such.
          row[f"{label}_ms"] = f"failed: {type(e).__name__}"
      if isinstance(row.get("fwd+bwd_ms"), float):
        row["tokens/s (fwd+bwd)"] = batch * length / (row["fwd+bwd_ms"] * 1e-3)
      rows.append(row)
      print(bench_common.markdown_table([row], list(row)), flush=True)
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--section", choices=["scan", "layers"], default="scan")
  parser.add_argument("--tokens", type=int, default=65536, help="layers: B = tokens // L")
  parser.add_argument("--width", type=int, default=128, help="layers: H")
  parser.add_argument("--mimo_state", type=int, default=256)
  parser.add_argument("--siso_state", type=int, default=64)
  parser.add_argument("--only", default="", help="layers: comma-separated name filters")
  parser.add_argument("--lengths", default="1024,4096,16384,65536")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--states", type=int, default=256, help="P, complex states per step")
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--block_sizes", default="8,16,32", help="blocked-scan variants to time")
  args = parser.parse_args()
  lengths = [int(v) for v in args.lengths.split(",")]
  print(f"device: {bench_common.device_description()}, jax {jax.__version__}")
  if args.section == "scan":
    block_sizes = [int(v) for v in args.block_sizes.split(",") if v]
    rows = bench_scan(lengths, args.batch, args.states, args.repeats, block_sizes)
    columns = ["L", "B", "P", "variant", "ms", "floor_ms", "fraction_of_floor", "temp_GB"]
  else:
    only = [v for v in args.only.split(",") if v]
    rows = bench_layers(lengths, args.tokens, args.width, args.mimo_state, args.siso_state,
                        args.repeats, only)
    columns = ["layer", "L", "B", "H", "floats/step", "params", "fwd_ms", "fwd+bwd_ms",
               "fwd+bwd_temp_GB", "tokens/s (fwd+bwd)"]
  print(bench_common.markdown_table(rows, columns))
  print("wrote", bench_common.write_results(f"bench_{args.section}", rows, vars(args)))


if __name__ == "__main__":
  main()
