"""S5: simplified MIMO state space layer (Smith, Warrington, Linderman, ICLR 2023).

One diagonal SSM with P states shared by all H channels, in the eigenbasis of HiPPO-N:

    Lambda = min(Lambda_re, -1e-4 if clip_eigs) + i Lambda_im            (P',)
    Delta = exp(log_step)                                                  (P',)
    Lambda_bar, B_bar = discretize(Lambda, Delta, "zoh"),                 B_bar: (P', H)
    x_t = Lambda_bar * x_{t-1} + B_bar u_t                                 x: (B, L, P')
    y_t = 2 Re(C x_t) + D * u_t                                            C: (H, P')

P' = P/2: conjugate symmetry keeps one eigenvalue of each conjugate pair (P counts real
states), and `2 Re(.)` reads out the pair.

Init (paper sec. 4 and app. B): HiPPO-N of size P/J repeated on J diagonal blocks, the kept
half of each block's eigenpairs (`ssm.init.s5_init`), so Lambda_re = -1/2; `B = V^-1 B0` with
B0 (P, H) lecun-normal (fan-in P, as in the reference code); C from `c_init`:
`trunc_standard_normal` (each row lecun-normal, then times V), `lecun_normal` (the whole
(H, P, 2) array lecun-normal, then times V) or `complex_normal` (N(0, 1/2) parts, no V);
D ~ N(0, 1); log_step (P', 1) log-uniform in [dt_min, dt_max], one timescale per state.
Stored as real arrays: B (P', H, 2), C (H, P', 2).

Bidirectional: a second scan runs backwards over the valid length (inputs beyond `lengths`
are zeroed first; the reference runs it over the padding) with the same Lambda_bar and B_bar.
The two state sequences are read with separate matrices ([C, C_reverse] on the concatenated
states, the reference's `concat` mode).

Evaluation (`impl`, `ssm.diagonal`): `scan`, `chunked` (T = `chunk_size` steps at a time),
`pallas` (the complex recurrence in a Pallas kernel, `pallas_recurrence`),
`conv` (FFT convolutions with the MIMO kernel `K_l = 2 Re(C diag(Lambda_bar^l) B_bar)` (H, H):
O(L H^2) for the kernel, no states) or `auto`. All have the same parameters.
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

S5_C_INITS: tuple[str, ...] = ("trunc_standard_normal", "lecun_normal", "complex_normal")
# Largest real part of Lambda allowed under clip_eigs (the reference's value).
CLIP_EIGS_MAX_REAL = -1e-4


def _complex(parts: Array) -> Array:
  return jax.lax.complex(parts[..., 0], parts[..., 1])


def _as_parts(z: np.ndarray | Array) -> Array:
  return jnp.stack([jnp.real(z), jnp.imag(z)], axis=-1).astype(jnp.float32)


class S5(nn.Module):
  """S5 layer; see the module docstring for the equations.

  Attributes:
    d_model: H, the number of channels.
    state_size: P, real states (P/2 complex states are carried); P / blocks must be even.
    blocks: J, the number of HiPPO-N blocks on the diagonal of the init.
    dt_min, dt_max: range of the log-uniform timescale init.
    c_init: one of `S5_C_INITS`.
    clip_eigs: clamp Lambda_re <= -1e-4 in the forward pass (stability during training).
    bidirectional: add a reverse scan over the valid length.
    impl: how the recurrence runs, one of `diagonal.IMPLS`.
    chunk_size: T, steps per chunk of `impl="chunked"`.
  """
  d_model: int
  state_size: int = 64
  blocks: int = 1
  dt_min: float = 1e-3
  dt_max: float = 1e-1
  c_init: str = "trunc_standard_normal"
  clip_eigs: bool = False
  bidirectional: bool = False
  impl: str = "scan"
  chunk_size: int = diagonal.DEFAULT_CHUNK_SIZE

  @property
  def num_modes(self) -> int:
    """P': the complex states carried."""
    return self.state_size // 2

  def state_counts(self) -> common.StateCounts:
    directions = 2 if self.bidirectional else 1
    # P/2 complex states are P floats.
    return common.StateCounts(per_channel=self.state_size, total=self.state_size,
                              carried_floats=directions * self.state_size)

  def _c_param(self, name: str, v: np.ndarray) -> Array:
    """A readout matrix (H, P') from `c_init`, stored as (H, P', 2)."""
    h, p = self.d_model, self.state_size

    def init_fn(key: Array) -> Array:
      if self.c_init == "complex_normal":
        return nn.initializers.normal(0.5**0.5)(key, (h, self.num_modes, 2), jnp.float32)
      if self.c_init == "lecun_normal":
        parts = nn.initializers.lecun_normal()(key, (h, p, 2), jnp.float32)
      else:
        row_init = nn.initializers.lecun_normal()
        parts = jax.vmap(lambda k: row_init(k, (p, 2), jnp.float32))(jax.random.split(key, h))
      return _as_parts(_complex(parts) @ v)

    return _complex(self.param(name, init_fn))

  @nn.compact
  def __call__(self, u: Array, lengths: Array | None = None) -> Array:
    """u (B, L, H), lengths (B,) or None -> y (B, L, H)."""
    common.check_choice("c_init", self.c_init, S5_C_INITS)
    diagonal.check_impl(self.impl, self.chunk_size, time_invariant=True, fusable=True, layer="S5")
    common.check_inputs(u, lengths, self.d_model)
    h, p = self.d_model, self.state_size
    lam0, v, v_inv = ssm_init.s5_init(p, self.blocks)

    lambda_re = self.param("Lambda_re", lambda _: jnp.asarray(lam0.real, jnp.float32))
    lambda_im = self.param("Lambda_im", lambda _: jnp.asarray(lam0.imag, jnp.float32))
    b = _complex(
        self.param(
            "B", lambda key: _as_parts(v_inv @ nn.initializers.lecun_normal()
                                       (key, (p, h), jnp.float32))))
    c = self._c_param("C", v)
    d = self.param("D", nn.initializers.normal(1.0), (h,), jnp.float32)
    log_step = self.param(
        "log_step", lambda key: ssm_init.log_uniform(key,
                                                     (self.num_modes, 1), self.dt_min, self.dt_max))
    c_reverse = self._c_param("C_reverse", v) if self.bidirectional else None

    if self.clip_eigs:
      lambda_re = jnp.minimum(lambda_re, CLIP_EIGS_MAX_REAL)
    lambda_bar, b_scale = discretize(jax.lax.complex(lambda_re, lambda_im), jnp.exp(log_step[:, 0]),
                                     "zoh")
    one_group = lambda x: None if x is None else x[None]
    system = diagonal.Mimo(a_bar=one_group(lambda_bar), b_bar=one_group(b_scale[:, None] * b),
                           c=one_group(c), c_reverse=one_group(c_reverse), readout_scale=2.0)
    y = diagonal.evaluate(system, u[..., None], impl=self.impl, chunk_size=self.chunk_size,
                          lengths=lengths, layer="S5")[..., 0]
    return (y + d * u).astype(u.dtype)

  def init_state(self, batch_size: int, dtype: Any = jnp.float32) -> Array:
    """Zero states (B, P') for `step` on inputs of `dtype` (`ssm.recurrent`)."""
    return recurrent.s5_init_state(self, batch_size, dtype)

  def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
    """One sample: state, u_t `(B, H)` -> (state, y_t `(B, H)`) (`ssm.recurrent`)."""
    return recurrent.s5_step(self, self.variables["params"], state, u_t,
                             clip_eigs_max_real=CLIP_EIGS_MAX_REAL)
