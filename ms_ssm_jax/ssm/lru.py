"""LRU: linear recurrent unit (Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu, De, ICML 2023).

A diagonal complex recurrence with N states shared by the H channels, in the exponential
parameterization (paper eq. 6 and sec. 3.3):

    lambda = exp(-exp(nu_log) + i exp(theta_log))                           (N,)
    gamma  = exp(gamma_log)                             (trained, as the paper's code)
    x_t = lambda * x_{t-1} + gamma * (B u_t),   B = B_re + i B_im           B: (N, H), x: (B, L, N)
    y_t = Re(C x_t) + D * u_t,                  C = C_re + i C_im           C: (H, N)

Init: |lambda| uniform by area on the ring [r_min, r_max] and arg(lambda) uniform in
[0, max_phase] (`ssm.init.lru_ring_init`); gamma_log = log sqrt(1 - |lambda|^2); B parts
N(0, 1/(2H)); C parts N(0, 1/N); D ~ N(0, 1). Defaults are the paper's generic ones
(r_min=0, r_max=1, max_phase=2 pi); long-range tasks set radii near 1 and a small phase range.

Bidirectional (a common extension; the paper's LRU is causal): a second scan runs backwards
over the valid length (inputs beyond `lengths` zeroed) with the same lambda and B and its own
readout `C_reverse`; the two readouts are added.

Evaluation (`impl`, `ssm.diagonal`): `scan`, `chunked` (T = `chunk_size` steps at a time),
`pallas` (the complex recurrence in a Pallas kernel, `pallas_recurrence`),
`conv` (FFT convolutions with the MIMO kernel `K_l = Re(C diag(lambda^l) diag(gamma) B)` (H, H):
O(L H^2) for the kernel, no states) or `auto`. All have the same parameters.
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


class LRU(nn.Module):
  """LRU layer; see the module docstring for the equations.

  Attributes:
    d_model: H, the number of channels.
    state_size: N, complex states.
    r_min, r_max: radii of the eigenvalue ring at init, 0 <= r_min < r_max <= 1.
    max_phase: largest eigenvalue phase at init.
    bidirectional: add a reverse scan over the valid length with its own readout.
    impl: how the recurrence runs, one of `diagonal.IMPLS`.
    chunk_size: T, steps per chunk of `impl="chunked"`.
  """
  d_model: int
  state_size: int = 64
  r_min: float = 0.0
  r_max: float = 1.0
  max_phase: float = 2.0 * math.pi
  bidirectional: bool = False
  impl: str = "scan"
  chunk_size: int = diagonal.DEFAULT_CHUNK_SIZE

  def state_counts(self) -> common.StateCounts:
    directions = 2 if self.bidirectional else 1
    return common.StateCounts(per_channel=self.state_size, total=self.state_size,
                              carried_floats=directions * 2 * self.state_size)

  def _readout_param(self, name: str) -> Array:
    """C or C_reverse, (H, N) complex from `{name}_re` and `{name}_im`."""
    init_fn = nn.initializers.normal(1.0 / math.sqrt(self.state_size))
    shape = (self.d_model, self.state_size)
    return jax.lax.complex(self.param(f"{name}_re", init_fn, shape, jnp.float32),
                           self.param(f"{name}_im", init_fn, shape, jnp.float32))

  @nn.compact
  def __call__(self, u: Array, lengths: Array | None = None) -> Array:
    """u (B, L, H), lengths (B,) or None -> y (B, L, H)."""
    diagonal.check_impl(self.impl, self.chunk_size, time_invariant=True, fusable=True, layer="LRU")
    common.check_inputs(u, lengths, self.d_model)
    h, n = self.d_model, self.state_size

    def ring_init(key: Array, index: int) -> Array:
      return ssm_init.lru_ring_init(key, n, self.r_min, self.r_max, self.max_phase)[index]

    nu_log = self.param("nu_log", ring_init, 0)
    theta_log = self.param("theta_log", ring_init, 1)
    gamma = jnp.exp(self.param("gamma_log", lambda _: ssm_init.lru_gamma_log(nu_log)))
    b_init = nn.initializers.normal(1.0 / math.sqrt(2 * h))
    b = jax.lax.complex(self.param("B_re", b_init, (n, h), jnp.float32),
                        self.param("B_im", b_init, (n, h), jnp.float32))
    c = self._readout_param("C")
    d = self.param("D", nn.initializers.normal(1.0), (h,), jnp.float32)
    c_reverse = self._readout_param("C_reverse") if self.bidirectional else None
    lam = jnp.exp(jax.lax.complex(-jnp.exp(nu_log), jnp.exp(theta_log)))
    one_group = lambda x: None if x is None else x[None]
    system = diagonal.Mimo(a_bar=one_group(lam), b_bar=one_group(gamma[:, None] * b),
                           c=one_group(c), c_reverse=one_group(c_reverse))
    y = diagonal.evaluate(system, u[..., None], impl=self.impl, chunk_size=self.chunk_size,
                          lengths=lengths, layer="LRU")[..., 0]
    return (y + d * u).astype(u.dtype)

  def init_state(self, batch_size: int, dtype: Any = jnp.float32) -> Array:
    """Zero states (B, N) for `step` on inputs of `dtype` (`ssm.recurrent`)."""
    return recurrent.lru_init_state(self, batch_size, dtype)

  def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
    """One sample: state, u_t `(B, H)` -> (state, y_t `(B, H)`) (`ssm.recurrent`)."""
    return recurrent.lru_step(self, self.variables["params"], state, u_t)
