"""Learned stationary wavelet transform: the multi-resolution front end of MS-SSM.

Karami et al., "MS-SSM: A Multi-Scale State Space Model for Efficient Sequence Modeling"
(COLM 2025, arXiv 2512.23824), sec. 3. With `a^0 = x` and levels `s = 1..S`:

    a^s[t] = sum_{l=0}^{K-1} a^{s-1}[t - 2^(s-1) l] phi_s[l]     (approximation, low-pass)
    d^s[t] = sum_{l=0}^{K-1} a^{s-1}[t - 2^(s-1) l] psi_s[l]     (detail, high-pass)

Each level is a causal depthwise convolution with kernel K and dilation `2^(s-1)`; there is no
downsampling, so every band keeps length L, and the level-s band sees
`R_s = 1 + (K-1)(2^s - 1)` input samples. Filters are learned, per channel and per level.

Shapes: `x` is `(B, L, H)`; `phi`, `psi` are `(S, K, H)`; the bands are `(B, L, H, num_streams)`
in the stream order slowest -> fastest:

    details+approx+raw   a^S, d^S, ..., d^1, x      (S+2 streams, the paper's layer)
    details+approx       a^S, d^S, ..., d^1         (S+1)
    approx_only          a^S, a^{S-1}, ..., a^1     (S; ours: the approximations of all levels)

Our choices (the paper is silent on them): the filters start LeCun-uniform over their K taps.
The bands are computed level by level (`cascade_bands`); `filterbank_filters` composes the
cascade into one parallel bank of longer filters (`phi_1 * up_2(phi_2) * ...`, of length R_s),
which the folded convolution and the fused kernel use. The `centered` variant, for
bidirectional layers, is the causal transform of the zero-padded signal read
`C_s = floor((R_s - 1) / 2)` steps later: band s then spans `C_s` future and `R_s - 1 - C_s`
past samples.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

STREAM_LAYOUTS: tuple[str, ...] = ("details+approx+raw", "details+approx", "approx_only")
# The layer's front end: the learned wavelet cascade, or the paper's "plain Conv1D instead of
# the decomposition" ablation (`Conv1DDecomposition`).
DECOMPOSITIONS: tuple[str, ...] = ("wavelet", "conv1d")


def num_streams(num_levels: int, streams: str) -> int:
  """The number of bands (one SSM stream each) for S levels and a stream layout."""
  check_layout(num_levels, streams)
  if num_levels == 0:
    return 1
  return {
      "details+approx+raw": num_levels + 2, "details+approx": num_levels + 1,
      "approx_only": num_levels
  }[streams]


def check_layout(num_levels: int, streams: str) -> None:
  """Raises a ValueError naming the fix for an unknown layout or one that leaves no stream."""
  if streams not in STREAM_LAYOUTS:
    raise ValueError(f"unknown streams {streams!r}; known: {', '.join(STREAM_LAYOUTS)}")
  if num_levels < 0:
    raise ValueError(f"num_levels must be >= 0, got {num_levels}")
  if num_levels == 0 and streams != "details+approx+raw":
    raise ValueError(
        f"num_levels=0 has no wavelet bands, so streams={streams!r} leaves no stream; use "
        "streams='details+approx+raw' (the raw input is then the single stream)")


def receptive_field(level: int, kernel_size: int) -> int:
  """`R_s = 1 + (K-1)(2^s - 1)`: the input samples seen by the level-s bands."""
  return 1 + (kernel_size - 1) * (2**level - 1)


def centered_lookahead(level: int, kernel_size: int) -> int:
  """`C_s`: how many future samples a centered level-s band sees (0 for level 0)."""
  return (receptive_field(level, kernel_size) - 1) // 2


def causal_dilated_conv(x: Array, filters: Array, dilation: int) -> Array:
  """Causal depthwise dilated convolution with M filters per channel.

  `out[b, t, h, m] = sum_l x[b, t - dilation * l, h] * filters[l, h, m]`, zero before t = 0.
  K shifted copies of x, fused by XLA: exact in any dtype (no conv precision modes), and
  cheap for the short filters used here.

  Args:
    x: `(B, L, H)`.
    filters: `(K, H, M)`.
    dilation: spacing between taps.

  Returns:
    `(B, L, H, M)`.
  """
  length = x.shape[1]
  taps = filters.shape[0]
  span = dilation * (taps - 1)
  padded = jnp.pad(x, [(0, 0), (span, 0), (0, 0)])
  out = None
  for tap in range(taps):
    start = span - dilation * tap
    term = padded[:, start:start + length, :, None] * filters[tap]
    out = term if out is None else out + term
  return out


def _upsample(f: Array, factor: int) -> Array:
  """`(K, H)` -> `(factor (K-1) + 1, H)`: the taps of a filter dilated by `factor`."""
  out = jnp.zeros((factor * (f.shape[0] - 1) + 1,) + f.shape[1:], f.dtype)
  return out.at[::factor].set(f)


def _compose(f: Array, g: Array) -> Array:
  """Per-channel full convolution of `(Kf, H)` and `(Kg, H)` filters: `(Kf + Kg - 1, H)`."""
  g_as_bank = g[:, :, None]
  padded = jnp.pad(f, [(0, g.shape[0] - 1), (0, 0)])[None]
  return causal_dilated_conv(padded, g_as_bank, 1)[0, :, :, 0]


def filterbank_filters(phi: Array, psi: Array, streams: str) -> list[Array]:
  """The impulse responses of the wavelet bands, in stream order (raw stream excluded).

  The approximation filter of level s is `phi_1 * up_2(phi_2) * ... * up_{2^(s-1)}(phi_s)`
  and the detail filter replaces the last factor by `up_{2^(s-1)}(psi_s)`; both have R_s taps.

  Args:
    phi, psi: `(S, K, H)` per-level filters (already broadcast to S levels).
    streams: the stream layout.

  Returns:
    A list of `(R_s, H)` filters, one per wavelet band, ordered like the streams.
  """
  num_levels = phi.shape[0]
  approx_filters, detail_filters = [], []
  lowpass = jnp.ones((1, phi.shape[2]), phi.dtype)
  for level in range(1, num_levels + 1):
    dilation = 2**(level - 1)
    detail_filters.append(_compose(lowpass, _upsample(psi[level - 1], dilation)))
    lowpass = _compose(lowpass, _upsample(phi[level - 1], dilation))
    approx_filters.append(lowpass)
  if streams == "approx_only":
    return approx_filters[::-1]
  return [approx_filters[-1]] + detail_filters[::-1]


def stream_lookaheads(num_levels: int, kernel_size: int, streams: str,
                      centered: bool) -> tuple[int, ...]:
  """`C_j` of every stream, in stream order: the steps each band is read late (0 if causal)."""
  return tuple(
      centered_lookahead(level, kernel_size) if centered else 0
      for _, level in _band_sources(num_levels, streams))


def _delayed(x: Array, dilation: int, taps: int) -> list[Array]:
  """`[x[t - dilation l] for l < taps]` along axis 1, zero before t = 0 (one pad, K slices)."""
  length, span = x.shape[1], dilation * (taps - 1)
  padded = jnp.pad(x, [(0, 0), (span, 0), (0, 0)])
  return [padded[:, span - dilation * l:span - dilation * l + length] for l in range(taps)]


def _advanced(x: Array, dilation: int, taps: int) -> list[Array]:
  """`[x[t + dilation l] for l < taps]` along axis 1, zero from t = L on."""
  length, span = x.shape[1], dilation * (taps - 1)
  padded = jnp.pad(x, [(0, 0), (0, span), (0, 0)])
  return [padded[:, dilation * l:dilation * l + length] for l in range(taps)]


def _filter(views: list[Array], taps: Array) -> Array:
  """`sum_l views[l] * taps[l]`: one level's filter applied to its K shifted views."""
  out = views[0] * taps[0]
  for view, tap in zip(views[1:], taps[1:]):
    out = out + view * tap
  return out


def _band_sources(num_levels: int, streams: str) -> list[tuple[str, int]]:
  """What each stream reads, in stream order: `("a", s)` (a^s), `("d", s)` (d^s) or `("x", 0)`."""
  if num_levels == 0:
    return [("x", 0)]
  if streams == "approx_only":
    return [("a", s) for s in range(num_levels, 0, -1)]
  sources = [("a", num_levels)] + [("d", s) for s in range(num_levels, 0, -1)]
  return sources + [("x", 0)] if streams == "details+approx+raw" else sources


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def cascade_bands(x: Array, phi: Array, psi: Array, streams: str, lookaheads: tuple[int,
                                                                                    ...]) -> Array:
  """All streams' inputs by the level-by-level cascade: `(B, L, H, S')`, stream order.

  Band j is the causal band read `lookaheads[j]` steps later (the centered bands), zero
  beyond the end of x. The custom gradient (`_cascade_bwd`) stores only x and the filters:
  it recomputes the approximations, reads the band cotangents band-major once, and runs the
  transposed cascade with each level's 2K filter gradients reduced in float32, where plain
  autodiff would write K broadcasts per level and read the stacked cotangents once per band.

  Args:
    x: `(B, L, H)`.
    phi, psi: `(S, K, H)` per-level filters (S >= 1), in x's dtype.
    streams: one of `STREAM_LAYOUTS`.
    lookaheads: `C_j` per stream (all 0 for causal bands).
  """
  return _cascade_fwd(x, phi, psi, streams, lookaheads)[0]


def _approximations(x: Array, phi: Array, levels: int) -> list[Array]:
  """`[a^0 = x, a^1, ..., a^levels]`."""
  out = [x]
  for s in range(1, levels + 1):
    out.append(_filter(_delayed(out[-1], 2**(s - 1), phi.shape[1]), phi[s - 1]))
  return out


def _cascade_fwd(x, phi, psi, streams, lookaheads):
  length = x.shape[1]
  # The centered bands read the causal ones C_j steps later, so the causal transform runs over
  # max(C_j) zeros past the end to see the whole signal.
  padded = jnp.pad(x, [(0, 0), (0, max(lookaheads)), (0, 0)])
  levels = {("x", 0): padded}
  current = padded
  for s in range(1, phi.shape[0] + 1):
    views = _delayed(current, 2**(s - 1), phi.shape[1])
    if streams != "approx_only":
      levels[("d", s)] = _filter(views, psi[s - 1])
    current = levels[("a", s)] = _filter(views, phi[s - 1])
  sources = _band_sources(phi.shape[0], streams)
  bands = [levels[source][:, c:c + length] for source, c in zip(sources, lookaheads)]
  return jnp.stack(bands, axis=-1), (x, phi, psi)


def _correlate(views: list[Array], cotangent: Array) -> Array:
  """`(K, H)`: `sum_{b, t} views[l][b, t, h] cotangent[b, t, h]`, accumulated in float32 or
  wider."""
  dtype = jnp.promote_types(cotangent.dtype, jnp.float32)
  return jnp.stack([jnp.sum(v * cotangent, axis=(0, 1), dtype=dtype) for v in views])


def _cascade_bwd(streams, lookaheads, residuals, g):
  x, phi, psi = residuals
  num_levels, taps = phi.shape[0], phi.shape[1]
  length, extra = x.shape[1], max(lookaheads)
  # One transpose to band-major: every band's cotangent is then read contiguously (a band of
  # the (..., S') layout read alone costs a read of all S' bands).
  g_bands = jnp.moveaxis(g, -1, 0)
  cotangents = {}
  for j, (source, c) in enumerate(zip(_band_sources(num_levels, streams), lookaheads)):
    # The band read c steps later: its cotangent lands on the causal band at t + c.
    cotangents[source] = jnp.pad(g_bands[j], [(0, 0), (c, extra - c), (0, 0)])
  padded = jnp.pad(x, [(0, 0), (0, extra), (0, 0)])
  approx = _approximations(padded, phi, num_levels - 1)
  zeros = jnp.zeros((taps, phi.shape[2]), phi.dtype)
  d_phi, d_psi = [zeros] * num_levels, [zeros] * num_levels
  g_approx = cotangents[("a", num_levels)]
  for s in range(num_levels, 0, -1):
    dilation = 2**(s - 1)
    views = _delayed(approx[s - 1], dilation, taps)
    # Every use of a cotangent reads the one padded copy (its first view is the cotangent):
    # a second consumer of the band would read all S' bands once more.
    g_views = _advanced(g_approx, dilation, taps)
    d_phi[s - 1] = _correlate(views, g_views[0])
    g_below = _filter(g_views, phi[s - 1])
    if ("d", s) in cotangents:
      g_views = _advanced(cotangents[("d", s)], dilation, taps)
      d_psi[s - 1] = _correlate(views, g_views[0])
      g_below = g_below + _filter(g_views, psi[s - 1])
    below = ("a", s - 1) if s > 1 else ("x", 0)
    if below in cotangents:
      g_below = g_below + cotangents[below]
    g_approx = g_below
  return (g_approx[:, :length].astype(x.dtype), jnp.stack(d_phi).astype(phi.dtype),
          jnp.stack(d_psi).astype(psi.dtype))


cascade_bands.defvjp(_cascade_fwd, _cascade_bwd)


def wavelet_bands(x: Array, phi: Array, psi: Array, *, streams: str, centered: bool) -> Array:
  """All streams' inputs: the wavelet bands (and the raw input) of `x`.

  Args:
    x: `(B, L, H)`.
    phi, psi: `(S, K, H)` per-level filters.
    streams: one of `STREAM_LAYOUTS`.
    centered: read each band `C_s` steps later (non-causal, for bidirectional layers).

  Returns:
    `(B, L, H, num_streams)` bands in stream order, slowest first.
  """
  num_levels, kernel_size = phi.shape[0], phi.shape[1]
  check_layout(num_levels, streams)
  if num_levels == 0:
    return x[..., None]
  lookaheads = stream_lookaheads(num_levels, kernel_size, streams, centered)
  return cascade_bands(x, phi, psi, streams, lookaheads)


def stream_filters(phi: Array, psi: Array, *, streams: str,
                   centered: bool) -> tuple[list[Array], list[int]]:
  """Every stream's input as a filter of x: `v^j_t = sum_m filters[j][m] x_{t + C_j - m}`.

  The linear-time-invariant view of `wavelet_bands` (which it equals, up to rounding, on
  signals zero before t = 0 and beyond the end), used to fold the bands into the stream kernels.

  Args:
    phi, psi: `(S, K, H)` per-level filters.
    streams: one of `STREAM_LAYOUTS`.
    centered: the bidirectional layers' centered bands.

  Returns:
    `(filters, lookaheads)`: S' causal filters `(R_j, H)` (the raw stream a unit impulse) and
    their lookaheads `C_j` (0 unless centered), in stream order.
  """
  num_levels, kernel_size = phi.shape[0], phi.shape[1]
  check_layout(num_levels, streams)
  impulse = jnp.ones((1, phi.shape[2]), phi.dtype)
  if num_levels == 0:
    return [impulse], [0]
  filters = filterbank_filters(phi, psi, streams)
  if streams == "details+approx+raw":
    filters.append(impulse)
  return filters, list(stream_lookaheads(num_levels, kernel_size, streams, centered))


def init_filters(key: Array, shape: tuple[int, int, int]) -> Array:
  """`(levels, K, H)` filters at init: LeCun-uniform over the K taps of each."""
  bound = math.sqrt(3.0 / shape[1])
  return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


class WaveletDecomposition(nn.Module):
  """Learned SWT of `(B, L, H)` inputs into `(B, L, H, num_streams)` bands (see module doc).

  Attributes:
    num_levels: S (0: no decomposition, the raw input is the single band).
    kernel_size: K >= 2.
    streams: one of `STREAM_LAYOUTS`.
    centered: non-causal centered bands (bidirectional layers).
  """

  num_levels: int = 3
  kernel_size: int = 4
  streams: str = "details+approx+raw"
  centered: bool = False

  def __call__(self, x: Array) -> Array:
    phi, psi = self.filters(x.shape[-1], x.dtype)
    return wavelet_bands(x, phi, psi, streams=self.streams, centered=self.centered)

  def stream_filters(self, width: int, dtype: jnp.dtype) -> tuple[list[Array], list[int]]:
    """Every stream's input as a filter of x and its lookahead (`stream_filters`)."""
    phi, psi = self.filters(width, dtype)
    return stream_filters(phi, psi, streams=self.streams, centered=self.centered)

  @nn.compact
  def filters(self, width: int, dtype: jnp.dtype) -> tuple[Array, Array]:
    """The learned `(phi, psi)`, each `(S, K, H)` in `dtype` (S = 0: no parameters, empty
    filters)."""
    check_layout(self.num_levels, self.streams)
    if self.kernel_size < 2:
      raise ValueError(f"kernel_size must be >= 2, got {self.kernel_size}")
    if self.num_levels == 0:
      empty = jnp.zeros((0, self.kernel_size, width), dtype)
      return empty, empty
    shape = (self.num_levels, self.kernel_size, width)
    phi = self.param("phi", init_filters, shape)
    psi = self.param("psi", init_filters, shape)
    return phi.astype(dtype), psi.astype(dtype)


class Conv1DDecomposition(nn.Module):
  """The paper's "plain Conv1D instead of the decomposition" ablation (Table 5), `(B, L, H)` ->
  `(B, L, H, num_streams)`.

  Each band of the layout (every stream but the raw input, which stays the raw input) is one
  learned depthwise causal convolution of x: `v^j_t = sum_{m < R} w_j[m, h] x_{t + C - m}`.
  Ours (the paper gives no kernel size): R = `receptive_field(S, K)`, the widest wavelet band's
  reach, so that the ablation changes the structure of the filters, not how far they see;
  C = 0, or `centered_lookahead(S, K)` when centered; taps LeCun-uniform over R (as the
  `random` wavelet filters).

  Attributes:
    num_levels: S >= 1 (sets R and the number of bands, as for the wavelet layout).
    kernel_size: K >= 2.
    streams: one of `STREAM_LAYOUTS`.
    centered: non-causal centered bands (bidirectional layers).
  """

  num_levels: int = 3
  kernel_size: int = 4
  streams: str = "details+approx+raw"
  centered: bool = False

  def __call__(self, x: Array) -> Array:
    filters, lookaheads = self.stream_filters(x.shape[-1], x.dtype)
    bands = []
    for taps, lookahead in zip(filters, lookaheads):
      padded = jnp.pad(x, [(0, 0), (0, lookahead), (0, 0)])
      bands.append(causal_dilated_conv(padded, taps[..., None], 1)[:, lookahead:, :, 0])
    return jnp.stack(bands, axis=-1)

  @nn.compact
  def stream_filters(self, width: int, dtype: jnp.dtype) -> tuple[list[Array], list[int]]:
    """S' causal filters `(R_j, H)` in `dtype` and their lookaheads, as `stream_filters`."""
    check_layout(self.num_levels, self.streams)
    num_bands = num_streams(self.num_levels, self.streams)
    raw = self.streams == "details+approx+raw"
    size = receptive_field(self.num_levels, self.kernel_size)
    taps = self.param("taps", init_filters, (num_bands - raw, size, width))
    lookahead = centered_lookahead(self.num_levels, self.kernel_size) if self.centered else 0
    filters, lookaheads = [f.astype(dtype) for f in taps], [lookahead] * (num_bands - raw)
    if raw:
      filters.append(jnp.ones((1, width), dtype))
      lookaheads.append(0)
    return filters, lookaheads
