"""The baseline layers in recurrent form: one sample at a time.

    state = layer.apply(variables, batch_size, method="init_state")
    state, y_t = layer.apply(variables, state, u_t, method="step")   # u_t, y_t: (B, H)

`S4D`, `S5`, `LRU` and `S6` delegate their `init_state` and `step` methods here. A step runs
the same discretized system as the parallel pass (`mode="scan"` or `"conv"` alike):

    x_t = A_bar x_{t-1} + B_bar u_t,   y_t = readout(x_t) + D u_t

The layer's `step` discretizes its parameters at every call. A server prepares them once
(`s4d_prepare`, ..., from the layer's parameter dict, the public checkpoint format) and steps
the result, which holds only arrays (a pytree: pass it to `jax.jit`, `jax.lax.scan`):

    prepared = recurrent.s5_prepare(layer, variables["params"], clip_eigs_max_real=...)
    state, y_t = prepared.step(state, u_t)

Time-invariant layers prepare into a `LinearLayer` (A_bar, B_bar, C, D); S6 into a
`SelectiveLayer`, whose step still computes Delta, B and C from its input.
States are those of `init_state(batch_size, dtype)` (zeros; `dtype` is the inputs' dtype,
states are at least float32 as in `ms_ssm_jax.scan`): S4D `(B, H, n)`, S5 `(B, P')`, LRU
`(B, N)`, S6 `(B, H, N)`; complex for the complex layers. A step keeps the states' dtype, so it
is a fixed point of its carry type (`jax.lax.scan`); outputs have u_t's dtype.
Bidirectional layers read future samples and raise `check_causal`'s error.
"""

from __future__ import annotations

from typing import Any, Mapping

from flax import struct
import jax
import jax.numpy as jnp

from ms_ssm_jax import scan
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


@struct.dataclass
class DiagonalSystem:
  """A discretized time-invariant diagonal SSM: `x_t = A_bar x_{t-1} + B_bar u_t`, `y_t = Re(C
  x_t)` (C carries the factor 2 of a conjugate-pair readout). Optionally per stream (S').

  Per channel (`shared_states=False`: S4D, MS-SSM's SISO streams): every channel has its own
  n states; A_bar, B_bar, C `(H, n)` or `(H, S', n)`, u `(B, H)` or `(B, H, S')`, states
  `(B,) + A_bar.shape`.
  Shared (`shared_states=True`: S5, LRU, MS-SSM's MIMO streams): n states read all channels;
  A_bar `(n,)` or `(S', n)`, B_bar `(n, H)` or `(S', n, H)`, C `(H, n)` or `(S', H, n)`,
  u `(B, H)` or `(B, H, S')`, states `(B, n)` or `(B, S', n)`.
  """
  a_bar: Array
  b_bar: Array
  c: Array
  shared_states: bool = struct.field(pytree_node=False)

  def step(self, state: Array, u: Array) -> tuple[Array, Array]:
    """state, u -> (state, y of u's shape, real, in the states' precision)."""
    if self.shared_states:
      state = advance(state, self.a_bar, jnp.einsum("bh...,...nh->b...n", u, self.b_bar))
      y = jnp.einsum("b...n,...hn->bh...", state, self.c)
    else:
      state = advance(state, self.a_bar, self.b_bar * u[..., None])
      # A contraction rather than `sum(state * c, -1)`: XLA:CPU (JAX 0.10.2) ran that reduction
      # 3-4x slower at B=1 (the ListOps MS-SSM step: 2.7 against 0.7 ms), though 2x faster at
      # B=64 (120 against 240 ms); B=1 is the latency that streaming serves.
      y = jnp.einsum("b...n,...n->b...", state, self.c)
    return state, y.real if jnp.iscomplexobj(y) else y


@struct.dataclass
class LinearLayer:
  """S4D, S5 or LRU ready to step: its `DiagonalSystem` and D `(H,)`."""
  system: DiagonalSystem
  d: Array

  def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
    """state, u_t `(B, H)` -> (state, y_t `(B, H)`)."""
    check_step_input(u_t, self.d.shape[0])
    state, y = self.system.step(state, u_t)
    return state, _output(y, self.d, u_t)


@struct.dataclass
class SelectiveLayer:
  """S6 ready to step: x_proj `(H, R + 2N)`, dt_proj `(R, H)`, dt_bias `(H,)`, A `(H, N)`
  (continuous-time, negative), D `(H,)`."""
  x_proj: Array
  dt_proj: Array
  dt_bias: Array
  a: Array
  d: Array

  def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
    """state `(B, H, N)`, u_t `(B, H)` -> (state, y_t `(B, H)`)."""
    check_step_input(u_t, self.d.shape[0])
    rank, n = self.dt_proj.shape[0], self.a.shape[-1]
    dt_low, b_t, c_t = jnp.split(u_t @ self.x_proj, [rank, rank + n], axis=-1)
    delta = jax.nn.softplus(dt_low @ self.dt_proj + self.dt_bias)  # (B, H)
    a_bar, b_scale = discretize(self.a, delta[..., None], "euler_b")
    state = advance(state, a_bar, b_scale * b_t[:, None, :] * u_t[..., None])
    y = jnp.einsum("bhn,bn->bh", state, c_t)
    return state, _output(y, self.d, u_t)


# ----------------------------------------------------------------------------------------------
# S4D: per channel, n states (complex conjugate pairs, read as 2 Re, for `lin` and `inv`).


def s4d_init_state(layer: Any, batch_size: int, dtype: Any) -> Array:
  check_causal(layer)
  return jnp.zeros((batch_size, layer.d_model, layer.num_modes),
                   state_dtype(dtype, layer.is_complex))


def s4d_prepare(layer: Any, params: Params) -> LinearLayer:
  """S4D's A_bar, B_bar, C `(H, n)` (ZOH) and D."""
  check_causal(layer)
  if layer.is_complex:
    a = jax.lax.complex(-jnp.exp(params["A_re_log"]), params["A_im"])
    b, c = _complex(params["B"]), 2.0 * _complex(params["C"])
  else:
    a, b, c = -jnp.exp(params["A_re_log"]), params["B"], params["C"]
  a_bar, b_scale = discretize(a, jnp.exp(params["log_step"])[:, None], "zoh")
  return LinearLayer(DiagonalSystem(a_bar, b_scale * b, c, shared_states=False), params["D"])


def s4d_step(layer: Any, params: Params, state: Array, u_t: Array) -> tuple[Array, Array]:
  """One S4D step: state `(B, H, n)`, u_t `(B, H)` -> (state, y_t `(B, H)`)."""
  return s4d_prepare(layer, params).step(state, u_t)


# ----------------------------------------------------------------------------------------------
# S5: P' complex states shared by the channels.


def s5_init_state(layer: Any, batch_size: int, dtype: Any) -> Array:
  check_causal(layer)
  return jnp.zeros((batch_size, layer.num_modes), state_dtype(dtype, True))


def s5_prepare(layer: Any, params: Params, *, clip_eigs_max_real: float) -> LinearLayer:
  """S5's Lambda_bar `(P',)`, B_bar `(P', H)`, C `(H, P')` and D.

  `clip_eigs_max_real` is S5's bound on Lambda_re under `clip_eigs`.
  """
  check_causal(layer)
  lambda_re = params["Lambda_re"]
  if layer.clip_eigs:
    lambda_re = jnp.minimum(lambda_re, clip_eigs_max_real)
  lambda_bar, b_scale = discretize(jax.lax.complex(lambda_re, params["Lambda_im"]),
                                   jnp.exp(params["log_step"][:, 0]), "zoh")
  system = DiagonalSystem(lambda_bar, b_scale[:, None] * _complex(params["B"]),
                          2.0 * _complex(params["C"]), shared_states=True)
  return LinearLayer(system, params["D"])


def s5_step(layer: Any, params: Params, state: Array, u_t: Array, *,
            clip_eigs_max_real: float) -> tuple[Array, Array]:
  """One S5 step: state `(B, P')`, u_t `(B, H)` -> (state, y_t `(B, H)`)."""
  return s5_prepare(layer, params, clip_eigs_max_real=clip_eigs_max_real).step(state, u_t)


# ----------------------------------------------------------------------------------------------
# LRU: N complex states shared by the channels.


def lru_init_state(layer: Any, batch_size: int, dtype: Any) -> Array:
  check_causal(layer)
  return jnp.zeros((batch_size, layer.state_size), state_dtype(dtype, True))


def lru_prepare(layer: Any, params: Params) -> LinearLayer:
  """LRU's Lambda `(N,)`, gamma B `(N, H)`, C `(H, N)` and D."""
  check_causal(layer)
  lam = jnp.exp(jax.lax.complex(-jnp.exp(params["nu_log"]), jnp.exp(params["theta_log"])))
  b_bar = jnp.exp(params["gamma_log"])[:, None] * jax.lax.complex(params["B_re"], params["B_im"])
  c = jax.lax.complex(params["C_re"], params["C_im"])
  return LinearLayer(DiagonalSystem(lam, b_bar, c, shared_states=True), params["D"])


def lru_step(layer: Any, params: Params, state: Array, u_t: Array) -> tuple[Array, Array]:
  """One LRU step: state `(B, N)`, u_t `(B, H)` -> (state, y_t `(B, H)`)."""
  return lru_prepare(layer, params).step(state, u_t)


# ----------------------------------------------------------------------------------------------
# S6: per channel, N real states; Delta, B and C from the step's input.


def s6_init_state(layer: Any, batch_size: int, dtype: Any) -> Array:
  return jnp.zeros((batch_size, layer.d_model, layer.state_size), state_dtype(dtype, False))


def s6_prepare(layer: Any, params: Params) -> SelectiveLayer:
  """S6's projections, A = -exp(A_log) and D (Delta, B and C depend on each step's input)."""
  del layer  # S6 reads its sizes from the parameters' shapes.
  return SelectiveLayer(params["x_proj"]["kernel"], params["dt_proj"]["kernel"], params["dt_bias"],
                        -jnp.exp(params["A_log"]), params["D"])


def s6_step(layer: Any, params: Params, state: Array, u_t: Array) -> tuple[Array, Array]:
  """One S6 step: state `(B, H, N)`, u_t `(B, H)` -> (state, y_t `(B, H)`)."""
  return s6_prepare(layer, params).step(state, u_t)
