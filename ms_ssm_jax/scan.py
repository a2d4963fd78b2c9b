"""The diagonal linear recurrence that every SSM layer in this package runs.

    x_t = a_t * x_{t-1} + b_t            (forward)
    x_t = a_t * x_{t+1} + b_t            (reverse, for bidirectional layers)

evaluated with `jax.lax.associative_scan` over the pairs `(a_t, b_t)` under the operator
`(a1, b1) . (a2, b2) = (a1 * a2, a2 * b1 + b2)`, which composes "first step 1, then step 2".
The operator is associative but not commutative; the tests check it with time-varying `a`.

Two entry points:
- `linear_recurrence`: all states at once; memory `O(B L P)`.
- `chunked_linear_recurrence`: the same recurrence in chunks of T steps, with each chunk's
  states contracted by a readout right away and recomputed in the backward pass; memory
  `O(B T P)` plus the `(B, L, ...)` inputs and outputs. This is what makes the paper's sizes
  fit (see shared spec, "Memory"): a full scan of one MS-SSM layer at B=50, L=2048, H=128,
  5 streams x 128 states needs ~59 GB.

Which of them a layer runs (or the fused kernel, or an FFT convolution) is chosen in one place,
`ms_ssm_jax.ssm.diagonal`, the only layer-side module that calls them.

Shapes: `b` is `(..., L, P)` with the time axis at -2; `a` is either `(P,)` (time-invariant:
broadcast over time only, never over the batch) or `(..., L, P)` broadcastable to `b`
(time-varying, e.g. selective S6 steps). Low-precision inputs (bf16/fp16) are promoted to
float32 so that states accumulate in float32.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array
PyTree = Any


def _combine(left: tuple[Array, Array], right: tuple[Array, Array]) -> tuple[Array, Array]:
  """Composes two spans: apply `left` first, then `right`."""
  a_left, b_left = left
  a_right, b_right = right
  return a_left * a_right, a_right * b_left + b_right


def state_dtype(*dtypes: Any) -> jnp.dtype:
  """The dtype states are carried in: the promoted input dtype, at least float32."""
  return jnp.result_type(jnp.float32, *dtypes)


def _check_shapes(a: Array, b: Array) -> None:
  if b.ndim < 2:
    raise ValueError(f"b must have shape (..., L, P); got {b.shape}")
  if a.ndim == 1:
    if a.shape[0] != b.shape[-1]:
      raise ValueError(f"time-invariant a has {a.shape[0]} states but b has {b.shape[-1]}")
    return
  if a.ndim < 2:
    raise ValueError(f"a must have shape (P,) or (..., L, P); got {a.shape}")
  try:
    jnp.broadcast_shapes(a.shape, b.shape)
  except ValueError as e:
    raise ValueError(f"a {a.shape} does not broadcast to b {b.shape}") from e
  if a.shape[-2] != b.shape[-2]:
    raise ValueError(f"time-varying a has length {a.shape[-2]} but b has {b.shape[-2]}")


def linear_recurrence(
    a: Array,
    b: Array,
    *,
    reverse: bool = False,
    initial_state: Array | None = None,
) -> Array:
  """All states of `x_t = a_t x_{t-1} + b_t` (or `x_{t+1}` when `reverse`).

  Args:
    a: `(P,)` time-invariant or `(..., L, P)` time-varying decay, broadcastable to `b`.
    b: `(..., L, P)` inputs.
    reverse: run from the last step to the first.
    initial_state: `(..., P)`, the state before the first step (after the last one when
      `reverse`); zero when None.

  Returns:
    `(..., L, P)` states, in the promoted dtype of `a` and `b` (at least float32).
  """
  a, b = jnp.asarray(a), jnp.asarray(b)
  _check_shapes(a, b)
  dtype = state_dtype(a.dtype, b.dtype)
  a = a.astype(dtype)
  b = b.astype(dtype)
  length = b.shape[-2]
  if a.ndim == 1:
    # (1, ..., 1, L, P): the same decay at every step, shared by the batch.
    a = jnp.broadcast_to(a, (length, a.shape[0])).reshape((1,) * (b.ndim - 2) + (length, -1))
  else:
    a = a.reshape((1,) * (b.ndim - a.ndim) + a.shape)
  if initial_state is not None:
    edge = -1 if reverse else 0
    carry_in = a[..., edge, :] * initial_state.astype(dtype)
    b = b.at[..., edge, :].add(carry_in)
  _, states = jax.lax.associative_scan(_combine, (a, b), reverse=reverse, axis=b.ndim - 2)
  return states


def chunked_linear_recurrence(
    coeffs_fn: Callable[[PyTree], tuple[Array, Array]],
    readout_fn: Callable[[Array, PyTree], PyTree],
    xs: PyTree,
    *,
    chunk_size: int,
    reverse: bool = False,
    initial_state: Array | None = None,
    remat: bool = True,
) -> tuple[PyTree, Array]:
  """The recurrence in chunks, reading each chunk's states out before the next.

  Within a chunk the recurrence is one `linear_recurrence` (associative scan); the state is
  carried from chunk to chunk by a short `lax.scan` over the `ceil(L / T)` chunks.

  Args:
    coeffs_fn: maps a chunk of inputs (the pytree `xs` sliced to `(B, T, ...)`) to the
      chunk's `(a, b)`: `a` of shape `(P,)` or `(B|1, T, P)`, `b` of shape `(B, T, P)`.
    readout_fn: maps `(states (B, T, P), xs_chunk)` to the chunk's outputs, a pytree of
      `(B, T, ...)` arrays.
    xs: pytree of `(B, L, ...)` arrays (time axis 1).
    chunk_size: T. L need not be a multiple of T: the last chunk is padded with steps that
      keep the state unchanged (`a = 1`, `b = 0`), and their outputs are dropped.
    reverse: run from the last step to the first.
    initial_state: `(B, P)` state before the first step (after the last when `reverse`).
    remat: recompute each chunk's states in the backward pass instead of storing them.

  Returns:
    `(ys, final_state)`: outputs with time axis 1 and length L, and the `(B, P)` state after
    the last step processed (the first step when `reverse`).
  """
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
  leaves = jax.tree.leaves(xs)
  if not leaves:
    raise ValueError("xs must contain at least one array")
  batch, length = leaves[0].shape[:2]
  chunk_size = min(chunk_size, length)  # a chunk longer than the sequence only adds padding
  num_chunks = -(-length // chunk_size)
  padded = num_chunks * chunk_size

  def to_chunks(x: Array) -> Array:
    if x.shape[:2] != (batch, length):
      raise ValueError(f"every leaf of xs must start with (B, L) = {(batch, length)}; "
                       f"got {x.shape}")
    x = jnp.pad(x, [(0, 0), (0, padded - length)] + [(0, 0)] * (x.ndim - 2))
    x = x.reshape((batch, num_chunks, chunk_size) + x.shape[2:])
    return jnp.moveaxis(x, 1, 0)

  chunks = jax.tree.map(to_chunks, xs)

  def chunk_body(state: Array, inputs: tuple[Array, PyTree]) -> tuple[Array, PyTree]:
    chunk_index, xs_chunk = inputs
    a, b = coeffs_fn(xs_chunk)
    dtype = state_dtype(a.dtype, b.dtype, state.dtype)
    valid = (chunk_index * chunk_size + jnp.arange(chunk_size)) < length  # (T,)
    valid = valid[:, None]
    if a.ndim == 1:
      a = jnp.broadcast_to(a, (chunk_size, a.shape[0]))[None]
    a = jnp.where(valid, a.astype(dtype), jnp.ones((), dtype))
    b = jnp.where(valid, b.astype(dtype), jnp.zeros((), dtype))
    states = linear_recurrence(a, b, reverse=reverse, initial_state=state)
    new_state = states[:, 0] if reverse else states[:, -1]
    return new_state, readout_fn(states, xs_chunk)

  if remat:
    chunk_body = jax.checkpoint(chunk_body)
  a0, b0 = jax.eval_shape(coeffs_fn, jax.tree.map(lambda x: x[0], chunks))
  carry_dtype = state_dtype(a0.dtype, b0.dtype)
  if initial_state is None:
    initial_state = jnp.zeros((batch, b0.shape[-1]), carry_dtype)
  initial_state = initial_state.astype(state_dtype(carry_dtype, initial_state.dtype))
  final_state, ys = jax.lax.scan(chunk_body, initial_state, (jnp.arange(num_chunks), chunks),
                                 reverse=reverse)

  def from_chunks(y: Array) -> Array:
    y = jnp.moveaxis(y, 0, 1)
    return y.reshape((batch, padded) + y.shape[3:])[:, :length]

  return jax.tree.map(from_chunks, ys), final_state
