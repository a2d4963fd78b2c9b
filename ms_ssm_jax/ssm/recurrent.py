"""The baseline layers in recurrent form: one sample at a time, from their parameters.

    state = layer.apply(variables, batch_size, method="init_state")
    state, y_t = layer.apply(variables, state, u_t, method="step")   # u_t, y_t: (B, H)

`S4D`, `S5`, `LRU` and `S6` delegate their `init_state` and `step` methods here. The step reads
the layer's parameter dict (the public checkpoint format) and runs one step of the same
discretized system as the parallel pass (`mode="scan"` or `"conv"` alike):

    x_t = A_bar x_{t-1} + B_bar u_t,   y_t = readout(x_t) + D u_t

with the states `x` of `init_state(batch_size, dtype)` (zeros; `dtype` is the inputs' dtype,
states are at least float32 as in `ms_ssm_jax.scan`): S4D `(B, H, n)`, S5 `(B, P')`, LRU
`(B, N)`, S6 `(B, H, N)`; complex for the complex layers. A step keeps the states' dtype, so it
is a fixed point of its carry type (`jax.lax.scan`); outputs have u_t's dtype.
Bidirectional layers read future samples and raise `check_causal`'s error.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from ms_ssm_jax import scan
from ms_ssm_jax.ssm import init as ssm_init
from ms_ssm_jax.ssm.discretize import discretize

Array = jax.Array
Params = Mapping[str, Any]


def check_causal(layer: Any) -> None:
  """Raises a ValueError when `layer` is bidirectional: it cannot be evaluated step by step."""
  if getattr(layer, "bidirectional", False):
    raise ValueError(f"{type(layer).__name__} is bidirectional: its outputs depend on future "
                     "samples (reverse scan), so it cannot stream one sample at a time; stream "
                     "a model trained with bidirectional=False")


def check_step_input(u_t: Array, d_model: int) -> None:
  """Raises a ValueError unless `u_t` is one step `(B, d_model)`."""
  if u_t.ndim != 2 or u_t.shape[-1] != d_model:
    raise ValueError(f"a step takes inputs of shape (B, H={d_model}); got {u_t.shape} (feed a "
                     "sequence (B, L, H) one step at a time: u[:, t])")


def state_dtype(input_dtype: Any, is_complex: bool) -> jnp.dtype:
  """The states' dtype for inputs of `input_dtype`: at least float32, complex if asked."""
  dtype = scan.state_dtype(input_dtype)
  return jnp.result_type(dtype, jnp.complex64) if is_complex else dtype


def _complex(parts: Array) -> Array:
  return jax.lax.complex(parts[..., 0], parts[..., 1])


def advance(state: Array, a_bar: Array, b_t: Array) -> Array:
  """`a_bar * state + b_t`, cast back to the state's dtype (a stable carry)."""
  return (a_bar * state + b_t).astype(state.dtype)


def _output(y: Array, d: Array, u_t: Array) -> Array:
  return (y + d * u_t).astype(u_t.dtype)


# ----------------------------------------------------------------------------------------------
# S4D: per channel, n states (complex conjugate pairs, read as 2 Re, for `lin` and `inv`).


def s4d_init_state(layer: Any, batch_size: int, dtype: Any) -> Array:
  check_causal(layer)
  return jnp.zeros((batch_size, layer.d_model, layer.num_modes),
                   state_dtype(dtype, layer.is_complex))


def s4d_step(layer: Any, params: Params, state: Array, u_t: Array) -> tuple[Array, Array]:
  """One S4D step: state `(B, H, n)`, u_t `(B, H)` -> (state, y_t `(B, H)`)."""
  check_causal(layer)
  check_step_input(u_t, layer.d_model)
  if layer.is_complex:
    a = jax.lax.complex(-jnp.exp(params["A_re_log"]), params["A_im"])
    b, c = _complex(params["B"]), _complex(params["C"])
  else:
    a, b, c = -jnp.exp(params["A_re_log"]), params["B"], params["C"]
  a_bar, b_scale = discretize(a, jnp.exp(params["log_step"])[:, None], "zoh")
  state = advance(state, a_bar, b_scale * b * u_t[..., None])
  y = jnp.einsum("bhn,hn->bh", state, c)
  y = 2.0 * y.real if layer.is_complex else y
  return state, _output(y, params["D"], u_t)


# ----------------------------------------------------------------------------------------------
# S5: P' complex states shared by the channels.


def s5_init_state(layer: Any, batch_size: int, dtype: Any) -> Array:
  check_causal(layer)
  return jnp.zeros((batch_size, layer.num_modes), state_dtype(dtype, True))


def s5_step(layer: Any, params: Params, state: Array, u_t: Array, *,
            clip_eigs_max_real: float) -> tuple[Array, Array]:
  """One S5 step: state `(B, P')`, u_t `(B, H)` -> (state, y_t `(B, H)`).

  `clip_eigs_max_real` is S5's bound on Lambda_re under `clip_eigs`.
  """
  check_causal(layer)
  check_step_input(u_t, layer.d_model)
  lambda_re = params["Lambda_re"]
  if layer.clip_eigs:
    lambda_re = jnp.minimum(lambda_re, clip_eigs_max_real)
  step = layer.step_rescale * jnp.exp(params["log_step"][:, 0])
  lambda_bar, b_scale = discretize(
      jax.lax.complex(lambda_re, params["Lambda_im"]), step, layer.discretization)
  b_bar = b_scale[:, None] * _complex(params["B"])  # (P', H)
  state = advance(state, lambda_bar, jnp.einsum("bh,ph->bp", u_t, b_bar))
  y = jnp.einsum("bp,hp->bh", state, _complex(params["C"]))
  y = 2.0 * y.real if layer.conj_sym else y.real
  return state, _output(y, params["D"], u_t)


# ----------------------------------------------------------------------------------------------
# LRU: N complex states shared by the channels.


def lru_init_state(layer: Any, batch_size: int, dtype: Any) -> Array:
  check_causal(layer)
  return jnp.zeros((batch_size, layer.state_size), state_dtype(dtype, True))


def lru_step(layer: Any, params: Params, state: Array, u_t: Array) -> tuple[Array, Array]:
  """One LRU step: state `(B, N)`, u_t `(B, H)` -> (state, y_t `(B, H)`)."""
  check_causal(layer)
  check_step_input(u_t, layer.d_model)
  nu_log = params["nu_log"]
  if layer.train_gamma:
    gamma = jnp.exp(params["gamma_log"])
  else:
    gamma = jnp.exp(ssm_init.lru_gamma_log(nu_log))
  lam = jnp.exp(jax.lax.complex(-jnp.exp(nu_log), jnp.exp(params["theta_log"])))
  b_bar = gamma[:, None] * jax.lax.complex(params["B_re"], params["B_im"])  # (N, H)
  state = advance(state, lam, jnp.einsum("bh,nh->bn", u_t, b_bar))
  c = jax.lax.complex(params["C_re"], params["C_im"])
  y = jnp.einsum("bn,hn->bh", state, c).real
  return state, _output(y, params["D"], u_t)


# ----------------------------------------------------------------------------------------------
# S6: per channel, N real states; Delta, B and C from the step's input.


def s6_init_state(layer: Any, batch_size: int, dtype: Any) -> Array:
  return jnp.zeros((batch_size, layer.d_model, layer.state_size), state_dtype(dtype, False))


def s6_step(layer: Any, params: Params, state: Array, u_t: Array) -> tuple[Array, Array]:
  """One S6 step: state `(B, H, N)`, u_t `(B, H)` -> (state, y_t `(B, H)`)."""
  check_step_input(u_t, layer.d_model)
  rank, n = layer.rank, layer.state_size
  projected = u_t @ params["x_proj"]["kernel"]
  dt_low, b_t, c_t = jnp.split(projected, [rank, rank + n], axis=-1)
  delta = jax.nn.softplus(dt_low @ params["dt_proj"]["kernel"] + params["dt_bias"])  # (B, H)
  a_bar, b_scale = discretize(-jnp.exp(params["A_log"]), delta[..., None], "euler_b")
  state = advance(state, a_bar, b_scale * b_t[:, None, :] * u_t[..., None])
  y = jnp.einsum("bhn,bn->bh", state, c_t)
  return state, _output(y, params["D"], u_t)
