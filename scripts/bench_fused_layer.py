"""The fused MS-SSM layer kernel (`ms_ssm_jax.pallas_ms_ssm`) against the unfused path, on a GPU.

The unfused path is what `MSSSMLayer(impl="pallas")` ran before it took the fused kernel (and
still runs for bidirectional layers): the bands
(`decomposition.wavelet_bands`, `(B, L, H, S')` in memory), the steps (`(B, L, S', H)`), the
fused selective scan over them (`pallas_scan.selective_scan`, `(B, L, S', H)` outputs), then
the mixer and D in XLA. For the
selective (s6, paper's mixer) and time-invariant (s4d_real, static mixer) streams at the
issue-26 shape it prints the fused layer's error against the unfused one (output and every
gradient, float32) and the forward and forward+backward times of both, of the fused kernel at
each block shape, and of the decomposition alone. From the repository root:

    PYTHONPATH=. python scripts/bench_fused_layer.py [--batch 16 ...]
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402  (scripts/, after the path insert)

from ms_ssm_jax import pallas_ms_ssm  # noqa: E402
from ms_ssm_jax import pallas_scan  # noqa: E402
from ms_ssm_jax.ms_ssm import decomposition  # noqa: E402

STREAMS = "details+approx+raw"


def layer_inputs(key, batch, length, width, levels, kernel_size, states, selective):
  """Random parameters and inputs in the shapes `fused_layer` takes (G = levels + 2)."""
  groups = decomposition.num_streams(levels, STREAMS)
  keys = iter(jax.random.split(key, 12))
  normal = lambda *shape: jax.random.normal(next(keys), shape, jnp.float32)
  bound = (3.0 / kernel_size)**0.5
  filters = lambda: jax.random.uniform(next(keys),
                                       (levels, kernel_size, width), jnp.float32, -bound, bound)
  rates = jnp.broadcast_to(
      jnp.arange(1, groups * states + 1, dtype=jnp.float32).reshape(groups, 1, states),
      (groups, width, states))
  inputs = {
      "u": normal(batch, length, width), "phi": filters(), "psi": filters(), "mix_bias": jnp.full(
          (width, groups), 1.0 / groups), "skip": jnp.ones((width,)),
      "c_channel": normal(groups, width, states)
  }
  if selective:  # Mamba's step projection: rank ceil(H / 16), steps about [1e-3, 1e-1]
    rank = -(-width // 16)
    steps = jnp.exp(jax.random.uniform(next(keys), (width, groups), minval=-6.9, maxval=-2.3))
    inputs.update(a=-rates, dt_low=normal(batch, length, groups, rank) / width**0.5,
                  dt_proj=normal(groups, rank, width) / rank**0.5,
                  dt_bias=steps + jnp.log(-jnp.expm1(-steps)),
                  b=normal(batch, length, groups,
                           states), c=normal(batch, length, groups,
                                             states), mix_weight=0.01 * normal(width, groups))
  else:
    inputs.update(a=-0.01 * rates, b_channel=jnp.ones((groups, width, states)))
  return inputs


def fused(inputs, chunk=None, block_channels=None, num_warps=None):
  filters, _ = decomposition.stream_filters(inputs["phi"], inputs["psi"], streams=STREAMS,
                                            centered=False)
  rest = {k: v for k, v in inputs.items() if k not in ("u", "phi", "psi", "a")}
  return pallas_ms_ssm.fused_layer(inputs["u"], filters, inputs["a"], chunk=chunk,
                                   block_channels=block_channels, num_warps=num_warps, **rest)


def unfused(inputs):
  u = inputs["u"]
  bands = decomposition.wavelet_bands(u, inputs["phi"], inputs["psi"], streams=STREAMS,
                                      centered=False)
  delta = None
  if "dt_low" in inputs:
    delta = jax.nn.softplus(
        jnp.einsum("blgr,grh->blgh", inputs["dt_low"], inputs["dt_proj"]) + inputs["dt_bias"].T)
  y = pallas_scan.selective_scan(jnp.swapaxes(bands, 2, 3), delta, inputs["a"], b=inputs.get("b"),
                                 c=inputs.get("c"), b_channel=inputs.get("b_channel"),
                                 c_channel=inputs["c_channel"])
  weight = inputs["mix_bias"].T
  if "mix_weight" in inputs:
    weight = weight + inputs["mix_weight"].T * u[:, :, None]
  return jnp.sum(weight * y, axis=2) + inputs["skip"] * u


def decomposition_only(inputs):
  return decomposition.wavelet_bands(inputs["u"], inputs["phi"], inputs["psi"], streams=STREAMS,
                                     centered=False)


def value_and_grads(fn):
  """`inputs -> (sum of squares of fn, its gradients in every input)`: the timed backward."""
  return jax.value_and_grad(lambda inputs: jnp.sum(fn(inputs).astype(jnp.float32)**2))


def relative_error(x, y):
  return float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y)))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--length", type=int, default=4096)
  parser.add_argument("--width", type=int, default=128)
  parser.add_argument("--levels", type=int, default=4)
  parser.add_argument("--kernel_size", type=int, default=4)
  parser.add_argument("--states", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--blocks", default="8x32x4,8x16x4,8x8x2,8x4x1,16x8x2",
                      help="fused kernel shapes, comma-separated: chunk x block_channels x warps")
  args = parser.parse_args()
  print(jax.devices(), jax.__version__, flush=True)
  blocks = [tuple(int(v) for v in b.split("x")) for b in args.blocks.split(",") if b]
  for selective in (True, False):
    name = "s6, linear_input mixer" if selective else "s4d_real, static mixer"
    inputs = layer_inputs(jax.random.key(0), args.batch, args.length, args.width, args.levels,
                          args.kernel_size, args.states, selective)
    want = jax.jit(unfused)(inputs)
    got = jax.jit(fused)(inputs)
    want_loss, want_grads = jax.jit(value_and_grads(unfused))(inputs)
    got_loss, got_grads = jax.jit(value_and_grads(fused))(inputs)
    errors = {"z": relative_error(got, want), "loss": relative_error(got_loss, want_loss)}
    errors.update({f"d{k}": relative_error(got_grads[k], want_grads[k]) for k in want_grads})
    print(f"\n## {name}: B={args.batch} L={args.length} H={args.width} S={args.levels} "
          f"K={args.kernel_size} N={args.states}")
    print(
        "fused vs unfused, max relative error: " +
        ", ".join(f"{k} {v:.1e}" for k, v in errors.items()), flush=True)
    variants = {
        "unfused (bands + pallas_scan + XLA mixer)": unfused,
        "decomposition alone": decomposition_only, "fused, default block": fused
    }
    for chunk, channels, warps in blocks:
      variants[f"fused T={chunk} H_blk={channels} warps={warps}"] = (
          lambda i, c=chunk, h=channels, w=warps: fused(i, c, h, w))
    print("| variant | fwd ms | fwd+bwd ms |")
    for label, fn in variants.items():
      try:
        forward = bench_common.time_fn(fn, inputs, repeats=args.repeats)
        backward = bench_common.time_fn(value_and_grads(fn), inputs, repeats=args.repeats)
        print(f"| {label} | {forward.median_ms:.3f} | {backward.median_ms:.3f} |", flush=True)
      except Exception as e:  # noqa: BLE001 - report a block shape that fails to compile, go on
        print(f"| {label} | failed: {type(e).__name__}: {str(e)[:300]} | |", flush=True)


if __name__ == "__main__":
  main()
