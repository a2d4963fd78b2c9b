"""MSSSMLayer in recurrent form: one sample at a time, from its parameters.

    state = layer.apply(variables, batch_size, method="init_state")
    state, y_t = layer.apply(variables, state, u_t, method="step")   # u_t, y_t: (B, H)

Per step, for the layer input `u_t` `(B, H)` (MS-SSM.md; the equations of `layer.py`):
  decomposition  level s = 1..S reads `a^{s-1}` at `t, t - 2^(s-1), ..., t - (K-1) 2^(s-1)`:
                 the current value and a ring buffer of the `(K-1) 2^(s-1)` past ones
                 (`(B, (K-1) 2^(s-1), H)`, slot `tau mod size` holds time tau; one position
                 counter for all levels, kept modulo the largest size, which every other size
                 divides); bands `(B, H, S')` in stream order;
  streams        one step of each stream's SSM on its band (s6: Delta, B, C from this step's
                 u_t, or from the band), outputs `(B, H, S')`;
  mixer, D       the layer's `ScaleMixer` applied to this one step, then `+ D u_t`.
The stream coefficients are those of `streams.py`, discretized the same way, so a layer trained
with `impl="conv"` or `impl="pallas"` steps through the same system. States are zeros at
t = 0 like the parallel pass's zero padding before the sequence.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from ms_ssm_jax.ms_ssm import mixer as mixer_lib
from ms_ssm_jax.ssm import recurrent
from ms_ssm_jax.ssm.discretize import discretize

Array = jax.Array
Params = Mapping[str, Any]
State = dict[str, Any]


def _complex(parts: Array) -> Array:
  return jax.lax.complex(parts[..., 0], parts[..., 1])


def buffer_sizes(num_levels: int, kernel_size: int) -> tuple[int, ...]:
  """Past samples each level's dilated filter needs: `(K-1) 2^(s-1)` for s = 1..S."""
  return tuple((kernel_size - 1) * 2**(level - 1) for level in range(1, num_levels + 1))


def stream_state_shape(layer: Any, batch_size: int) -> tuple[tuple[int, ...], bool]:
  """The streams' state shape and whether it is complex.

  SISO (s4d_real, s6: n = N real) `(B, H, S', n)`; MIMO (s5: n = N/2 pairs) `(B, S', n)`.
  """
  n, streams = layer.stream_state_size, layer.num_streams
  return {
      "s4d_real": ((batch_size, layer.d_model, streams, n), False),
      "s6": ((batch_size, layer.d_model, streams, n), False),
      "s5": ((batch_size, streams, n // 2), True),
      "none": ((batch_size, 0), False),
  }[layer.backbone]


def init_state(layer: Any, batch_size: int, dtype: Any) -> State:
  """Zero ring buffers (in `dtype`, the inputs' dtype) and zero stream states."""
  recurrent.check_causal(layer)
  shape, is_complex = stream_state_shape(layer, batch_size)
  sizes = buffer_sizes(layer.num_levels, layer.kernel_size)
  return {
      "position": jnp.zeros((), jnp.int32),
      "buffers": tuple(jnp.zeros((batch_size, size, layer.d_model), dtype) for size in sizes),
      "streams": jnp.zeros(shape, recurrent.state_dtype(dtype, is_complex)),
  }


def decomposition_step(layer: Any, params: Params, position: Array, buffers: tuple[Array, ...],
                       x_t: Array) -> tuple[tuple[Array, ...], Array]:
  """One step of the causal wavelet cascade: x_t `(B, H)` -> (buffers, bands `(B, H, S')`)."""
  if layer.num_levels == 0:
    return buffers, x_t[..., None]
  full_shape = (layer.num_levels, layer.kernel_size, layer.d_model)
  phi = jnp.broadcast_to(params["phi"], full_shape).astype(x_t.dtype)
  psi = jnp.broadcast_to(params["psi"], full_shape).astype(x_t.dtype)
  approx, details, new_buffers = [], [], []
  current = x_t
  for level, buffer in enumerate(buffers, start=1):
    dilation, size = 2**(level - 1), buffer.shape[1]
    past = (position - dilation * jnp.arange(1, layer.kernel_size)) % size
    taps = jnp.concatenate([current[:, None], buffer[:, past]], axis=1)  # (B, K, H), tap l
    new_buffers.append(buffer.at[:, position % size].set(current))
    approx_t = jnp.einsum("bkh,kh->bh", taps, phi[level - 1])
    details.append(jnp.einsum("bkh,kh->bh", taps, psi[level - 1]))
    approx.append(approx_t)
    current = approx_t
  bands = [approx[-1]] + details[::-1] + [x_t]  # a^S, d^S, ..., d^1, x
  return tuple(new_buffers), jnp.stack(bands, axis=-1)


def _linear_coefficients(backbone: str, params: Params) -> tuple[Array, Array, Array, float]:
  """`(a_bar, b_bar, c, readout_scale)` of time-invariant streams, as `streams.py` builds them.

  SISO: a_bar, b_bar, c `(H, S', n)`. MIMO: a_bar `(S', n)`, b_bar `(S', n, H)`, c `(S', H, n)`.
  """
  if backbone == "s4d_real":
    a = -jnp.exp(params["A_re_log"])
    a_bar, b_scale = discretize(a, jnp.exp(params["log_step"])[..., None], "zoh")
    return a_bar, b_scale * params["B"], params["C"], 1.0
  lam = jax.lax.complex(params["Lambda_re"], params["Lambda_im"])  # s5
  a_bar, b_scale = discretize(lam, jnp.exp(params["log_step"]), "zoh")
  return a_bar, b_scale[..., None] * _complex(params["B"]), _complex(params["C"]), 2.0


def streams_step(layer: Any, params: Params, state: Array, bands: Array,
                 u_t: Array) -> tuple[Array, Array]:
  """One step of all streams: bands `(B, H, S')`, u_t `(B, H)` -> (state, y `(B, H, S')`)."""
  if layer.backbone == "none":
    return state, bands
  if layer.backbone == "s6":
    a = -jnp.exp(params["A_log"])  # (H, S', N)
    rank, n = params["dt_proj"].shape[1], a.shape[-1]
    if layer.s6_condition_on == "raw":
      proj = jnp.einsum("bh,hjk->bjk", u_t, params["x_proj"])
    else:
      proj = jnp.einsum("bhj,hjk->bjk", bands, params["x_proj"])
    dt_low, b_t, c_t = proj[..., :rank], proj[..., rank:rank + n], proj[..., rank + n:rank + 2 * n]
    delta = jax.nn.softplus(jnp.einsum("bjr,jrh->bhj", dt_low, params["dt_proj"])
                            + params["dt_bias"])  # (B, H, S')
    a_bar, b_scale = discretize(a, delta[..., None], "euler_b")
    state = recurrent.advance(state, a_bar, b_scale * b_t[:, None] * bands[..., None])
    return state, jnp.einsum("bhjn,bjn->bhj", state, c_t)
  a_bar, b_bar, c, scale = _linear_coefficients(layer.backbone, params)
  if layer.backbone == "s5":
    state = recurrent.advance(state, a_bar, jnp.einsum("bhj,jnh->bjn", bands, b_bar))
    y = jnp.einsum("bjn,jhn->bhj", state, c)
  else:
    state = recurrent.advance(state, a_bar, b_bar * bands[..., None])
    y = jnp.einsum("bhjn,hjn->bhj", state, c)
  return state, scale * y.real if jnp.iscomplexobj(y) else y


def step(layer: Any, params: Params, state: State, u_t: Array) -> tuple[State, Array]:
  """One MS-SSM step: state, u_t `(B, H)` -> (state, y_t `(B, H)`) in u_t's dtype."""
  recurrent.check_causal(layer)
  recurrent.check_step_input(u_t, layer.d_model)
  position = state["position"]
  buffers, bands = decomposition_step(
      layer, params.get("decomposition", {}), position, state["buffers"], u_t)
  if layer.band_activation == "silu":
    bands = jax.nn.silu(bands)
  streams, y = streams_step(layer, params.get("streams", {}), state["streams"], bands, u_t)
  # The mixer module itself on a one-step sequence: every mixer reads only u_t and y_t.
  z = mixer_lib.ScaleMixer(mixer=layer.mixer, parent=None).apply(
      {"params": params.get("mixer", {})}, y.astype(u_t.dtype)[:, None], u_t[:, None])[:, 0]
  z = z + params["D"].astype(u_t.dtype) * u_t
  largest = max(buffer_sizes(layer.num_levels, layer.kernel_size), default=1)
  new_state = {"position": (position + 1) % largest, "buffers": buffers, "streams": streams}
  return new_state, z.astype(u_t.dtype)
