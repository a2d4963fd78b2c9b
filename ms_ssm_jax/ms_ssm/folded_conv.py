"""The MS-SSM layer in `impl="conv"`: the decomposition folded into the stream kernels.

The wavelet bands are linear and time-invariant, `v^j = f_j * u` with `f_j` the composed band
filter of stream j (`decomposition.stream_filters`), and so are the SISO streams,
`y^j = k_j * v^j`. Hence `y^j = (k_j * f_j) * u`, and any combination `w_q = sum_j M[h, j, q]
y^j` with weights that do not depend on time is one convolution of `u` with the kernel
`g_q = sum_j M[h, j, q] k_j * f_j`. `folded_convolution` builds these Q kernels (per channel,
two-sided when the bands are centered or the layer bidirectional) in the time domain, takes ONE
forward FFT of `u` per channel and Q inverse FFTs; the bands `(B, L, H, S')` never exist.
The layer picks Q: 1 for the `none` and `static` mixers (the whole layer, D included, is one
convolution: the cost of an S4D layer), 2 for the per-channel input-dependent mixer
(`u_t (k_w * u)_t + (k_b * u)_t`), S' for the dense mixers (the stream outputs themselves).

Shapes: `u` `(B, L, H)`; stream kernels `(H, S', L')`; band filters `(R_j, H)` with lookahead
`C_j` (band `v^j_t` reads `u` at `t + C_j - m`, m < R_j); mixing weights `M` `(H, S', Q)`.

Exactness at the sequence ends. The band-wise layer (the scan, or the band-wise convolution)
evaluates each band only at steps `0 <= t' < lengths` (it zeroes the bands beyond the valid
length of a bidirectional layer), while the folded kernel convolves the untruncated bands.
With causal bands (`C_j = 0`, causal layers) the two agree at every step: bands before t = 0
are zero and bands at `t' >= L` reach no output. Centered bands (bidirectional layers) are
nonzero for a few steps before 0 and after the valid end, so two short corrections remove
them: the forward kernels applied to the bands at `t' = -C_j .. -1` (from the first `C_j`
inputs) and the reverse kernels applied to the bands at `t' = lengths .. lengths + R_j - C_j - 2`
(from the last valid inputs). Then every output at `t < lengths` equals the band-wise layer's.
At padded steps `t >= lengths` the forward direction still sees the bands beyond the end that
the band-wise layer zeroes; those outputs differ, and nothing reads them: every block feeds the
layer zeros there and masks its outputs out of norms, pooling and the next layer
(`ms_ssm_jax.blocks`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ms_ssm_jax import fft_conv

Array = jax.Array


def two_sided_filters(filters: Sequence[Array],
                      lookaheads: Sequence[int]) -> tuple[Array, int, int]:
  """The band filters as one stack over the offsets `p = m - C_j`: `v^j_t = sum_p h[p] u_{t-p}`.

  Args:
    filters: S' causal filters `(R_j, H)`.
    lookaheads: S' lookaheads `C_j`.

  Returns:
    `(h, before, after)`: `h` `(before + after + 1, H, S')` with `h[p + before]` the tap at
    offset p, for p from `-before = -max C_j` to `after = max(R_j - 1 - C_j)`.
  """
  before = max(lookaheads)
  after = max(f.shape[0] - 1 - c for f, c in zip(filters, lookaheads))
  taps = [
      jnp.pad(f, [(before - c, after - (f.shape[0] - 1 - c)), (0, 0)])
      for f, c in zip(filters, lookaheads)
  ]
  return jnp.stack(taps, axis=-1), before, after


def compose(kernels: Array, h: Array, before: int, length: int) -> Array:
  """`g[d] = sum_p h[p] k[d - p]` for lags `d = -before .. length-1` (k zero before lag 0).

  Args:
    kernels: `(H, S', length + before)` (or longer) stream kernels, lag 0 first.
    h: `(P, H, S')` taps at offsets `p = -before .. P - 1 - before`.
    before: the largest lookahead.
    length: L.

  Returns:
    `(H, S', before + L)`: entry `i` is lag `i - before`.
  """
  after = h.shape[0] - 1 - before
  size = before + length
  # padded[x + after] = k[x - before] for x in [0, size), zero for negative lags.
  padded = jnp.pad(kernels[..., :size], [(0, 0), (0, 0), (before + after, 0)])
  g = None
  for index in range(h.shape[0]):
    p = index - before
    term = h[index][..., None] * padded[..., after - p:after - p + size]
    g = term if g is None else g + term
  return g


def _circular(g: Array, before: int, n: int) -> Array:
  """Lags `-before .. L-1` (`(..., before + L)`) -> a circular kernel of size `n >= 2L` with lag
  d at `d mod n`. Lags below `-(L-1)` meet no pair of steps and are dropped (they would alias)."""
  length = g.shape[-1] - before
  drop = max(0, before - (length - 1))
  g = jnp.pad(g[..., drop:], [(0, 0)] * (g.ndim - 1) + [(0, n - g.shape[-1] + drop)])
  return jnp.roll(g, drop - before, axis=-1)


def _mirror(g: Array) -> Array:
  """Circular kernel with lag d -> the one with lag -d."""
  return jnp.roll(jnp.flip(g, axis=-1), 1, axis=-1)


def _boundary_bands(window: Array, h: Array, offsets: np.ndarray) -> Array:
  """Bands at a few steps from a window of inputs: `sum_w window[:, w] h[offsets[i, w]]`.

  Args:
    window: `(B, W, H)` inputs.
    h: `(P, H, S')` two-sided taps (index = offset + before).
    offsets: `(I, W)` int indices into h; out-of-range entries are taps that do not exist.

  Returns:
    `(B, I, H, S')`.
  """
  valid = (offsets >= 0) & (offsets < h.shape[0])
  taps = jnp.where(valid[..., None, None], h[np.clip(offsets, 0, h.shape[0] - 1)], 0)
  return jnp.einsum("bwh,iwhj->bihj", window, taps)


def _boundary_response(kernels: Array, bands: Array, mix: Array, length: int) -> Array:
  """`out[b, tau, h, q] = sum_{i, j} k_j[h, tau + 1 + i] M[h, j, q] bands[b, i, h, j]`.

  The kernels' response at steps `tau = 0 .. L-1` to bands placed `1 + i` steps beyond them.
  """
  weighted = jnp.einsum("bihj,hjq->bihjq", bands, mix)
  out = None
  for i in range(bands.shape[1]):
    term = jnp.einsum("hjt,bhjq->bthq", kernels[..., 1 + i:1 + i + length], weighted[:, i])
    out = term if out is None else out + term
  return out


def folded_convolution(u: Array, kernel_fn: Callable[..., Array], filters: Sequence[Array],
                       lookaheads: Sequence[int], mix: Array, *, bidirectional: bool,
                       lengths: Array | None = None, skip: Array | None = None) -> Array:
  """Q mixtures of the stream outputs, `sum_j M[h, j, q] y^j`, by one FFT of `u` per channel.

  Args:
    u: `(B, L, H)` layer inputs (zero beyond `lengths` when bidirectional).
    kernel_fn: `(length, reverse) -> (H, S', length)` real stream kernels (`reverse` the
      reverse scan's, for bidirectional layers).
    filters, lookaheads: S' band filters `(R_j, H)` and their lookaheads `C_j`
      (`decomposition.stream_filters`).
    mix: `(H, S', Q)` weights of the stream outputs.
    bidirectional: add the reverse scan's (anti-causal) outputs.
    lengths: `(B,)` valid lengths (bidirectional), or None (all L steps).
    skip: `(H, Q)` added at lag 0 of the folded kernels (the D skip), or None.

  Returns:
    `(B, L, H, Q)` in u's dtype promoted with the kernels' (at least float32); equal to the
    band-wise layer's at every step `t < lengths` (see the module doc).
  """
  length = u.shape[1]
  n = fft_conv.fft_size(length)
  h, before, after = two_sided_filters(filters, lookaheads)
  forward = kernel_fn(length + before, reverse=False)
  g = _circular(compose(forward, h, before, length), before, n)
  if bidirectional:
    # Reverse scan: v_t' feeds y_t for t' >= t, so g_r[-e] = sum_p h[p] k_r[e + p]: the forward
    # composition with the flipped taps, mirrored.
    backward = kernel_fn(length + after, reverse=True)
    g_r = compose(backward, jnp.flip(h, axis=0), after, length)
    g = g + _mirror(_circular(g_r, after, n))
  g = jnp.einsum("hjn,hjq->hqn", g, mix.astype(g.dtype))
  if skip is not None:
    g = g.at[..., 0].add(skip.astype(g.dtype))
  u = fft_conv.promote(u, g)
  spectrum = jnp.fft.rfft(g, axis=-1)  # (H, Q, F)
  u_f = jnp.fft.rfft(u, n=n, axis=1)  # (B, F, H)
  out = jnp.fft.irfft(u_f[..., None] * jnp.moveaxis(spectrum, -1, 0), n=n, axis=1)[:, :length]
  if before == 0:
    return out
  # The bands at t' = -i (i = 1..before) read u_s with s = -i - p >= 0.
  i, s = np.meshgrid(np.arange(1, before + 1), np.arange(before), indexing="ij")
  head = jnp.pad(u, [(0, 0), (0, max(0, before - length)), (0, 0)])[:, :before]
  out = out - _boundary_response(forward, _boundary_bands(head, h, -i - s + before), mix, length)
  if not bidirectional:
    return out
  if lengths is None:
    lengths = jnp.full(u.shape[:1], length, jnp.int32)
  # The bands at t' = lengths - 1 + i (i = 1..after) read the last `after` valid inputs:
  # window[w] = u[lengths - after + w], offset p = after - 1 + i - w.
  padded = jnp.pad(u, [(0, 0), (after, 0), (0, 0)])
  tail = jax.vmap(lambda x, end: jax.lax.dynamic_slice_in_dim(x, end, after))(padded, lengths)
  i, w = np.meshgrid(np.arange(1, after + 1), np.arange(after), indexing="ij")
  tail_bands = _boundary_bands(tail, h, after - 1 + i - w + before)
  # Computed at tau = lengths - 1 - t, then read back in time order within each length.
  response = jnp.flip(_boundary_response(backward, tail_bands, mix, length), axis=1)
  response = jnp.pad(response, [(0, 0), (0, length), (0, 0), (0, 0)])
  response = jax.vmap(lambda x, shift: jax.lax.dynamic_slice_in_dim(x, shift, length))(
      response, length - lengths)
  return out - response
