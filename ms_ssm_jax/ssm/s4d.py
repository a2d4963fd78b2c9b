"""S4D: diagonal SISO state space layer (Gu, Gupta, Goel, Re, NeurIPS 2022).

Every channel h runs its own diagonal SSM with n states, discretized by ZOH:

    A = -exp(A_re_log) + i A_im              (A_im absent for the real init)
    A_bar = exp(Delta_h A),  B_bar = (A_bar - 1) / A * B,   Delta_h = exp(log_step_h)
    x_t[h] = A_bar[h] * x_{t-1}[h] + B_bar[h] u_t[h]                     x: (B, L, H, n)
    y_t[h] = 2 Re(C[h] . x_t[h]) + D_h u_t[h]      (complex inits, conjugate symmetry)
    y_t[h] = C[h] . x_t[h] + D_h u_t[h]            (real init)

Inits (paper sec. 4): `real` A_k = -(k+1) with n = N real states; `lin` A_k = -1/2 + i pi k and
`inv` A_k = -1/2 + i N/pi (N/(2k+1) - 1) with n = N/2 complex states (the other half are the
conjugates, accounted for by `2 Re`). B = 1, C ~ N(0, 1/2) per real/imaginary part (N(0, 1)
for the real init), D ~ N(0, 1), Delta log-uniform in [dt_min, dt_max].

Bidirectional (ours, as S4's reference does it): a second scan runs backwards over the valid
length with the same A_bar, B_bar and its own readout `C_reverse`; the two readouts are added.

Evaluation (`impl`, `ssm.diagonal`): `scan`, `chunked` (T = `chunk_size` steps at a time),
`conv` (FFT convolutions with the per-channel kernels `k_l[h] = 2 Re(C[h] . (A_bar[h]^l *
B_bar[h]))`, no `2 Re` for the real init; anti-causal with `C_reverse` when bidirectional),
`pallas` (the fused kernel; the real init only) or `auto`. All have the same parameters.
Shapes: u (B, L, H) -> y (B, L, H), in the dtype of u.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ms_ssm_jax.ssm import common
from ms_ssm_jax.ssm import diagonal
from ms_ssm_jax.ssm import init as ssm_init
from ms_ssm_jax.ssm import recurrent
from ms_ssm_jax.ssm.discretize import discretize

Array = jax.Array

S4D_INITS: tuple[str, ...] = ("real", "lin", "inv")


class S4D(nn.Module):
  """S4D layer; see the module docstring for the equations.

  Attributes:
    d_model: H, the number of channels.
    state_size: N real states per channel (N/2 complex states for `lin` and `inv`).
    a_init: eigenvalue initialization, one of `S4D_INITS`.
    dt_min, dt_max: range of the log-uniform timescale init.
    bidirectional: add a reverse scan over the valid length with its own readout.
    impl: how the recurrence runs, one of `diagonal.IMPLS` (`pallas` for the real init only).
    chunk_size: T, steps per chunk of `impl="chunked"`.
  """
  d_model: int
  state_size: int = 64
  a_init: str = "lin"
  dt_min: float = 1e-3
  dt_max: float = 1e-1
  bidirectional: bool = False
  impl: str = "scan"
  chunk_size: int = diagonal.DEFAULT_CHUNK_SIZE

  def _check_config(self) -> None:
    common.check_choice("a_init", self.a_init, S4D_INITS)
    diagonal.check_impl(self.impl, self.chunk_size, time_invariant=True,
                        fusable=not self.is_complex, layer=self._name_for_errors)
    if self.is_complex and self.state_size % 2:
      raise ValueError(f"a_init={self.a_init!r} keeps conjugate pairs: state_size must be even, "
                       f"got {self.state_size}")

  @property
  def is_complex(self) -> bool:
    return self.a_init != "real"

  @property
  def _name_for_errors(self) -> str:
    return f"S4D(a_init={self.a_init!r})"

  @property
  def num_modes(self) -> int:
    """n: the states carried per channel (complex ones count once)."""
    return self.state_size // 2 if self.is_complex else self.state_size

  def state_counts(self) -> common.StateCounts:
    directions = 2 if self.bidirectional else 1
    return common.StateCounts(per_channel=self.state_size, total=self.d_model * self.state_size,
                              carried_floats=directions * self.d_model * self.state_size)

  def _eigenvalues(self) -> Array:
    """Continuous-time A, (H, n)."""
    h, n = self.d_model, self.num_modes
    if self.a_init == "real":
      base = ssm_init.s4d_real_eigenvalues(n)
    elif self.a_init == "lin":
      base = ssm_init.s4d_lin_eigenvalues(n)
    else:
      base = ssm_init.s4d_inv_eigenvalues(n)
    base = np.broadcast_to(base, (h, n))
    a_re_log = self.param("A_re_log", lambda _: jnp.asarray(np.log(-base.real), jnp.float32))
    if not self.is_complex:
      return -jnp.exp(a_re_log)
    a_im = self.param("A_im", lambda _: jnp.asarray(base.imag, jnp.float32))
    return jax.lax.complex(-jnp.exp(a_re_log), a_im)

  def _readout_param(self, name: str) -> Array:
    """C or C_reverse: (H, n), complex N(0, 1/2) parts or real N(0, 1)."""
    shape = (self.d_model, self.num_modes)
    if not self.is_complex:
      return self.param(name, nn.initializers.normal(1.0), shape, jnp.float32)
    parts = self.param(name, nn.initializers.normal(0.5**0.5), shape + (2,), jnp.float32)
    return jax.lax.complex(parts[..., 0], parts[..., 1])

  @nn.compact
  def __call__(self, u: Array, lengths: Array | None = None) -> Array:
    """u (B, L, H), lengths (B,) or None -> y (B, L, H)."""
    self._check_config()
    common.check_inputs(u, lengths, self.d_model)
    h, n = self.d_model, self.num_modes
    a = self._eigenvalues()
    if self.is_complex:
      b_parts = self.param(
          "B", lambda _: jnp.stack([jnp.ones(
              (h, n), jnp.float32), jnp.zeros((h, n), jnp.float32)], axis=-1))
      b = jax.lax.complex(b_parts[..., 0], b_parts[..., 1])
    else:
      b = self.param("B", nn.initializers.ones, (h, n), jnp.float32)
    log_step = self.param("log_step",
                          lambda key: ssm_init.log_uniform(key, (h,), self.dt_min, self.dt_max))
    c = self._readout_param("C")
    d = self.param("D", nn.initializers.normal(1.0), (h,), jnp.float32)
    c_reverse = self._readout_param("C_reverse") if self.bidirectional else None

    step = jnp.exp(log_step)[:, None]
    a_bar, b_scale = discretize(a, step, "zoh")  # (H, n)
    per_channel = lambda x: None if x is None else x[:, None]  # (H, G=1, n)
    system = diagonal.Siso(a_bar=per_channel(a_bar), b_bar=per_channel(b_scale * b),
                           c=per_channel(c), c_reverse=per_channel(c_reverse),
                           readout_scale=2.0 if self.is_complex else 1.0,
                           log_a_bar=None if self.is_complex else per_channel(step * a))
    y = diagonal.evaluate(system, u[..., None], impl=self.impl, chunk_size=self.chunk_size,
                          lengths=lengths, layer=self._name_for_errors)[..., 0]
    return (y + d * u).astype(u.dtype)

  def init_state(self, batch_size: int, dtype: Any = jnp.float32) -> Array:
    """Zero states (B, H, n) for `step` on inputs of `dtype` (`ssm.recurrent`)."""
    return recurrent.s4d_init_state(self, batch_size, dtype)

  def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
    """One sample: state, u_t `(B, H)` -> (state, y_t `(B, H)`) (`ssm.recurrent`)."""
    return recurrent.s4d_step(self, self.variables["params"], state, u_t)
