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


def sequential_selective_scan(u, delta, a, b=None, c=None, b_channel=None, c_channel=None, *,
                              reverse=False):
  """`ms_ssm_jax.pallas_scan.selective_scan` one step at a time with `lax.scan`.

  `x_t = exp(delta_t a) x_{t-1} + delta_t u_t b_t b_channel`, `y_t = sum_n c_t c_channel x_t`;
  u, delta `(B, L, G, H)`, a and the channel factors `(G, H, N)`, b and c `(B, L, G, N)`.
  """
  batch, length, groups, channels = u.shape
  ones_proj = jnp.ones((batch, length, groups, a.shape[-1]), a.dtype)
  b = ones_proj if b is None else b
  c = ones_proj if c is None else c
  b_channel = jnp.ones_like(a) if b_channel is None else b_channel
  c_channel = jnp.ones_like(a) if c_channel is None else c_channel

  def step(x, inputs):
    u_t, delta_t, b_t, c_t = inputs
    x = (jnp.exp(delta_t[..., None] * a) * x +
         (delta_t * u_t)[..., None] * b_t[:, :, None, :] * b_channel)
    return x, jnp.sum(x * c_t[:, :, None, :] * c_channel, axis=-1)

  time_major = tuple(jnp.moveaxis(x, 1, 0) for x in (u, delta, b, c))
  x0 = jnp.zeros((batch, groups, channels, a.shape[-1]), jnp.result_type(u, a))
  _, y = jax.lax.scan(step, x0, time_major, reverse=reverse)
  return jnp.moveaxis(y, 0, 1)
