"""A Pallas kernel for the complex diagonal recurrence of S5 and LRU: `x_t = a * x_{t-1} + b_t`.

`a` `(P,)` complex decays (time-invariant), `b` `(B, L, P)` complex inputs. Complex numbers
travel as real pairs: `a` as `(2, P)`, `b` and `x` as `(B, 2, L, P)`, [real, imaginary] on the
pair axis. The layers produce `b` and read `x` in that layout with real matmuls (Pallas has no
complex type, and `lax.bitcast_convert_type` does not view complex64 as float32).

Reduce, then scan: three passes, parallel over the batch, blocks of `block_states` states and
segments of `segment` steps (a multiple of the `chunk` of T steps a loop iteration unrolls):
  1. kernel `segment_totals`: every segment from a zero state; its last state.
  2. carries (plain JAX, `(B, L / segment, P)` values): the state entering segment k,
     `e_k = a^segment e_{k-1} + total_{k-1}` (an associative scan over the segments).
  3. kernel `segment_scan`: every segment again from its entry state, writing `x`.
Memory traffic: `b` read twice and `x` written once, 1.5x the floor of one read and one write;
a sequence of one segment skips passes 1-2 (1x). No program holds more than one state block.

Backward (`jax.custom_vjp`): the adjoint `g_t = conj(a) g_{t+1} + dx_t` is the same recurrence
run the other way with `conj(a)` (the same kernels); `db = g` and
`da = sum_t conj(x_{t-1}) g_t` (one fused XLA reduction over the saved outputs).

The kernels use generic Pallas ops only (ref loads and stores, `fori_loop`, elementwise math);
Triton compiles them on GPUs, the interpreter runs them on the CPU (the tests).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from ms_ssm_jax import pallas_scan
from ms_ssm_jax import scan
from ms_ssm_jax import target

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Options:
  """Static choices of the kernels.

  Attributes:
    chunk: T, steps one loop iteration loads at once and unrolls.
    segment: steps per segment, a multiple of T (the sequence is padded to whole segments).
    block_states: states per program, a power of 2.
    num_warps: Triton warps per program (GPU only).
    interpret: run the kernels in the Pallas interpreter (CPU).
  """
  chunk: int
  segment: int
  block_states: int
  num_warps: int
  interpret: bool


# Not yet tuned on a GPU (scripts/bench_layers.py --section scan sweeps them).
DEFAULT_CHUNK = 16
DEFAULT_SEGMENT = 256
DEFAULT_BLOCK_STATES = 32


def _walk(a_ref, b_ref, x_ref, state: tuple[Array, Array], chunk: int, reverse: bool):
  """Runs the recurrence over one segment `b_ref` `(2, S, Pb)` from `state` (re, im) `(Pb,)`.

  Writes every state to `x_ref` when it is given; returns the last state.
  """
  a_re, a_im = a_ref[0], a_ref[1]
  num_chunks = b_ref.shape[1] // chunk

  def chunk_body(i, x):
    index = num_chunks - 1 - i if reverse else i
    offsets = range(chunk - 1, -1, -1) if reverse else range(chunk)
    steps = [index * chunk + s for s in offsets]
    drives = [(b_ref[0, t], b_ref[1, t]) for t in steps]  # every load before the math
    x_re, x_im = x
    for t, (b_re, b_im) in zip(steps, drives):
      x_re, x_im = a_re * x_re - a_im * x_im + b_re, a_re * x_im + a_im * x_re + b_im
      if x_ref is not None:
        x_ref[0, t] = x_re
        x_ref[1, t] = x_im
    return x_re, x_im

  return jax.lax.fori_loop(0, num_chunks, chunk_body, state)


def _totals_kernel(a_ref, b_ref, total_ref, *, chunk: int, reverse: bool):
  zeros = jnp.zeros(a_ref.shape[1:], b_ref.dtype)
  total_re, total_im = _walk(a_ref, b_ref, None, (zeros, zeros), chunk, reverse)
  total_ref[0] = total_re
  total_ref[1] = total_im


def _scan_kernel(a_ref, b_ref, entry_ref, x_ref, *, chunk: int, reverse: bool):
  _walk(a_ref, b_ref, x_ref, (entry_ref[0], entry_ref[1]), chunk, reverse)


def _call(kernel, options: Options, reverse: bool, a: Array, b: Array, *extra: Array,
          out_shape: jax.ShapeDtypeStruct, out_spec: str, name: str) -> Array:
  """One pallas_call over the grid (batch, state block, segment) of padded `b` `(B, 2, Lp, Pp)`."""
  batch, _, length, states = b.shape
  sq = pl.squeezed
  grid = (batch, states // options.block_states, length // options.segment)
  specs = {
      "a":
          pl.BlockSpec((2, options.block_states), lambda i, p, k: (0, p)),
      "sequence":
          pl.BlockSpec((sq, 2, options.segment, options.block_states), lambda i, p, k:
                       (i, 0, k, p)),
      "per_segment":
          pl.BlockSpec((sq, sq, 2, options.block_states), lambda i, p, k: (i, k, 0, p)),
  }
  in_specs = [specs["a"], specs["sequence"]] + [specs["per_segment"]] * len(extra)
  return pl.pallas_call(
      functools.partial(kernel, chunk=options.chunk, reverse=reverse), grid=grid, in_specs=in_specs,
      out_specs=specs[out_spec], out_shape=out_shape, interpret=options.interpret,
      compiler_params=pallas_scan.compiler_params(options.num_warps,
                                                  options.interpret), name=name)(a, b, *extra)


def _entry_states(options: Options, reverse: bool, a: Array, b: Array) -> Array:
  """`(B, K, 2, Pp)`: the state entering each of the K segments (zero for the first one)."""
  batch, _, length, states = b.shape
  num_segments = length // options.segment
  totals = _call(_totals_kernel, options, reverse, a, b, out_shape=jax.ShapeDtypeStruct(
      (batch, num_segments, 2, states), b.dtype), out_spec="per_segment",
                 name="recurrence_segment_totals")
  to_complex = lambda pair: jax.lax.complex(pair[..., 0, :], pair[..., 1, :])
  segment_decay = to_complex(a)**options.segment  # (Pp,)
  ends = scan.linear_recurrence(segment_decay, to_complex(totals), reverse=reverse)
  zeros = jnp.zeros_like(ends[:, :1])
  entries = (jnp.concatenate([ends[:, 1:], zeros], axis=1)
             if reverse else jnp.concatenate([zeros, ends[:, :-1]], axis=1))
  return jnp.stack([entries.real, entries.imag], axis=2)


def _padded_recurrence(options: Options, reverse: bool, a: Array, b: Array) -> Array:
  """`x` `(B, 2, Lp, Pp)` for padded `a` `(2, Pp)` and `b` `(B, 2, Lp, Pp)`."""
  batch, _, length, states = b.shape
  if length == options.segment:
    entries = jnp.zeros((batch, 1, 2, states), b.dtype)
  else:
    entries = _entry_states(options, reverse, a, b)
  return _call(_scan_kernel, options, reverse, a, b, entries,
               out_shape=jax.ShapeDtypeStruct(b.shape, b.dtype), out_spec="sequence",
               name="recurrence_segment_scan")


def _shift_one_step(x: Array, reverse: bool) -> Array:
  """`x_{t-1}` at step t (`x_{t+1}` when reverse), zero beyond the ends; x `(B, 2, L, P)`."""
  zeros = jnp.zeros_like(x[:, :, :1])
  if reverse:
    return jnp.concatenate([x[:, :, 1:], zeros], axis=2)
  return jnp.concatenate([zeros, x[:, :, :-1]], axis=2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _recurrence(options: Options, reverse: bool, a: Array, b: Array) -> Array:
  return _padded_recurrence(options, reverse, a, b)


def _recurrence_forward(options, reverse, a, b):
  x = _padded_recurrence(options, reverse, a, b)
  return x, (a, x)


def _recurrence_backward(options, reverse, residuals, dx):
  a, x = residuals
  conj_a = a * jnp.array([[1], [-1]], a.dtype)
  g = _padded_recurrence(options, not reverse, conj_a, dx)
  x_prev = _shift_one_step(x, reverse)
  (x_re, x_im), (g_re, g_im) = jnp.unstack(x_prev, axis=1), jnp.unstack(g, axis=1)
  da = jnp.stack([
      jnp.sum(x_re * g_re + x_im * g_im, axis=(0, 1)),
      jnp.sum(x_re * g_im - x_im * g_re, axis=(0, 1))
  ])
  return da, g


_recurrence.defvjp(_recurrence_forward, _recurrence_backward)


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def linear_recurrence(a: Array, b: Array, *, reverse: bool = False, chunk: int = DEFAULT_CHUNK,
                      segment: int = DEFAULT_SEGMENT, block_states: int = DEFAULT_BLOCK_STATES,
                      num_warps: int = 1, interpret: bool | None = None) -> Array:
  """States `x` `(B, 2, L, P)` of `x_t = a * x_{t-1} + b_t` from zero, differentiable.

  Args:
    a: `(2, P)` real and imaginary parts of the decays.
    b: `(B, 2, L, P)` real and imaginary parts of the inputs (float32; float64 interpreted).
    reverse: run from the last step to the first (`x_t = a * x_{t+1} + b_t`).
    chunk: T, steps loaded and unrolled at once.
    segment: steps per segment (rounded up to a multiple of T; a shorter sequence is one
      segment).
    block_states: states per program, a power of 2 (capped at P rounded up to a power of 2).
    num_warps: Triton warps per program (GPU).
    interpret: run in the Pallas interpreter; default: on the CPU backend only.
  """
  if a.ndim != 2 or a.shape[0] != 2:
    raise ValueError(f"a must have shape (2, P) (real and imaginary parts); got {a.shape}")
  if b.ndim != 4 or b.shape[1] != 2 or b.shape[3] != a.shape[1]:
    raise ValueError(f"b must have shape (B, 2, L, P) with P = {a.shape[1]}; got {b.shape}")
  if jnp.iscomplexobj(a) or jnp.iscomplexobj(b):
    raise ValueError("a and b must be real pairs (real and imaginary parts on their axis of 2), "
                     "not complex arrays")
  if chunk < 1 or block_states < 1 or block_states & (block_states - 1):
    raise ValueError(f"chunk must be >= 1 and block_states a power of 2; got {chunk}, "
                     f"{block_states}")
  length, states = b.shape[2], b.shape[3]
  block_states = min(block_states, pallas_scan.next_power_of_2(states))
  segment = min(_round_up(max(segment, 1), chunk), _round_up(length, chunk))
  padded_length, padded_states = _round_up(length, segment), _round_up(states, block_states)
  options = Options(chunk=chunk, segment=segment, block_states=block_states, num_warps=num_warps,
                    interpret=target.backend() == "cpu" if interpret is None else interpret)
  dtype = jnp.promote_types(jnp.result_type(a, b), jnp.float32)
  a = jnp.pad(a.astype(dtype), ((0, 0), (0, padded_states - states)))
  b = jnp.pad(b.astype(dtype),
              ((0, 0), (0, 0), (0, padded_length - length), (0, padded_states - states)))
  return _recurrence(options, reverse, a, b)[:, :, :length, :states]
