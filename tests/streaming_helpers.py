"""Running a layer's `step` over a whole sequence, for the streaming tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def stepped_outputs(layer, variables, u):
  """`layer.step` from `layer.init_state` over every step of u `(B, L, H)` -> `(B, L, H)`.

  One jitted `lax.scan`, as a user would run it.
  """
  def run(variables, u):
    state = layer.apply(variables, u.shape[0], u.dtype, method="init_state")
    step = lambda state, u_t: layer.apply(variables, state, u_t, method="step")
    _, ys = jax.lax.scan(step, state, jnp.swapaxes(u, 0, 1))
    return jnp.swapaxes(ys, 0, 1)

  return jax.jit(run)(variables, u)


def to_float64(tree):
  return jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), tree)
