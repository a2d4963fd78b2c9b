"""MSSSMLayer in recurrent form: one sample at a time.

    state = layer.apply(variables, batch_size, method="init_state")
    state, y_t = layer.apply(variables, state, u_t, method="step")   # u_t, y_t: (B, H)

The layer's `step` prepares its parameters at every call; a server prepares them once and
steps the result (`PreparedLayer`, a pytree of arrays):

    prepared = recurrent.prepare(layer, variables["params"])
    state, y_t = prepared.step(state, u_t)

Per step, for the layer input `u_t` `(B, H)` (MS-SSM.md; the equations of `layer.py`):
  decomposition  level s = 1..S reads `a^{s-1}` at `t, t - 2^(s-1), ..., t - (K-1) 2^(s-1)`:
                 the current value and a ring buffer of the `(K-1) 2^(s-1)` past ones
                 (`(B, (K-1) 2^(s-1), H)`, slot `tau mod size` holds time tau; one position
                 counter for all levels, kept modulo the largest size, which every other size
                 divides); bands `(B, H, S')` in stream order;
  streams        one step of each stream's SSM on its band (s6: Delta, B, C from this step's
                 u_t, or from the band), outputs `(B, H, S')`;
  mixer, D       the layer's `ScaleMixer` applied to this one step, then `+ D u_t`.
`prepare` discretizes the streams as `streams.py` does (A_bar, B_bar, C; s6: A), so a layer
trained with `impl="conv"` or `impl="pallas"` steps through the same system; it also
broadcasts the filters to `(S, K, H)`. States are zeros at t = 0 like the parallel pass's zero
padding before the sequence.
"""

from __future__ import annotations

from typing import Any, Mapping

from flax import struct
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


def check_steppable(layer: Any) -> None:
  """Raises a ValueError unless `layer` has a recurrent form (causal, wavelet cascade)."""
  recurrent.check_causal(layer)
  if layer.decomposition != "wavelet":
    raise ValueError(f"step runs the wavelet cascade; decomposition={layer.decomposition!r} "
                     "(an ablation) has no step: use the parallel call")


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
  check_steppable(layer)
  shape, is_complex = stream_state_shape(layer, batch_size)
  sizes = buffer_sizes(layer.num_levels, layer.kernel_size)
  return {
      "position": jnp.zeros((), jnp.int32),
      "buffers": tuple(jnp.zeros((batch_size, size, layer.d_model), dtype) for size in sizes),
      "streams": jnp.zeros(shape, recurrent.state_dtype(dtype, is_complex)),
  }


@struct.dataclass
class SelectiveStreams:
  """s6 streams ready to step: x_proj `(H, S', R + 2N)`, dt_proj `(S', R, H)`, dt_bias
  `(H, S')`, A `(H, S', N)` (continuous-time); Delta, B and C come from each step's input."""
  x_proj: Array
  dt_proj: Array
  dt_bias: Array
  a: Array
  condition_on_raw: bool = struct.field(pytree_node=False)

  def step(self, state: Array, bands: Array, u_t: Array) -> tuple[Array, Array]:
    """state `(B, H, S', N)`, bands `(B, H, S')`, u_t `(B, H)` -> (state, y `(B, H, S')`)."""
    rank, n = self.dt_proj.shape[1], self.a.shape[-1]
    if self.condition_on_raw:
      proj = jnp.einsum("bh,hjk->bjk", u_t, self.x_proj)
    else:
      proj = jnp.einsum("bhj,hjk->bjk", bands, self.x_proj)
    dt_low, b_t, c_t = proj[..., :rank], proj[..., rank:rank + n], proj[..., rank + n:rank + 2 * n]
    delta = jax.nn.softplus(jnp.einsum("bjr,jrh->bhj", dt_low, self.dt_proj) +
                            self.dt_bias)  # (B, H, S')
    a_bar, b_scale = discretize(self.a, delta[..., None], "euler_b")
    state = recurrent.advance(state, a_bar, b_scale * b_t[:, None] * bands[..., None])
    return state, jnp.einsum("bhjn,bjn->bhj", state, c_t)


def _prepare_streams(backbone: str, condition_on: str,
                     params: Params) -> recurrent.DiagonalSystem | SelectiveStreams | None:
  """The streams' coefficients as `streams.py` builds them (None for `backbone="none"`).

  SISO: A_bar, B_bar, C `(H, S', n)`. MIMO: A_bar `(S', n)`, B_bar `(S', n, H)`, C `(S', H, n)`.
  C carries the factor 2 of conjugate-pair readouts.
  """
  if backbone == "none":
    return None
  if backbone == "s6":
    return SelectiveStreams(params["x_proj"], params["dt_proj"], params["dt_bias"],
                            -jnp.exp(params["A_log"]), condition_on_raw=condition_on == "raw")
  if backbone == "s4d_real":
    a_bar, b_scale = discretize(-jnp.exp(params["A_re_log"]),
                                jnp.exp(params["log_step"])[..., None], "zoh")
    return recurrent.DiagonalSystem(a_bar, b_scale * params["B"], params["C"], shared_states=False)
  lam = jax.lax.complex(params["Lambda_re"], params["Lambda_im"])  # s5
  a_bar, b_scale = discretize(lam, jnp.exp(params["log_step"]), "zoh")
  return recurrent.DiagonalSystem(a_bar, b_scale[..., None] * _complex(params["B"]),
                                  2.0 * _complex(params["C"]), shared_states=True)


@struct.dataclass
class PreparedLayer:
  """An MSSSMLayer ready to step: filters phi, psi `(S, K, H)` (None when S = 0), the streams,
  the mixer's parameters and D `(H,)`; the layer's structure as static fields."""
  phi: Array | None
  psi: Array | None
  streams: recurrent.DiagonalSystem | SelectiveStreams | None
  mixer_params: dict[str, Array]
  d: Array
  kernel_size: int = struct.field(pytree_node=False)
  band_activation: str = struct.field(pytree_node=False)
  mixer: str = struct.field(pytree_node=False)

  def step(self, state: State, u_t: Array) -> tuple[State, Array]:
    """One MS-SSM step: state, u_t `(B, H)` -> (state, y_t `(B, H)`) in u_t's dtype."""
    recurrent.check_step_input(u_t, self.d.shape[0])
    position = state["position"]
    buffers, bands = self._decomposition_step(position, state["buffers"], u_t)
    if self.band_activation == "silu":
      bands = jax.nn.silu(bands)
    if self.streams is None:
      streams, y = state["streams"], bands
    elif isinstance(self.streams, SelectiveStreams):
      streams, y = self.streams.step(state["streams"], bands, u_t)
    else:
      streams, y = self.streams.step(state["streams"], bands)
    # The mixer module itself on a one-step sequence: every mixer reads only u_t and y_t.
    z = mixer_lib.ScaleMixer(mixer=self.mixer, parent=None).apply({"params": self.mixer_params},
                                                                  y.astype(u_t.dtype)[:, None],
                                                                  u_t[:, None])[:, 0]
    z = z + self.d.astype(u_t.dtype) * u_t
    period = max((buffer.shape[1] for buffer in buffers), default=1)
    new_state = {"position": (position + 1) % period, "buffers": buffers, "streams": streams}
    return new_state, z.astype(u_t.dtype)

  def _decomposition_step(self, position: Array, buffers: tuple[Array, ...],
                          x_t: Array) -> tuple[tuple[Array, ...], Array]:
    """One step of the causal wavelet cascade: x_t `(B, H)` -> (buffers, bands `(B, H, S')`)."""
    if not buffers:
      return buffers, x_t[..., None]
    phi, psi = self.phi.astype(x_t.dtype), self.psi.astype(x_t.dtype)
    approx, details, new_buffers = [], [], []
    current = x_t
    for level, buffer in enumerate(buffers, start=1):
      dilation, size = 2**(level - 1), buffer.shape[1]
      past = (position - dilation * jnp.arange(1, self.kernel_size)) % size
      taps = jnp.concatenate([current[:, None], buffer[:, past]], axis=1)  # (B, K, H), tap l
      new_buffers.append(buffer.at[:, position % size].set(current))
      approx_t = jnp.einsum("bkh,kh->bh", taps, phi[level - 1])
      details.append(jnp.einsum("bkh,kh->bh", taps, psi[level - 1]))
      approx.append(approx_t)
      current = approx_t
    bands = [approx[-1]] + details[::-1] + [x_t]  # a^S, d^S, ..., d^1, x
    return tuple(new_buffers), jnp.stack(bands, axis=-1)


def prepare(layer: Any, params: Params) -> PreparedLayer:
  """The layer's parameters (its `params` dict) ready to step, computed once."""
  check_steppable(layer)
  phi = psi = None
  if layer.num_levels:
    full_shape = (layer.num_levels, layer.kernel_size, layer.d_model)
    phi = jnp.broadcast_to(params["decomposition"]["phi"], full_shape)
    psi = jnp.broadcast_to(params["decomposition"]["psi"], full_shape)
  streams = _prepare_streams(layer.backbone, layer.s6_condition_on, params.get("streams", {}))
  return PreparedLayer(phi, psi, streams, dict(params.get("mixer", {})), params["D"],
                       kernel_size=layer.kernel_size, band_activation=layer.band_activation,
                       mixer=layer.mixer)


def step(layer: Any, params: Params, state: State, u_t: Array) -> tuple[State, Array]:
  """One MS-SSM step from the parameters: state, u_t `(B, H)` -> (state, y_t `(B, H)`)."""
  return prepare(layer, params).step(state, u_t)
