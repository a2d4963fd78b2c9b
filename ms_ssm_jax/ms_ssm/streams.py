"""The S' stream SSMs of MS-SSM, stacked on the state axis and run by one scan.

Karami et al., MS-SSM (COLM 2025, arXiv 2512.23824), sec. 3. Stream j (of S', in the order of
`decomposition.wavelet_bands`, slowest first) is a diagonal SSM driven by its band `v^j`:

    SISO, per channel h (s4d_real; N real states):
      x^j_t[h] = A_bar^j[h] x^j_{t-1}[h] + B_bar^j[h] v^j_t[h]       A_bar = exp(Delta A), ZOH
      y^j_t[h] = C^j[h] . x^j_t[h]
    selective (s6, Mamba's S6 per stream, Euler input term):
      Delta^j_t = softplus(W^j_dt (W^j_low c_t) + dt_bias^j),  B^j_t = W^j_B c_t,  C^j_t = W^j_C c_t
      x^j_t[h] = exp(Delta^j_t[h] A^j[h]) x^j_{t-1}[h] + Delta^j_t[h] B^j_t v^j_t[h]
      y^j_t[h] = C^j_t . x^j_t[h]
      with c_t = u_t, the raw layer input (`s6_condition_on="raw"`, the paper), or c_t = v^j_t
      (`"band"`, the paper's Table 5 ablation).
    MIMO, states shared by the channels of a stream (s5; ours, beyond the paper):
      x^j_t = Lambda_bar^j x^j_{t-1} + B_bar^j v^j_t,   y^j_t = 2 Re(C^j x^j_t)  (conjugate pairs)

The S' streams are the groups of ONE discretized diagonal system (`ssm.diagonal`: `Siso` for
s4d_real, `Mimo` for s5, `Selective` for s6) with `(H, S')` inputs, run by
`diagonal.evaluate` in one call, so S' streams cost about one SSM with the same total state.
Bidirectional layers add the reverse recurrence with the same coefficients and their own
readout `C_reverse`.

Scale-dependent init (paper Fig. 2, App. C; the ordering and the MIMO splits are ours). Stream j
has a timescale rank r_j = j (0 = slowest: the band order):
  stratified_a             |A| of rank r = r N + 1, ..., r N + N: together S4D-real over S' N
                           states;
  shared                   every stream |A| = 1..N (the paper's "Mamba init" ablation);
  s5: the log-Delta range [log dt_min, log dt_max] cut into S' blocks, rank 0 the smallest
      steps.
Delta (SISO, s6) is log-uniform in [dt_min, dt_max] per channel and the same on every stream.

Evaluation (`impl`, one of `diagonal.IMPLS`): `scan`, `chunked`, `pallas` (s4d_real and s6:
the fused kernel runs all streams in one launch, streams as its groups; s5: the complex
recurrence kernel, `pallas_recurrence`), `conv` (time-invariant
backbones: FFT convolutions of the bands with the kernels `C^j diag(A_bar^j^l) B_bar^j`) or
`auto`. `MSSSMLayer` folds the decomposition into the SISO kernels instead (`folded_conv`).
Shapes: bands `(B, L, H, S')`, raw input `u` `(B, L, H)` -> stream outputs `(B, L, H, S')`
in the state dtype (at least float32).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ms_ssm_jax.ssm import diagonal
from ms_ssm_jax.ssm import init as ssm_init
from ms_ssm_jax.ssm.discretize import discretize

Array = jax.Array

# "none": no SSM, the stream outputs are the bands themselves (the paper's "no SSM" ablation).
BACKBONES: tuple[str, ...] = ("s4d_real", "s6", "s5", "none")
SCALE_INITS: tuple[str, ...] = ("stratified_a", "shared")
S6_CONDITIONS: tuple[str, ...] = ("raw", "band")
MIMO_BACKBONES: tuple[str, ...] = ("s5",)
LTI_BACKBONES: tuple[str, ...] = ("s4d_real", "s5")
# Backbones with a Pallas kernel: real per-channel states (`pallas_scan`) and MIMO complex ones
# (`pallas_recurrence`).
PALLAS_BACKBONES: tuple[str, ...] = ("s4d_real", "s6", "s5")
# Mamba floors the initial selective step here (Gu and Dao 2023, reference init).
_S6_DT_FLOOR = 1e-4

# ----------------------------------------------------------------------------------------------
# Scale-dependent inits. Each returns per-stream values in band order for the given ranks.


def decay_rates(ranks: tuple[int, ...], n: int, scale_init: str, num_channels: int) -> Array:
  """`|A|` of the real backbones (s4d_real, s6): `(H, S', n)` float32."""
  num_streams = len(ranks)
  if scale_init == "stratified_a":
    rates = -ssm_init.s4d_real_eigenvalues(num_streams * n).reshape(num_streams, n)[ranks, :]
  else:
    rates = np.broadcast_to(-ssm_init.s4d_real_eigenvalues(n), (num_streams, n))
  return jnp.broadcast_to(jnp.asarray(rates, jnp.float32), (num_channels, num_streams, n))


def s5_log_steps(key: Array, ranks: tuple[int, ...], n: int, scale_init: str, dt_min: float,
                 dt_max: float) -> Array:
  """`log Delta` of the per-stream S5s: `(S', n)`, rank r in the r-th block of the log range."""
  keys = jax.random.split(key, len(ranks))
  if scale_init == "shared":
    return jnp.stack([ssm_init.log_uniform(k, (n,), dt_min, dt_max) for k in keys])
  edges = np.exp(np.linspace(math.log(dt_min), math.log(dt_max), len(ranks) + 1)).tolist()
  return jnp.stack(
      [ssm_init.log_uniform(k, (n,), edges[r], edges[r + 1]) for k, r in zip(keys, ranks)])


def s6_dt_bias(key: Array, num_channels: int, num_streams: int, dt_min: float,
               dt_max: float) -> Array:
  """`dt_bias` `(H, S')` with `softplus(dt_bias)` log-uniform, the same on every stream."""
  step = jnp.exp(ssm_init.log_uniform(key, (num_channels, 1), dt_min, dt_max))
  step = jnp.maximum(step, _S6_DT_FLOOR)
  inverse_softplus = step + jnp.log(-jnp.expm1(-step))
  return jnp.broadcast_to(inverse_softplus, (num_channels, num_streams))


# ----------------------------------------------------------------------------------------------
# The discretized streams.


def _complex(parts: Array) -> Array:
  return jax.lax.complex(parts[..., 0], parts[..., 1])


def _symmetric_uniform(bound: float):
  """U(-bound, bound): Mamba's init of the step projection (bound = rank^-1/2)."""

  def init(key: Array, shape: tuple[int, ...], dtype: Any) -> Array:
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


@dataclasses.dataclass(frozen=True)
class SelectiveProjections:
  """The S6 streams' parameters; `system` projects each step's Delta, B and C from them.

  Attributes:
    a: `(H, S', N)` continuous-time eigenvalues (negative).
    x_proj: `(H, S', R + 2N)` (+N with a reverse readout): to the low-rank step, B_t, C_t.
    dt_proj: `(S', R, H)`: the step's rank-R expansion to the channels.
    dt_bias: `(H, S')`.
    condition_on: `raw` (project `u_t`) or `band` (project each stream's band).
  """
  a: Array
  x_proj: Array
  dt_proj: Array
  dt_bias: Array
  condition_on: str

  def system(self, bands: Array, u: Array) -> diagonal.Selective:
    """The streams driven by bands `(B, L, H, S')`, conditioned on `u` `(B, L, H)` or the bands."""
    if self.condition_on == "raw":
      proj = jnp.einsum("blh,hjk->bljk", u, self.x_proj)
    else:
      proj = jnp.einsum("blhj,hjk->bljk", bands, self.x_proj)
    dt_low, b, c, c_reverse = self._split(proj)
    step = jnp.einsum("bljr,jrh->blhj", dt_low, self.dt_proj) + self.dt_bias
    return diagonal.Selective(a=self.a, step=jax.nn.softplus(step), b=b, c=c, c_reverse=c_reverse)

  def fused_layer_inputs(self, u: Array) -> dict[str, Array]:
    """`pallas_ms_ssm.fused_layer`'s stream arguments for causal streams conditioned on `u`
    `(B, L, H)`: the kernel computes the steps from their rank-R projection."""
    dt_low, b, c, _ = self._split(jnp.einsum("blh,hjk->bljk", u, self.x_proj))
    return dict(a=jnp.swapaxes(self.a, 0, 1), dt_low=dt_low, dt_proj=self.dt_proj,
                dt_bias=self.dt_bias, b=b, c=c)

  def _split(self, proj: Array) -> tuple[Array, Array, Array, Array | None]:
    """`(B, L, S', R + 2N [+ N])` projections -> the steps' rank-R part, B_t, C_t, C_reverse_t."""
    rank, n = self.dt_proj.shape[1], self.a.shape[-1]
    c_reverse = proj[..., rank + 2 * n:] if proj.shape[-1] > rank + 2 * n else None
    return proj[..., :rank], proj[..., rank:rank + n], proj[..., rank + n:rank + 2 * n], c_reverse


# ----------------------------------------------------------------------------------------------
# The parameters.


class StreamSSMs(nn.Module):
  """The stream SSMs' parameters, discretized and run by `ssm.diagonal` (see module doc).

  Attributes:
    backbone: one of `BACKBONES` but `none`.
    state_per_stream: N (real states per stream and channel for SISO backbones; per stream
      for s5, whose N/2 complex states are conjugate pairs).
    scale_init: one of `SCALE_INITS`.
    dt_min, dt_max: the log-uniform step range.
    s6_condition_on: one of `S6_CONDITIONS`.
    s5_blocks: J, HiPPO-N blocks per stream (s5).
    bidirectional: add a reverse recurrence with its own readout.
    impl: how the streams run, one of `diagonal.IMPLS` (`MSSSMLayer.impl`).
    chunk_size: T, steps per chunk of `impl="chunked"`.
  """

  backbone: str
  state_per_stream: int
  scale_init: str = "stratified_a"
  dt_min: float = 1e-3
  dt_max: float = 1e-1
  s6_condition_on: str = "raw"
  s5_blocks: int = 1
  bidirectional: bool = False
  impl: str = "scan"
  chunk_size: int = diagonal.DEFAULT_CHUNK_SIZE

  def __call__(self, bands: Array, u: Array, lengths: Array | None = None) -> Array:
    """Bands `(B, L, H, S')`, raw input `u` `(B, L, H)`, lengths `(B,)` -> `(B, L, H, S')`."""
    width, num_streams = bands.shape[-2:]
    system = self.discretized(width, num_streams)
    if isinstance(system, SelectiveProjections):
      system = system.system(bands, u)
    return diagonal.evaluate(system, bands, impl=self.impl, chunk_size=self.chunk_size,
                             lengths=lengths, layer=f"MS-SSM {self.backbone} streams")

  @nn.compact
  def discretized(self, width: int,
                  num_streams: int) -> diagonal.Siso | diagonal.Mimo | SelectiveProjections:
    """The S' streams of `width` channels: a time-invariant system, or S6's projections."""
    build = {"s4d_real": self._siso, "s6": self._selective, "s5": self._s5}[self.backbone]
    return build(width, tuple(range(num_streams)))

  def _readouts(self, init_fn: Callable[..., Array],
                shape: tuple[int, ...]) -> tuple[Array, Array | None]:
    """`C`, and `C_reverse` for bidirectional layers (None otherwise)."""
    c = self.param("C", init_fn, shape, jnp.float32)
    c_reverse = self.param("C_reverse", init_fn, shape, jnp.float32) if self.bidirectional else None
    return c, c_reverse

  def _log_steps(self, width: int, num_streams: int) -> Array:
    return self.param(
        "log_step", lambda key: jnp.broadcast_to(
            ssm_init.log_uniform(key, (width, 1), self.dt_min, self.dt_max), (width, num_streams)))

  def _siso(self, width: int, ranks: tuple[int, ...]) -> diagonal.Siso:
    """s4d_real: n = N real states per channel and stream, ZOH, B = 1."""
    n, shape = self.state_per_stream, (width, len(ranks), self.state_per_stream)
    rates = self.param("A_re_log", lambda _: jnp.log(decay_rates(ranks, n, self.scale_init, width)))
    a = -jnp.exp(rates)
    b = self.param("B", nn.initializers.ones, shape, jnp.float32)
    c, c_reverse = self._readouts(nn.initializers.normal(1.0), shape)
    step = jnp.exp(self._log_steps(width, len(ranks)))[..., None]
    a_bar, b_scale = discretize(a, step, "zoh")
    return diagonal.Siso(a_bar=a_bar, b_bar=b_scale * b, c=c, c_reverse=c_reverse,
                         log_a_bar=step * a)

  def _selective(self, width: int, ranks: tuple[int, ...]) -> SelectiveProjections:
    # The step projection's rank is Mamba's ceil(H / 16).
    n, rank, num_streams = self.state_per_stream, math.ceil(width / 16), len(ranks)
    rates = self.param("A_log", lambda _: jnp.log(decay_rates(ranks, n, self.scale_init, width)))
    outputs = rank + (3 if self.bidirectional else 2) * n
    x_proj = self.param("x_proj", nn.initializers.normal(width**-0.5),
                        (width, num_streams, outputs), jnp.float32)
    dt_proj = self.param("dt_proj", _symmetric_uniform(rank**-0.5), (num_streams, rank, width),
                         jnp.float32)
    dt_bias = self.param("dt_bias",
                         lambda key: s6_dt_bias(key, width, num_streams, self.dt_min, self.dt_max))
    return SelectiveProjections(a=-jnp.exp(rates), x_proj=x_proj, dt_proj=dt_proj, dt_bias=dt_bias,
                                condition_on=self.s6_condition_on)

  def _s5(self, width: int, ranks: tuple[int, ...]) -> diagonal.Mimo:
    """Per-stream S5 (HiPPO-N, conjugate pairs, ZOH) with stratified log-steps."""
    p, num_streams = self.state_per_stream, len(ranks)
    lam, v, v_inv = ssm_init.s5_init(p, self.s5_blocks)
    n = lam.shape[0]
    lam_re = self.param(
        "Lambda_re", lambda _: jnp.broadcast_to(jnp.asarray(lam.real, jnp.float32),
                                                (num_streams, n)))
    lam_im = self.param(
        "Lambda_im", lambda _: jnp.broadcast_to(jnp.asarray(lam.imag, jnp.float32),
                                                (num_streams, n)))

    def b_init(key: Array) -> Array:
      dense = nn.initializers.lecun_normal()(key, (num_streams, p, width), jnp.float32)
      b = jnp.einsum("np,jph->jnh", jnp.asarray(v_inv), dense)
      return jnp.stack([b.real, b.imag], axis=-1)

    def c_init(key: Array, shape: tuple[int, ...], dtype: Any) -> Array:
      # Rows lecun-normal over the P real states, then into the eigenbasis (as S5).
      dense = jax.random.normal(key, shape[:2] + (p, 2), dtype) * p**-0.5
      c = jnp.einsum("jhp,pn->jhn", _complex(dense), jnp.asarray(v))
      return jnp.stack([c.real, c.imag], axis=-1)

    b = _complex(self.param("B", b_init))
    c, c_reverse = self._readouts(c_init, (num_streams, width, n, 2))
    log_step = self.param(
        "log_step",
        lambda key: s5_log_steps(key, ranks, n, self.scale_init, self.dt_min, self.dt_max))
    a_bar, b_scale = discretize(jax.lax.complex(lam_re, lam_im), jnp.exp(log_step), "zoh")
    return diagonal.Mimo(a_bar=a_bar, b_bar=b_scale[..., None] * b, c=_complex(c),
                         c_reverse=None if c_reverse is None else _complex(c_reverse),
                         readout_scale=2.0)
