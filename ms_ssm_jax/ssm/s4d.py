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

Evaluation (`mode`): `scan` (default) runs the recurrence with `ms_ssm_jax.scan`, in chunks of
`scan_chunk_size` steps when that is > 0 so only (B, T, H n) states exist at once. `conv`
computes the same outputs as the reference does, as FFT convolutions with the per-channel
kernels `k_l[h] = 2 Re(C[h] . (A_bar[h]^l * B_bar[h]))` (no `2 Re` for the real init), causal,
plus an anti-causal one with `C_reverse` over the inputs zeroed beyond `lengths` when
bidirectional: O(L log L) per channel and no states (`ms_ssm_jax.fft_conv`). Both modes have
the same parameters.
Shapes: u (B, L, H) -> y (B, L, H), in the dtype of u.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ms_ssm_jax import fft_conv
from ms_ssm_jax.ssm import common
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
    scan_chunk_size: 0 = one associative scan; T > 0 = chunked scan with T steps per chunk
      (`mode="scan"` only).
    mode: `scan` (recurrence) or `conv` (FFT convolution), one of `common.MODES`.
  """
  d_model: int
  state_size: int = 64
  a_init: str = "lin"
  dt_min: float = 1e-3
  dt_max: float = 1e-1
  bidirectional: bool = False
  scan_chunk_size: int = 0
  mode: str = "scan"

  def _check_config(self) -> None:
    common.check_choice("a_init", self.a_init, S4D_INITS)
    common.check_mode(self.mode, self.scan_chunk_size)
    if self.is_complex and self.state_size % 2:
      raise ValueError(f"a_init={self.a_init!r} keeps conjugate pairs: state_size must be even, "
                       f"got {self.state_size}")

  @property
  def is_complex(self) -> bool:
    return self.a_init != "real"

  @property
  def num_modes(self) -> int:
    """n: the states carried per channel (complex ones count once)."""
    return self.state_size // 2 if self.is_complex else self.state_size

  def state_counts(self) -> common.StateCounts:
    directions = 2 if self.bidirectional else 1
    return common.StateCounts(
        per_channel=self.state_size,
        total=self.d_model * self.state_size,
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
      b_parts = self.param("B", lambda _: jnp.stack(
          [jnp.ones((h, n), jnp.float32), jnp.zeros((h, n), jnp.float32)], axis=-1))
      b = jax.lax.complex(b_parts[..., 0], b_parts[..., 1])
    else:
      b = self.param("B", nn.initializers.ones, (h, n), jnp.float32)
    log_step = self.param(
        "log_step", lambda key: ssm_init.log_uniform(key, (h,), self.dt_min, self.dt_max))
    c = self._readout_param("C")
    d = self.param("D", nn.initializers.normal(1.0), (h,), jnp.float32)
    c_reverse = self._readout_param("C_reverse") if self.bidirectional else None

    a_bar, b_scale = discretize(a, jnp.exp(log_step)[:, None], "zoh")  # (H, n)
    evaluate = self._convolve if self.mode == "conv" else self._scan
    y = evaluate(a_bar, b_scale * b, c, c_reverse, u, lengths)
    return (y + d * u).astype(u.dtype)

  def _real_output(self, y: Array) -> Array:
    """The real output of a readout (or kernel): `2 Re(.)` for conjugate pairs."""
    return 2.0 * y.real if self.is_complex else y

  def _convolve(self, a_bar: Array, b_bar: Array, c: Array, c_reverse: Array | None, u: Array,
                lengths: Array | None) -> Array:
    """The scan's readouts as FFT convolutions: (H, n) coefficients -> (B, L, H)."""
    def kernel(c_matrix: Array) -> Array:
      return self._real_output(fft_conv.siso_kernel(a_bar, b_bar, c_matrix, u.shape[1]))

    return common.lti_convolution(
        u, kernel(c), reverse_kernel=None if c_reverse is None else kernel(c_reverse),
        lengths=lengths, mimo=False)

  def _scan(self, a_bar: Array, b_bar: Array, c: Array, c_reverse: Array | None, u: Array,
            lengths: Array | None) -> Array:
    """The readouts of the forward (and reverse) scan: (H, n) coefficients -> (B, L, H)."""
    h, n = a_bar.shape
    a_bar, b_bar = a_bar.reshape(h * n), b_bar.reshape(h * n)

    def coeffs(u_chunk: Array) -> tuple[Array, Array]:
      inputs = jnp.repeat(u_chunk, n, axis=-1)  # (B, T, H n), channel-major like b_bar
      return a_bar, inputs * b_bar

    def readout_with(c_matrix: Array):
      def readout(states: Array, _) -> Array:
        states = states.reshape(states.shape[:2] + (h, n))
        return self._real_output(jnp.einsum("bthn,hn->bth", states, c_matrix))
      return readout

    y = common.run_recurrence(coeffs, readout_with(c), u, chunk_size=self.scan_chunk_size)
    if c_reverse is not None:
      y = y + common.run_recurrence(
          coeffs, readout_with(c_reverse), common.zero_beyond_lengths(u, lengths),
          chunk_size=self.scan_chunk_size, reverse=True)
    return y

  def init_state(self, batch_size: int, dtype: Any = jnp.float32) -> Array:
    """Zero states (B, H, n) for `step` on inputs of `dtype` (`ssm.recurrent`)."""
    return recurrent.s4d_init_state(self, batch_size, dtype)

  def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
    """One sample: state, u_t `(B, H)` -> (state, y_t `(B, H)`) (`ssm.recurrent`)."""
    return recurrent.s4d_step(self, self.variables["params"], state, u_t)
