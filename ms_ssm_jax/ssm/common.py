"""Pieces shared by the baseline layers: input checks, padding masks, the scan dispatch.

Every layer evaluates its recurrence through `run_recurrence`, which calls
`ms_ssm_jax.scan.linear_recurrence` (all states at once) or, when a chunk size is set,
`ms_ssm_jax.scan.chunked_linear_recurrence` (only `(B, T, P)` states alive at once).
Time-invariant layers with `mode="conv"` evaluate the same outputs as FFT convolutions with
the kernels `C diag(lam_bar^l) B_bar` instead (`lti_convolution`, `ms_ssm_jax.fft_conv`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from ms_ssm_jax import fft_conv
from ms_ssm_jax import scan

Array = jax.Array
PyTree = Any

# How a time-invariant layer is evaluated: its recurrence by the scan, or its kernel by the FFT.
MODES: tuple[str, ...] = ("scan", "conv")


@dataclasses.dataclass(frozen=True)
class StateCounts:
  """How much state a layer carries, for the parameter/state report of a model.

  Attributes:
    per_channel: states that each channel's output is read from (N for SISO layers, P for
      S5 whose states are shared by all channels), as counted in the layer's paper.
    total: distinct states in the layer (H N for SISO layers, P for S5), one direction.
    carried_floats: real numbers carried per sequence and step, over both directions of a
      bidirectional layer (a complex state counts 2).
  """
  per_channel: int
  total: int
  carried_floats: int


def check_inputs(u: Array, lengths: Array | None, d_model: int) -> None:
  """Raises a ValueError unless `u` is `(B, L, d_model)` and `lengths` is `(B,)` or None."""
  if u.ndim != 3 or u.shape[-1] != d_model:
    raise ValueError(f"expected inputs of shape (B, L, H={d_model}); got {u.shape}")
  if lengths is not None and lengths.shape != u.shape[:1]:
    raise ValueError(f"lengths must have shape (B,) = {u.shape[:1]}; got {lengths.shape}")


def zero_beyond_lengths(u: Array, lengths: Array | None) -> Array:
  """Zeroes the steps `t >= lengths[b]` of `u` `(B, L, ...)`.

  Before a reverse scan this makes the state at every valid step depend on valid inputs only:
  the recurrence is linear, so zero inputs after the end leave a zero state there.
  """
  if lengths is None:
    return u
  valid = jnp.arange(u.shape[1])[None, :] < lengths[:, None]
  return jnp.where(valid.reshape(valid.shape + (1,) * (u.ndim - 2)), u, jnp.zeros((), u.dtype))


def run_recurrence(
    coeffs_fn: Callable[[PyTree], tuple[Array, Array]],
    readout_fn: Callable[[Array, PyTree], Array],
    xs: PyTree,
    *,
    chunk_size: int = 0,
    reverse: bool = False,
) -> Array:
  """`readout_fn(states, xs)` for the states of `x_t = a_t x_{t-1} + b_t`, `(a, b) = coeffs_fn(xs)`.

  Args:
    coeffs_fn: inputs (a pytree of `(B, L', ...)` arrays) to `a` `(P,)` or `(B|1, L', P)` and
      `b` `(B, L', P)`; called on the whole sequence or on chunks of it.
    readout_fn: `(states (B, L', P), xs) -> (B, L', ...)` outputs.
    xs: pytree of `(B, L, ...)` arrays.
    chunk_size: 0 runs one associative scan over all L steps; T > 0 runs chunks of T steps and
      recomputes each chunk's states in the backward pass.
    reverse: run from the last step to the first.
  """
  if chunk_size < 0:
    raise ValueError(f"scan_chunk_size must be >= 0 (0 = one full scan); got {chunk_size}")
  if chunk_size == 0:
    a, b = coeffs_fn(xs)
    return readout_fn(scan.linear_recurrence(a, b, reverse=reverse), xs)
  outputs, _ = scan.chunked_linear_recurrence(
      coeffs_fn, readout_fn, xs, chunk_size=chunk_size, reverse=reverse)
  return outputs


def check_mode(mode: str, scan_chunk_size: int = 0) -> None:
  """Raises a ValueError for an unknown `mode` or a chunk size set with `mode="conv"`."""
  check_choice("mode", mode, MODES)
  if mode == "conv" and scan_chunk_size:
    raise ValueError(f"scan_chunk_size={scan_chunk_size} applies to mode='scan' only; "
                     "mode='conv' stores no states: set scan_chunk_size=0")


def lti_convolution(u: Array, kernel: Array, *, reverse_kernel: Array | None = None,
                    lengths: Array | None = None, mimo: bool) -> Array:
  """The scan's outputs for a time-invariant layer, as FFT convolutions.

  The causal convolution of `u` with `kernel`, plus, when `reverse_kernel` is given (a
  bidirectional layer), the anti-causal one of `u` zeroed beyond `lengths` (the reverse scan
  within the valid length).

  Args:
    u: `(B, L, H)` inputs.
    kernel: real `(H, L)` per-channel kernels, or `(L, H, H)` when `mimo`.
    reverse_kernel: the reverse direction's kernel, same shape, or None (causal).
    lengths: `(B,)` valid lengths, or None (all L steps valid).
    mimo: the kernels mix channels.

  Returns:
    `(B, L, H)` in u's dtype promoted with the kernel's (at least float32).
  """
  causal = fft_conv.causal_conv_mimo if mimo else fft_conv.causal_conv
  y = causal(u, kernel)
  if reverse_kernel is not None:
    anticausal = fft_conv.anticausal_conv_mimo if mimo else fft_conv.anticausal_conv
    y = y + anticausal(zero_beyond_lengths(u, lengths), reverse_kernel)
  return y


def check_choice(field: str, value: str, choices: tuple[str, ...]) -> None:
  """Raises a ValueError naming the field and the valid choices when `value` is not one."""
  if value not in choices:
    raise ValueError(f"{field}={value!r} is not supported; choose one of {', '.join(choices)}")
