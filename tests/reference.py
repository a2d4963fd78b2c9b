"""Plain sequential references, evaluated step by step in float64 (numpy or lax.scan)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def sequential_recurrence(a, b, *, reverse=False, initial_state=None):
  """`x_t = a_t x_{t-1} + b_t` with `lax.scan`, one step at a time.

  Args:
    a: `(P,)` or `(..., L, P)` broadcastable to `b`.
    b: `(..., L, P)`.
  """
  a = jnp.broadcast_to(a, b.shape)
  a_t, b_t = jnp.moveaxis(a, -2, 0), jnp.moveaxis(b, -2, 0)
  state = jnp.zeros(b.shape[:-2] + b.shape[-1:], jnp.result_type(a, b))
  if initial_state is not None:
    state = state + initial_state

  def step(x, ab):
    a_k, b_k = ab
    x = a_k * x + b_k
    return x, x

  _, xs = jax.lax.scan(step, state, (a_t, b_t), reverse=reverse)
  return jnp.moveaxis(xs, 0, -2)


def loop_recurrence(a, b, *, reverse=False, initial_state=None):
  """The same recurrence as a Python loop over numpy arrays (a second, independent reference)."""
  a = np.broadcast_to(np.asarray(a), np.shape(b))
  b = np.asarray(b)
  x = np.zeros(b.shape[:-2] + b.shape[-1:], np.result_type(a, b))
  if initial_state is not None:
    x = x + np.asarray(initial_state)
  out = np.zeros(b.shape, x.dtype)
  steps = range(b.shape[-2] - 1, -1, -1) if reverse else range(b.shape[-2])
  for t in steps:
    x = a[..., t, :] * x + b[..., t, :]
    out[..., t, :] = x
  return out
