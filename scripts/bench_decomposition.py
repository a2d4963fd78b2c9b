"""Formulations of the wavelet decomposition, timed against an S5 layer of the same width.

Issue 26 part 4: the cascade (`decomposition.wavelet_bands`, S levels of K-tap dilated
convolutions, custom gradient) cost 3.7 ms forward+backward on an H100 at B=16, L=4096, H=128,
S=4, 2.5x an S5 layer; the target is 0.25x. Candidates, all with the same outputs:

  cascade                     today's: level by level, gradient by the transposed cascade
  composed, cascade grad      the S' composed filters (`filterbank_filters`, up to
                              1 + (K-1)(2^S-1) taps) applied in one pass that reads x once and
                              writes the bands; gradient by the transposed cascade
  composed                    the same forward; gradient in one pass over the band cotangents
                              for dx, and one tap sum per composed tap for the filters (mapped
                              back to phi, psi by autodiff of the filter composition)

For each it prints the forward and forward+backward times, XLA's flops and bytes, the error
against the cascade, and the ratio to the S5 layer. From the repository root:

    PYTHONPATH=. python scripts/bench_decomposition.py
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402  (scripts/, after the path insert)

from ms_ssm_jax.ms_ssm import decomposition  # noqa: E402
from ms_ssm_jax.ssm.s5 import S5  # noqa: E402

STREAMS = "details+approx+raw"


def _composed_forward(x, filters):
  """Band j = `sum_m filters[j][m] x[t - m]`, all bands from one padded copy of x."""
  length, before = x.shape[1], max(f.shape[0] for f in filters) - 1
  padded = jnp.pad(x, [(0, 0), (before, 0), (0, 0)])
  bands = []
  for f in filters:
    out = padded[:, before:before + length] * f[0]
    for m in range(1, f.shape[0]):
      out = out + padded[:, before - m:before - m + length] * f[m]
    bands.append(out)
  return jnp.stack(bands, axis=-1)


@jax.custom_vjp
def composed_bands(x, filters):
  return _composed_forward(x, filters)


def _composed_fwd(x, filters):
  return _composed_forward(x, filters), (x, filters)


def _composed_bwd(residuals, g):
  x, filters = residuals
  length, before = x.shape[1], max(f.shape[0] for f in filters) - 1
  dx = None
  for j, f in enumerate(filters):  # dx[t] = sum_j sum_m f_j[m] g_j[t + m]
    padded_g = jnp.pad(g[..., j], [(0, 0), (0, f.shape[0] - 1), (0, 0)])
    for m in range(f.shape[0]):
      term = padded_g[:, m:m + length] * f[m]
      dx = term if dx is None else dx + term
  padded = jnp.pad(x, [(0, 0), (before, 0), (0, 0)])
  dtype = jnp.promote_types(x.dtype, jnp.float32)
  dfilters = tuple(
      jnp.stack([
          jnp.sum(padded[:, before - m:before - m + length] * g[..., j], axis=(0, 1), dtype=dtype)
          for m in range(f.shape[0])
      ]).astype(f.dtype)
      for j, f in enumerate(filters))
  return dx, dfilters


composed_bands.defvjp(_composed_fwd, _composed_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def composed_with_cascade_grad(x, phi, psi, lookaheads):
  filters, _ = decomposition.stream_filters(phi, psi, streams=STREAMS, centered=False)
  return _composed_forward(x, filters)


def _hybrid_fwd(x, phi, psi, lookaheads):
  return composed_with_cascade_grad(x, phi, psi, lookaheads), (x, phi, psi)


def _hybrid_bwd(lookaheads, residuals, g):
  # pylint: disable-next=protected-access
  return decomposition._cascade_bwd(STREAMS, lookaheads, residuals, g)


composed_with_cascade_grad.defvjp(_hybrid_fwd, _hybrid_bwd)


def variants(levels: int, kernel_size: int):
  lookaheads = decomposition.stream_lookaheads(levels, kernel_size, STREAMS, False)

  def composed(x, phi, psi):
    filters, _ = decomposition.stream_filters(phi, psi, streams=STREAMS, centered=False)
    return composed_bands(x, tuple(filters))

  return {
      "cascade":
          lambda x, phi, psi: decomposition.wavelet_bands(x, phi, psi, streams=STREAMS, centered=
                                                          False),
      "composed, cascade grad":
          lambda x, phi, psi: composed_with_cascade_grad(x, phi, psi, lookaheads),
      "composed":
          composed,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--length", type=int, default=4096)
  parser.add_argument("--width", type=int, default=128)
  parser.add_argument("--levels", type=int, default=4)
  parser.add_argument("--kernel_size", type=int, default=4)
  parser.add_argument("--s5_state", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=20)
  args = parser.parse_args()
  print(jax.devices(), jax.__version__, flush=True)
  keys = jax.random.split(jax.random.key(0), 4)
  x = jax.random.normal(keys[0], (args.batch, args.length, args.width))
  shape = (args.levels, args.kernel_size, args.width)
  phi, psi = (decomposition.init_filters(k, shape) for k in keys[1:3])
  s5 = S5(d_model=args.width, state_size=args.s5_state)
  s5_params = s5.init(keys[3], x[:1, :16])
  s5_loss = jax.grad(lambda p, x: jnp.sum(s5.apply(p, x)**2), argnums=(0, 1))
  s5_ms = bench_common.time_fn(s5_loss, s5_params, x, repeats=args.repeats).median_ms
  print(f"B={args.batch} L={args.length} H={args.width} S={args.levels} K={args.kernel_size}; "
        f"S5 layer (P={args.s5_state}) forward+backward {s5_ms:.3f} ms")
  print("| variant | fwd ms | fwd+bwd ms | / S5 | fwd+bwd GFLOP | fwd+bwd GB | max rel. error |")
  reference = None
  for name, fn in variants(args.levels, args.kernel_size).items():
    # A loss that needs the bands themselves: the forward runs before the backward.
    loss = jax.grad(lambda *a, fn=fn: 0.5 * jnp.sum(fn(*a)**2), argnums=(0, 1, 2))
    results = (jax.jit(fn)(x, phi, psi),) + jax.jit(loss)(x, phi, psi)
    reference = reference or results
    error = max(
        float(jnp.max(jnp.abs(r - w)) / jnp.max(jnp.abs(w))) for r, w in zip(results, reference))
    forward = bench_common.time_fn(fn, x, phi, psi, repeats=args.repeats)
    backward = bench_common.time_fn(loss, x, phi, psi, repeats=args.repeats)
    print(
        f"| {name} | {forward.median_ms:.3f} | {backward.median_ms:.3f} | "
        f"{backward.median_ms / s5_ms:.2f} | {(backward.flops or 0) / 1e9:.2f} | "
        f"{(backward.bytes_accessed or 0) / 1e9:.2f} | {error:.1e} |", flush=True)


if __name__ == "__main__":
  main()
