"""S6: the selective (input-dependent) SSM of Mamba (Gu and Dao, 2023, sec. 3 and alg. 2).

Every channel h runs N real states whose step, input and readout depend on the token u_t:

    [dt_low_t, B_t, C_t] = u_t W_x                  W_x: (H, R + 2N),  R = ceil(H / 16)
    Delta_t = softplus(dt_low_t W_dt + dt_bias)     W_dt: (R, H),  Delta_t: (H,)
    A = -exp(A_log)                                 (H, N)
    x_t[h] = exp(Delta_t[h] A[h]) * x_{t-1}[h] + Delta_t[h] B_t u_t[h]     x: (B, L, H, N)
    y_t[h] = C_t . x_t[h] + D_h u_t[h]

(exact decay, Euler input term: `discretize(..., "euler_b")`). Init as the reference: A_n =
-(n+1) on every channel; W_dt uniform in +-R^-1/2; dt_bias such that softplus(dt_bias) is
log-uniform in [dt_min, dt_max], floored at 1e-4; D = 1; W_x lecun-normal.

The Mamba block around it (in_proj, causal conv, gating, out_proj) belongs to the model.
Evaluation (`impl`, `ssm.diagonal`): `scan`, `chunked` (only (B, T, H N) decays and states
exist at once), `pallas` (the fused kernel, which stores no per-step states at all) or `auto`.
The layer is causal; `lengths` is accepted and ignored.
Shapes: u (B, L, H) -> y (B, L, H), in the dtype of u.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ms_ssm_jax.ssm import common
from ms_ssm_jax.ssm import diagonal
from ms_ssm_jax.ssm import init as ssm_init
from ms_ssm_jax.ssm import recurrent

Array = jax.Array

# The smallest initial Delta (Mamba's reference init).
DT_INIT_FLOOR = 1e-4


def inverse_softplus(x: Array) -> Array:
  """`y` with `softplus(y) = x`, for x > 0: `x + log(1 - exp(-x))`."""
  return x + jnp.log(-jnp.expm1(-x))


def _symmetric_uniform(scale: float) -> nn.initializers.Initializer:
  """Initializer drawing from U(-scale, scale) (Mamba's dt_proj weight init)."""

  def init(key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
    return jax.random.uniform(key, shape, dtype, minval=-scale, maxval=scale)

  return init


class S6(nn.Module):
  """Selective SSM layer; see the module docstring for the equations.

  Attributes:
    d_model: H, the number of channels.
    state_size: N, real states per channel.
    dt_min, dt_max: range of the log-uniform init of softplus(dt_bias).
    impl: how the recurrence runs, one of `diagonal.IMPLS` but `conv` (selective).
    chunk_size: T, steps per chunk of `impl="chunked"`.
  """
  d_model: int
  state_size: int = 16
  dt_min: float = 1e-3
  dt_max: float = 1e-1
  impl: str = "scan"
  chunk_size: int = diagonal.DEFAULT_CHUNK_SIZE

  @property
  def rank(self) -> int:
    """R, the rank of the Delta projection: Mamba's ceil(H / 16)."""
    return math.ceil(self.d_model / 16)

  def state_counts(self) -> common.StateCounts:
    return common.StateCounts(per_channel=self.state_size, total=self.d_model * self.state_size,
                              carried_floats=self.d_model * self.state_size)

  def _dt_bias_init(self, key: Array) -> Array:
    log_dt = ssm_init.log_uniform(key, (self.d_model,), self.dt_min, self.dt_max)
    return inverse_softplus(jnp.maximum(jnp.exp(log_dt), DT_INIT_FLOOR))

  @nn.compact
  def __call__(self, u: Array, lengths: Array | None = None) -> Array:
    """u (B, L, H), lengths (B,) or None (ignored: the layer is causal) -> y (B, L, H)."""
    diagonal.check_impl(self.impl, self.chunk_size, time_invariant=False, fusable=True, layer="S6")
    common.check_inputs(u, lengths, self.d_model)
    h, n, r = self.d_model, self.state_size, self.rank
    a_log = self.param(
        "A_log", lambda _: jnp.log(jnp.broadcast_to(-ssm_init.s4d_real_eigenvalues(n),
                                                    (h, n))).astype(jnp.float32))
    projected = nn.Dense(r + 2 * n, use_bias=False, name="x_proj")(u)
    dt_low, b_t, c_t = jnp.split(projected, [r, r + n], axis=-1)
    dt_proj = nn.Dense(h, use_bias=False, name="dt_proj", kernel_init=_symmetric_uniform(r**-0.5))
    dt_bias = self.param("dt_bias", self._dt_bias_init)
    delta = jax.nn.softplus(dt_proj(dt_low) + dt_bias)  # (B, L, H)
    d = self.param("D", nn.initializers.ones, (h,), jnp.float32)
    one_group = lambda x: jnp.expand_dims(x, -2)
    system = diagonal.Selective(a=one_group(-jnp.exp(a_log)), step=delta[..., None],
                                b=one_group(b_t), c=one_group(c_t))
    y = diagonal.evaluate(system, u[..., None], impl=self.impl, chunk_size=self.chunk_size,
                          layer="S6")[..., 0]
    return (y + d * u).astype(u.dtype)

  def init_state(self, batch_size: int, dtype: Any = jnp.float32) -> Array:
    """Zero states (B, H, N) for `step` on inputs of `dtype` (`ssm.recurrent`)."""
    return recurrent.s6_init_state(self, batch_size, dtype)

  def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
    """One sample: state, u_t `(B, H)` -> (state, y_t `(B, H)`) (`ssm.recurrent`)."""
    return recurrent.s6_step(self, self.variables["params"], state, u_t)
