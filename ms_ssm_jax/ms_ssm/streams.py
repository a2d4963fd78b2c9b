"""The S' stream SSMs of MS-SSM, stacked on the state axis and run by one scan.

Karami et al., MS-SSM (COLM 2025, arXiv 2512.23824), sec. 3. Stream j (of S', in the order of
`decomposition.wavelet_bands`, slowest first) is a diagonal SSM driven by its band `v^j`:

    SISO, per channel h (s4d_real, s4d_lin; n = N real, N/2 complex states):
      x^j_t[h] = A_bar^j[h] x^j_{t-1}[h] + B_bar^j[h] v^j_t[h]       A_bar = exp(Delta A), ZOH
      y^j_t[h] = C^j[h] . x^j_t[h]                     (2 Re(.) for s4d_lin, conjugate pairs)
    selective (s6, Mamba's S6 per stream, Euler input term):
      Delta^j_t = softplus(W^j_dt (W^j_low c_t) + dt_bias^j),  B^j_t = W^j_B c_t,  C^j_t = W^j_C c_t
      x^j_t[h] = exp(Delta^j_t[h] A^j[h]) x^j_{t-1}[h] + Delta^j_t[h] B^j_t v^j_t[h]
      y^j_t[h] = C^j_t . x^j_t[h]
      with c_t = u_t, the raw layer input (`s6_condition_on="raw"`, the paper), or c_t = v^j_t
      (`"band"`, the paper's Table 5 ablation).
    MIMO, states shared by the channels of a stream (s5, lru; ours, beyond the paper):
      x^j_t = Lambda_bar^j x^j_{t-1} + B_bar^j v^j_t,   y^j_t = s Re(C^j x^j_t)   (s = 2 for s5)

All streams of all channels are concatenated on the state axis, `P = H S' n` (SISO) or
`P = S' n` (MIMO), and run in ONE call of `ms_ssm_jax.scan.linear_recurrence` (or of the
chunked recurrence when `scan_chunk_size > 0`), so S' streams cost about one SSM with the same
total state. Bidirectional layers add one reverse call with the same coefficients and their own
readout `C_reverse`.

Scale-dependent init (paper Fig. 2, App. C; the ordering and the MIMO splits are ours). Stream j
has a timescale rank r_j (0 = slowest: the band order, `MSSSMLayer.stream_ranks`):
  stratified_a             |A| of rank r = r N + 1, ..., r N + N: together S4D-real over S' N
                           states (s4d_lin: the frequencies pi k of S4D-Lin, likewise cut);
  shared                   every stream |A| = 1..N (the paper's "Mamba init" ablation);
  s5: the log-Delta range [log dt_min, log dt_max] cut into S' blocks, rank 0 the smallest
      steps; lru: the radius range [0.9, 0.999] cut into S' blocks, rank 0 nearest to 1.
Delta (SISO, s6) is log-uniform in [dt_min, dt_max] per channel and the same on every stream.

The coefficients `(a, b)` and the readouts are separate methods of `LinearStreams` and
`SelectiveStreams`, so that a faster evaluation (FFT convolution, fused kernel) can reuse them.

Evaluation (`mode`): `scan` (default) as above; `conv` (time-invariant backbones only) computes
the same stream outputs as FFT convolutions of the bands (`ms_ssm_jax.fft_conv`) with the
kernels `C^j diag(A_bar^j^l) B_bar^j`: per channel and stream `(H, S', L)` for SISO backbones,
one `(L, H, H)` MIMO kernel per stream for s5 and lru; causal, plus an anti-causal one with
`C_reverse` when bidirectional (the bands must then be zero beyond the valid lengths). No
states are stored. Both modes have the same parameters.
`scan_impl="pallas"` (s4d_real and s6 streams; `"auto"` picks it on GPU/TPU) evaluates the scan
with the fused kernel of `ms_ssm_jax.pallas_scan`, all streams in one launch (streams are its
groups: for s6 the streams' `B_t`, `C_t` are shared by their channels); `scan_chunk_size` applies
to the associative scan only, since the kernel never stores per-step states.
Shapes: bands `(B, L, H, S')`, raw input `u` `(B, L, H)` -> stream outputs `(B, L, H, S')`
in the state dtype (at least float32).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ms_ssm_jax import fft_conv
from ms_ssm_jax import pallas_scan
from ms_ssm_jax import scan
from ms_ssm_jax.ssm import common
from ms_ssm_jax.ssm import init as ssm_init
from ms_ssm_jax.ssm.discretize import discretize

Array = jax.Array
PyTree = Any

# "none": no SSM, the stream outputs are the bands themselves (the paper's "no SSM" ablation).
BACKBONES: tuple[str, ...] = ("s4d_real", "s4d_lin", "s6", "s5", "lru", "none")
SCALE_INITS: tuple[str, ...] = ("stratified_a", "shared")
S6_CONDITIONS: tuple[str, ...] = ("raw", "band")
MIMO_BACKBONES: tuple[str, ...] = ("s5", "lru")
LTI_BACKBONES: tuple[str, ...] = ("s4d_real", "s4d_lin", "s5", "lru")
# Backbones with real per-channel states, which the fused Pallas kernel evaluates.
PALLAS_BACKBONES: tuple[str, ...] = ("s4d_real", "s6")
# Mamba floors the initial selective step here (Gu and Dao 2023, reference init).
_S6_DT_FLOOR = 1e-4
# The lru streams' eigenvalue ring: radius in [0.9, 0.999], phase <= pi/10, as our LRU baseline
# (configs/common.py, docs/BASELINES.md).
LRU_R_MIN, LRU_R_MAX, LRU_MAX_PHASE = 0.9, 0.999, math.pi / 10


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


def lin_frequencies(ranks: tuple[int, ...], n: int, scale_init: str,
                    num_channels: int) -> Array:
  """Imaginary parts `pi k` of S4D-Lin (`n` complex states per stream): `(H, S', n)`."""
  num_streams = len(ranks)
  if scale_init == "stratified_a":
    freqs = ssm_init.s4d_lin_eigenvalues(num_streams * n).imag.reshape(num_streams, n)[ranks, :]
  else:
    freqs = np.broadcast_to(ssm_init.s4d_lin_eigenvalues(n).imag, (num_streams, n))
  return jnp.broadcast_to(jnp.asarray(freqs, jnp.float32), (num_channels, num_streams, n))


def s5_log_steps(key: Array, ranks: tuple[int, ...], n: int, scale_init: str, dt_min: float,
                 dt_max: float) -> Array:
  """`log Delta` of the per-stream S5s: `(S', n)`, rank r in the r-th block of the log range."""
  keys = jax.random.split(key, len(ranks))
  if scale_init == "shared":
    return jnp.stack([ssm_init.log_uniform(k, (n,), dt_min, dt_max) for k in keys])
  edges = np.exp(np.linspace(math.log(dt_min), math.log(dt_max), len(ranks) + 1)).tolist()
  return jnp.stack([ssm_init.log_uniform(k, (n,), edges[r], edges[r + 1])
                    for k, r in zip(keys, ranks)])


def lru_rings(key: Array, ranks: tuple[int, ...], n: int, scale_init: str
              ) -> tuple[Array, Array]:
  """`(nu_log, theta_log)` `(S', n)`: rank r on the r-th ring of `[LRU_R_MIN, LRU_R_MAX]` from
  the top."""
  r_min, r_max, max_phase = LRU_R_MIN, LRU_R_MAX, LRU_MAX_PHASE
  keys = jax.random.split(key, len(ranks))
  if scale_init == "shared":
    rings = [ssm_init.lru_ring_init(k, n, r_min, r_max, max_phase) for k in keys]
  else:
    edges = np.linspace(r_max, r_min, len(ranks) + 1).tolist()  # floats: keep float32 math
    rings = [ssm_init.lru_ring_init(k, n, edges[r + 1], edges[r], max_phase)
             for k, r in zip(keys, ranks)]
  return jnp.stack([nu for nu, _ in rings]), jnp.stack([theta for _, theta in rings])


def s6_dt_bias(key: Array, num_channels: int, num_streams: int, dt_min: float,
               dt_max: float) -> Array:
  """`dt_bias` `(H, S')` with `softplus(dt_bias)` log-uniform, the same on every stream."""
  step = jnp.exp(ssm_init.log_uniform(key, (num_channels, 1), dt_min, dt_max))
  step = jnp.maximum(step, _S6_DT_FLOOR)
  inverse_softplus = step + jnp.log(-jnp.expm1(-step))
  return jnp.broadcast_to(inverse_softplus, (num_channels, num_streams))


# ----------------------------------------------------------------------------------------------
# The math of one evaluation: coefficients and readouts as plain functions of arrays.


def _complex(parts: Array) -> Array:
  return jax.lax.complex(parts[..., 0], parts[..., 1])


def _symmetric_uniform(bound: float):
  """U(-bound, bound): Mamba's init of the step projection (bound = rank^-1/2)."""
  def init(key: Array, shape: tuple[int, ...], dtype: Any) -> Array:
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


@dataclasses.dataclass(frozen=True)
class LinearStreams:
  """Time-invariant streams (s4d_real, s4d_lin, s5, lru), discretized.

  Attributes:
    a_bar: `(P,)` decays, `P = H S' n` (SISO, channel-major) or `S' n` (MIMO, stream-major).
    b_bar: `(H, S', n)` (SISO) or `(S', n, H)` (MIMO) input scales.
    c: readout `(H, S', n)` (SISO) or `(S', H, n)` (MIMO).
    c_reverse: the reverse scan's readout, same shape, or None.
    readout_scale: 2 when each state stands for a conjugate pair (`y = 2 Re(C x)`), else 1.
    mimo: states shared by the channels of a stream.
    log_a_bar: `(P,)` real `Delta A` with `a_bar = exp(log_a_bar)` (real SISO streams, which
      the fused kernel evaluates), or None.
  """
  a_bar: Array
  b_bar: Array
  c: Array
  c_reverse: Array | None
  readout_scale: float
  mimo: bool
  log_a_bar: Array | None = None

  def inputs(self, bands: Array, u: Array) -> PyTree:
    del u  # LTI streams see only their bands.
    return {"bands": bands}

  def coefficients(self, xs: PyTree) -> tuple[Array, Array]:
    """`(a (P,), b (B, T, P))` for bands `(B, T, H, S')`."""
    bands = xs["bands"]
    if self.mimo:
      b = jnp.einsum("bthj,jnh->btjn", bands, self.b_bar)
    else:
      b = bands[..., None] * self.b_bar
    return self.a_bar, b.reshape(b.shape[:2] + (-1,))

  def readout(self, states: Array, xs: PyTree, *, reverse: bool) -> Array:
    """States `(B, T, P)` -> stream outputs `(B, T, H, S')`."""
    del xs
    c = self.c_reverse if reverse else self.c
    if self.mimo:
      states = states.reshape(states.shape[:2] + c.shape[:1] + c.shape[2:])
      y = jnp.einsum("btjn,jhn->bthj", states, c)
    else:
      y = jnp.einsum("bthjn,hjn->bthj", states.reshape(states.shape[:2] + c.shape), c)
    return self._real_output(y)

  def _real_output(self, y: Array) -> Array:
    """The real output of a readout (or kernel): `readout_scale Re(.)` for complex states."""
    return self.readout_scale * y.real if jnp.iscomplexobj(y) else y

  def fused_scan(self, xs: PyTree, *, reverse: bool) -> Array:
    """The scan's stream outputs `(B, L, H, S')` by the fused kernel (real SISO streams)."""
    if self.log_a_bar is None:
      raise ValueError("scan_impl='pallas' needs real per-channel states (backbone s4d_real or "
                       "s6); use scan_impl='associative' for complex or MIMO backbones")
    shape = self.b_bar.shape  # (H, S', n)
    bands = jnp.swapaxes(xs["bands"], 2, 3)  # (B, L, S', H)
    per_stream = lambda x: jnp.swapaxes(x.reshape(shape), 0, 1)  # (S', H, n)
    y = pallas_scan.selective_scan(
        bands, None, per_stream(self.log_a_bar),  # steps of 1: log_a_bar is Delta A already
        b_channel=per_stream(self.b_bar),
        c_channel=per_stream(self.c_reverse if reverse else self.c), reverse=reverse)
    return jnp.swapaxes(y, 2, 3)

  def kernel(self, length: int, *, reverse: bool) -> Array:
    """Real convolution kernels: `(H, S', L)` (SISO) or `(S', L, H, H)` (MIMO, per stream)."""
    c = self.c_reverse if reverse else self.c
    if self.mimo:
      a_bar = self.a_bar.reshape(self.b_bar.shape[:2])  # (S', n)
      kernels = jax.vmap(functools.partial(fft_conv.mimo_kernel, length=length))(
          a_bar, self.b_bar, c)
    else:
      kernels = fft_conv.siso_kernel(self.a_bar.reshape(self.b_bar.shape), self.b_bar, c, length)
    return self._real_output(kernels)

  def convolve(self, bands: Array, *, reverse: bool) -> Array:
    """The scan's stream outputs `(B, L, H, S')` as FFT convolutions of the bands.

    `reverse` gives the reverse scan's outputs; the bands must then be zero beyond each
    sequence's valid length.
    """
    kernels = self.kernel(bands.shape[1], reverse=reverse)
    if self.mimo:
      conv = fft_conv.anticausal_conv_mimo if reverse else fft_conv.causal_conv_mimo
      return jax.vmap(conv, in_axes=(3, 0), out_axes=3)(bands, kernels)
    conv = fft_conv.anticausal_conv if reverse else fft_conv.causal_conv
    return conv(bands, kernels)


@dataclasses.dataclass(frozen=True)
class SelectiveStreams:
  """S6 streams: Delta, B and C per step from projections of `u` (or of the band).

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

  def inputs(self, bands: Array, u: Array) -> PyTree:
    """The per-step quantities of the streams, `(B, L, ...)` each (small: no state axis)."""
    rank, n = self.dt_proj.shape[1], self.a.shape[-1]
    if self.condition_on == "raw":
      proj = jnp.einsum("blh,hjk->bljk", u, self.x_proj)
    else:
      proj = jnp.einsum("blhj,hjk->bljk", bands, self.x_proj)
    dt_low, b, c = proj[..., :rank], proj[..., rank:rank + n], proj[..., rank + n:rank + 2 * n]
    step = jnp.einsum("bljr,jrh->blhj", dt_low, self.dt_proj) + self.dt_bias
    xs = {"bands": bands, "step": jax.nn.softplus(step), "B": b, "C": c}
    if proj.shape[-1] > rank + 2 * n:
      xs["C_reverse"] = proj[..., rank + 2 * n:]
    return xs

  def coefficients(self, xs: PyTree) -> tuple[Array, Array]:
    """`(a (B, T, P), b (B, T, P))` with `P = H S' N`."""
    a_bar, b_scale = discretize(self.a, xs["step"][..., None], "euler_b")  # (B, T, H, S', N)
    b = b_scale * xs["B"][:, :, None] * xs["bands"][..., None]
    flat = a_bar.shape[:2] + (-1,)
    return a_bar.reshape(flat), b.reshape(flat)

  def fused_scan(self, xs: PyTree, *, reverse: bool) -> Array:
    """The scan's stream outputs `(B, L, H, S')` by the fused kernel, streams as groups."""
    to_kernel = lambda x: jnp.swapaxes(x, 2, 3)  # (B, L, H, S') <-> (B, L, S', H)
    y = pallas_scan.selective_scan(
        to_kernel(xs["bands"]), to_kernel(xs["step"]), jnp.swapaxes(self.a, 0, 1),
        b=xs["B"], c=xs["C_reverse" if reverse else "C"], reverse=reverse)
    return to_kernel(y)

  def readout(self, states: Array, xs: PyTree, *, reverse: bool) -> Array:
    """States `(B, T, P)` -> `(B, T, H, S')` with the per-step `C_t` of each stream."""
    c = xs["C_reverse" if reverse else "C"]  # (B, T, S', N)
    states = states.reshape(states.shape[:2] + self.a.shape)
    return jnp.einsum("bthjn,btjn->bthj", states, c)


def check_mode(mode: str, backbone: str, scan_chunk_size: int, scan_impl: str = "associative"
               ) -> None:
  """Raises a ValueError for an unknown mode or scan_impl, `conv` with s6 or with a scan chunk
  size, or `scan_impl="pallas"` with `conv` or a backbone the kernel does not cover."""
  common.check_choice("mode", mode, common.MODES)
  common.check_choice("scan_impl", scan_impl, scan.IMPLS)
  if scan_impl == "pallas" and mode == "conv":
    raise ValueError("scan_impl='pallas' evaluates the scan; mode='conv' has none: use "
                     "mode='scan' with it, or scan_impl='associative' (or 'auto') with conv")
  if scan_impl == "pallas" and backbone not in PALLAS_BACKBONES:
    raise ValueError(f"scan_impl='pallas' covers real per-channel states "
                     f"({', '.join(PALLAS_BACKBONES)}); backbone={backbone!r} needs "
                     "scan_impl='associative' (or 'auto')")
  if mode == "conv" and backbone not in LTI_BACKBONES:
    raise ValueError(f"mode='conv' needs a time-invariant backbone ({', '.join(LTI_BACKBONES)}); "
                     f"backbone={backbone!r} is selective and has no convolution form: "
                     "use mode='scan'")
  common.check_mode(mode, scan_chunk_size)


def run_streams(streams: LinearStreams | SelectiveStreams, bands: Array, u: Array, *,
                bidirectional: bool, chunk_size: int, mode: str = "scan",
                impl: str = "associative") -> Array:
  """Stream outputs `(B, L, H, S')`: one scan over all streams (two when bidirectional), or
  their FFT convolutions (`mode="conv"`, `LinearStreams` only). `impl` (`scan.IMPLS`) picks the
  scan: associative (chunked when `chunk_size > 0`) or the fused Pallas kernel.

  For bidirectional layers `bands` must be zero beyond each sequence's valid length.
  """
  if mode == "conv":
    if not isinstance(streams, LinearStreams):
      raise ValueError("mode='conv' needs time-invariant streams; selective (s6) streams have "
                       "no convolution form: use mode='scan'")
    y = streams.convolve(bands, reverse=False)
    if bidirectional:
      y = y + streams.convolve(bands, reverse=True)
    return y
  xs = streams.inputs(bands, u)
  fusable = isinstance(streams, SelectiveStreams) or streams.log_a_bar is not None
  if scan.resolve_impl(impl, pallas_supported=fusable, layer="MS-SSM streams") == "pallas":
    y = streams.fused_scan(xs, reverse=False)
    if bidirectional:
      y = y + streams.fused_scan(xs, reverse=True)
    return y
  y = common.run_recurrence(
      streams.coefficients, functools.partial(streams.readout, reverse=False), xs,
      chunk_size=chunk_size)
  if bidirectional:
    y = y + common.run_recurrence(
        streams.coefficients, functools.partial(streams.readout, reverse=True), xs,
        chunk_size=chunk_size, reverse=True)
  return y


# ----------------------------------------------------------------------------------------------
# The parameters.


class StreamSSMs(nn.Module):
  """The stream SSMs' parameters, and their evaluation by `run_streams` (see module doc).

  Attributes:
    backbone: one of `BACKBONES`.
    state_per_stream: N (real states per stream and channel for SISO backbones; per stream
      for s5, whose N/2 complex states are conjugate pairs; complex states for lru).
    ranks: timescale rank of each stream (`MSSSMLayer.stream_ranks`).
    scale_init: one of `SCALE_INITS`.
    dt_min, dt_max: the log-uniform step range.
    s6_condition_on: one of `S6_CONDITIONS`.
    s6_dt_rank: R, the rank of the selective step projection.
    s5_blocks: J, HiPPO-N blocks per stream (s5).
    bidirectional: add a reverse scan with its own readout.
    scan_chunk_size: 0 = one associative scan; T > 0 = chunks of T steps (`mode="scan"`,
      `scan_impl="associative"`).
    mode: `scan` or `conv` (FFT convolution; time-invariant backbones), `common.MODES`.
    scan_impl: `associative`, `pallas` (fused kernel; s4d_real and s6) or `auto`, `scan.IMPLS`.
  """

  backbone: str
  state_per_stream: int
  ranks: tuple[int, ...]
  scale_init: str = "stratified_a"
  dt_min: float = 1e-3
  dt_max: float = 1e-1
  s6_condition_on: str = "raw"
  s6_dt_rank: int = 1
  s5_blocks: int = 1
  bidirectional: bool = False
  scan_chunk_size: int = 0
  mode: str = "scan"
  scan_impl: str = "associative"

  def __call__(self, bands: Array, u: Array) -> Array:
    """Bands `(B, L, H, S')` and raw input `u` `(B, L, H)` -> `(B, L, H, S')`."""
    check_mode(self.mode, self.backbone, self.scan_chunk_size, self.scan_impl)
    width, num_streams = bands.shape[-2:]
    if num_streams != len(self.ranks):
      raise ValueError(f"{num_streams} bands but {len(self.ranks)} stream ranks")
    return run_streams(self.discretized(width), bands, u, bidirectional=self.bidirectional,
                       chunk_size=self.scan_chunk_size, mode=self.mode, impl=self.scan_impl)

  @nn.compact
  def discretized(self, width: int) -> LinearStreams | SelectiveStreams:
    """The streams of `width` channels, discretized (one per rank)."""
    build = {"s4d_real": self._siso, "s4d_lin": self._siso, "s6": self._selective,
             "s5": self._s5, "lru": self._lru}[self.backbone]
    return build(width, len(self.ranks))

  def _readouts(self, init_fn: Callable[..., Array], shape: tuple[int, ...]
                ) -> tuple[Array, Array | None]:
    """`C`, and `C_reverse` for bidirectional layers (None otherwise)."""
    c = self.param("C", init_fn, shape, jnp.float32)
    c_reverse = self.param("C_reverse", init_fn, shape, jnp.float32) if self.bidirectional else None
    return c, c_reverse

  def _log_steps(self, width: int, num_streams: int) -> Array:
    return self.param("log_step", lambda key: jnp.broadcast_to(ssm_init.log_uniform(
        key, (width, 1), self.dt_min, self.dt_max), (width, num_streams)))

  def _siso(self, width: int, num_streams: int) -> LinearStreams:
    """s4d_real (n = N real states) and s4d_lin (n = N/2 conjugate pairs), ZOH, B = 1."""
    ranks, scale = self.ranks, self.scale_init
    if self.backbone == "s4d_real":
      n = self.state_per_stream
      rates = self.param("A_re_log", lambda _: jnp.log(decay_rates(ranks, n, scale, width)))
      a = -jnp.exp(rates)
      b = self.param("B", nn.initializers.ones, (width, num_streams, n), jnp.float32)
      c, c_reverse = self._readouts(nn.initializers.normal(1.0), (width, num_streams, n))
      readout_scale = 1.0
    else:
      n = self.state_per_stream // 2
      shape = (width, num_streams, n)
      rates = self.param("A_re_log", nn.initializers.constant(math.log(0.5)), shape, jnp.float32)
      freqs = self.param("A_im", lambda _: lin_frequencies(ranks, n, scale, width))
      a = jax.lax.complex(-jnp.exp(rates), freqs)
      b = _complex(self.param("B", lambda _: jnp.stack(
          [jnp.ones(shape, jnp.float32), jnp.zeros(shape, jnp.float32)], axis=-1)))
      c, c_reverse = self._readouts(nn.initializers.normal(0.5**0.5), shape + (2,))
      c, c_reverse = _complex(c), None if c_reverse is None else _complex(c_reverse)
      readout_scale = 2.0
    step = jnp.exp(self._log_steps(width, num_streams))
    a_bar, b_scale = discretize(a, step[..., None], "zoh")
    log_a_bar = None if jnp.iscomplexobj(a) else (step[..., None] * a).reshape(-1)
    return LinearStreams(a_bar=a_bar.reshape(-1), b_bar=b_scale * b, c=c, c_reverse=c_reverse,
                         readout_scale=readout_scale, mimo=False, log_a_bar=log_a_bar)

  def _selective(self, width: int, num_streams: int) -> SelectiveStreams:
    n, rank = self.state_per_stream, self.s6_dt_rank
    rates = self.param(
        "A_log", lambda _: jnp.log(decay_rates(self.ranks, n, self.scale_init, width)))
    outputs = rank + (3 if self.bidirectional else 2) * n
    x_proj = self.param("x_proj", nn.initializers.normal(width**-0.5),
                        (width, num_streams, outputs), jnp.float32)
    dt_proj = self.param("dt_proj", _symmetric_uniform(rank**-0.5), (num_streams, rank, width),
                         jnp.float32)
    dt_bias = self.param("dt_bias", lambda key: s6_dt_bias(
        key, width, num_streams, self.dt_min, self.dt_max))
    return SelectiveStreams(a=-jnp.exp(rates), x_proj=x_proj, dt_proj=dt_proj,
                            dt_bias=dt_bias, condition_on=self.s6_condition_on)

  def _s5(self, width: int, num_streams: int) -> LinearStreams:
    """Per-stream S5 (HiPPO-N, conjugate pairs, ZOH) with stratified log-steps."""
    p = self.state_per_stream
    lam, v, v_inv = ssm_init.s5_init(p, self.s5_blocks, conj_sym=True)
    n = lam.shape[0]
    lam_re = self.param("Lambda_re", lambda _: jnp.broadcast_to(
        jnp.asarray(lam.real, jnp.float32), (num_streams, n)))
    lam_im = self.param("Lambda_im", lambda _: jnp.broadcast_to(
        jnp.asarray(lam.imag, jnp.float32), (num_streams, n)))

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
    log_step = self.param("log_step", lambda key: s5_log_steps(
        key, self.ranks, n, self.scale_init, self.dt_min, self.dt_max))
    a_bar, b_scale = discretize(jax.lax.complex(lam_re, lam_im), jnp.exp(log_step), "zoh")
    return LinearStreams(a_bar=a_bar.reshape(-1), b_bar=b_scale[..., None] * b, c=_complex(c),
                         c_reverse=None if c_reverse is None else _complex(c_reverse),
                         readout_scale=2.0, mimo=True)

  def _lru(self, width: int, num_streams: int) -> LinearStreams:
    """Per-stream LRU (full complex states, trained gamma) on stratified rings."""
    n = self.state_per_stream
    rings = functools.partial(lru_rings, ranks=self.ranks, n=n, scale_init=self.scale_init)
    nu_log = self.param("nu_log", lambda key: rings(key)[0])
    theta_log = self.param("theta_log", lambda key: rings(key)[1])
    gamma_log = self.param("gamma_log", lambda _: ssm_init.lru_gamma_log(nu_log))
    b_init = nn.initializers.normal((2 * width)**-0.5)
    b_re = self.param("B_re", b_init, (num_streams, n, width), jnp.float32)
    b_im = self.param("B_im", b_init, (num_streams, n, width), jnp.float32)
    c, c_reverse = self._readouts(nn.initializers.normal(n**-0.5), (num_streams, width, n, 2))
    a_bar = jnp.exp(jax.lax.complex(-jnp.exp(nu_log), jnp.exp(theta_log)))
    b = jax.lax.complex(b_re, b_im) * jnp.exp(gamma_log)[..., None]
    return LinearStreams(a_bar=a_bar.reshape(-1), b_bar=b, c=_complex(c),
                         c_reverse=None if c_reverse is None else _complex(c_reverse),
                         readout_scale=1.0, mimo=True)
