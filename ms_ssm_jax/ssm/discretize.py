"""Discretization of a diagonal continuous-time SSM `x' = lam x + b u`.

With step `Delta`, the discrete recurrence is `x_t = lam_bar x_{t-1} + b_scale * b u_t`:

    zoh      lam_bar = exp(lam Delta)    b_scale = (lam_bar - 1) / lam
    euler_b  lam_bar = exp(lam Delta)    b_scale = Delta

ZOH as in S4 (Gu et al. 2022) and S5 (Smith et al. 2023, eq. 6), for the time-invariant layers;
`euler_b` is Mamba's simplification (Gu and Dao 2023, sec. 3.5) for the selective ones: exact
decay, Euler input term.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

DISCRETIZATIONS: tuple[str, ...] = ("zoh", "euler_b")


def discretize(lam: Array, step: Array, method: str) -> tuple[Array, Array]:
  """Discrete decay and input scale of a diagonal SSM, elementwise.

  Args:
    lam: continuous-time eigenvalues, real or complex, any shape.
    step: timescales `Delta > 0`, broadcastable against `lam`.
    method: one of `DISCRETIZATIONS`.

  Returns:
    `(lam_bar, b_scale)` of the broadcast shape of `lam` and `step`; `B_bar = b_scale * B`.
  """
  if method not in DISCRETIZATIONS:
    raise ValueError(f"unknown discretization {method!r}; known: {', '.join(DISCRETIZATIONS)}")
  lam = jnp.asarray(lam)
  step = jnp.asarray(step)
  lam_bar = jnp.exp(lam * step)
  if method == "zoh":
    return lam_bar, (lam_bar - 1.0) / lam
  return lam_bar, jnp.broadcast_to(step, lam_bar.shape)
