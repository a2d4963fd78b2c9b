"""The MS-SSM layer in `impl="conv"`: the decomposition folded into the stream kernels.

The wavelet bands are linear and time-invariant, `v^j = f_j * u` with `f_j` the composed band
filter of stream j (`decomposition.stream_filters`), and so are the SISO streams,
`y^j = k_j * v^j`. Hence `y^j = (k_j * f_j) * u`, and any combination `w_q = sum_j M[h, j, q]
y^j` with weights that do not depend on time is one convolution of `u` with the kernel
`g_q = sum_j M[h, j, q] k_j * f_j`. `folded_convolution` builds these Q kernels (per channel,
two-sided when the bands are centered or the layer bidirectional) in the time domain, in closed
form from the streams' eigenvalues (`direction_kernels`: the composition with the few-tap band
filters is a change of the weights of the kernels' exponentials), takes ONE forward FFT of `u`
per channel and Q inverse FFTs; the bands `(B, L, H, S')` never exist.
The layer picks Q: 1 for the `none` and `static` mixers (the whole layer, D included, is one
convolution: the cost of an S4D layer), 2 for the per-channel input-dependent mixer
(`u_t (k_w * u)_t + (k_b * u)_t`), S' for the dense mixers (the stream outputs themselves).

Shapes: `u` `(B, L, H)`; streams `(H, S', N)`; band filters `(R_j, H)` with lookahead
`C_j` (band `v^j_t` reads `u` at `t + C_j - m`, m < R_j); mixing weights `M` `(H, S', Q)`.

Exactness at the sequence ends. The band-wise layer (the scan, or the band-wise convolution)
evaluates each band only at steps `0 <= t' < lengths` (it zeroes the bands beyond the valid
length of a bidirectional layer), while the folded kernel convolves the untruncated bands.
With causal bands (`C_j = 0`, causal layers) the two agree at every step: bands before t = 0
are zero and bands at `t' >= L` reach no output. Centered bands (bidirectional layers) are
nonzero for a few steps before 0 and after the valid end, so two short corrections remove
them: the forward kernels applied to the bands at `t' = -C_j .. -1` (from the first `C_j`
inputs) and the reverse kernels applied to the bands at `t' = lengths .. lengths + R_j - C_j - 2`
(from the last valid inputs), each a parameter-only response matrix times those few inputs.
Then every output at `t < lengths` equals the band-wise layer's.
At padded steps `t >= lengths` the forward direction still sees the bands beyond the end that
the band-wise layer zeroes; those outputs differ, and nothing reads them: every block feeds the
layer zeros there and masks its outputs out of norms, pooling and the next layer
(`ms_ssm_jax.blocks`).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ms_ssm_jax import fft_conv
from ms_ssm_jax.ssm import diagonal

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


def _real(x: Array, scale: float) -> Array:
  """`scale Re(x)` of complex kernels (conjugate pairs); real ones as they are."""
  return scale * x.real if jnp.iscomplexobj(x) else x


def direction_kernels(lam_bar: Array, weights: Array, scale: float, h: Array, before: int,
                      mix: Array, length: int) -> tuple[Array, Array]:
  """One direction's mixed folded kernels and boundary response, from the SSM's eigenvalues.

  With `k_j[l] = sum_n w_n lam_n^l` (`w = c b_bar`), the composition `g_j[d] = sum_p h_j[p]
  k_j[d - p]` at lags `d >= after` (where every tap sees lag `d - p >= 0`) is again such a sum,
  `sum_n w_n lam_n^(d - after) sum_p h_j[p] lam_n^(after - p)`: one contraction of the powers
  `lam^l` with the weights times the filter's response, instead of a product per tap. Only the
  lags `-before .. after - 1` are composed tap by tap (`compose`). The boundary response
  `D[h, q, s, t] = sum_{j, i=1..before} M[h, j, q] k_j[t + i] h_j[-i - s]`, what the bands at
  `t' = -1..-before` (which the band-wise layer lacks) add to output t from input `u_s`, is
  `sum_{j, n} M w_n lam_n^t X_n[s]` with `X_n[s] = sum_i lam_n^i h_j[-i - s]`: the same powers,
  so both come from one contraction. Powers stay non-negative (no `lam^-1` of fast modes).

  Args:
    lam_bar: `(H, S', N)` discrete eigenvalues (real, or complex under `scale`).
    weights: `(H, S', N)` `c b_bar` of this direction.
    scale: the readout scale s of `k = s Re(...)` (1 for real states).
    h: `(P, H, S')` two-sided taps (index = offset + before) of this direction.
    before: the largest negative offset's size.
    mix: `(H, S', Q)` weights of the stream outputs.
    length: L.

  Returns:
    `(g, D)`: `g` `(H, Q, before + L)` the mixed kernels at lags `-before .. L-1`, and
    `D` `(H, Q, before, L)`.
  """
  after = h.shape[0] - 1 - before
  near = min(after, length)
  # The filter's response at each eigenvalue: sum_p h[p] lam^(after - p).
  response = jnp.einsum("khj,hjnk->hjn", h, jnp.flip(fft_conv.powers(lam_bar, h.shape[0]), -1))
  far = (weights * response)[..., None] * mix[:, :, None, :]  # (H, S', N, Q)
  i, s = np.meshgrid(np.arange(1, before + 1), np.arange(before), indexing="ij")
  offsets = before - i - s  # tap of offset -i - s; negative: none
  taps = jnp.where((offsets >= 0)[..., None, None], h[np.maximum(offsets, 0)], 0)  # (I, S, H, S')
  x = jnp.einsum("hjni,ishj->hjns", fft_conv.powers(lam_bar, before + 1)[..., 1:], taps)
  boundary = (weights[..., None] * x)[:, :, :, None, :] * mix[:, :, None, :, None]
  rhs = jnp.concatenate([far[..., None], boundary], axis=-1)  # (H, S', N, Q, 1 + before)
  channels, streams, states, outputs, columns = rhs.shape
  out = fft_conv.power_sum(lam_bar.reshape(channels, streams * states),
                           rhs.reshape(channels, streams * states, outputs * columns), length)
  out = _real(out.reshape(channels, outputs, columns, length), scale)
  kernels = _real(jnp.einsum("hjn,hjnl->hjl", weights, fft_conv.powers(lam_bar, before + near)),
                  scale)
  g_near = jnp.einsum("hjd,hjq->hqd", compose(kernels, h, before, near), mix)
  g = jnp.concatenate([g_near, out[:, :, 0, :length - near]], axis=-1)
  return g, out[:, :, 1:]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def reverse_valid(x: Array, lengths: Array, size: int) -> Array:
  """`y[b, t] = x[b, lengths[b] - 1 - t]` for `t < size` where that step exists in x, else 0.

  Time reversed within each sequence's valid length: `(B, L_x, ...) -> (B, size, ...)`, a
  gather. Its transpose is the same map back to L_x steps (`_reverse_valid_bwd`), a gather
  again where autodiff would scatter (slow on the CPU).
  """
  index = lengths[:, None] - 1 - jnp.arange(size)[None, :]  # (B, size)
  inside = (index >= 0) & (index < x.shape[1])
  index = jnp.clip(index, 0, x.shape[1] - 1).reshape(index.shape + (1,) * (x.ndim - 2))
  gathered = jnp.take_along_axis(x, index, axis=1)
  return jnp.where(inside.reshape(index.shape), gathered, jnp.zeros((), x.dtype))


def _reverse_valid_fwd(x, lengths, size):
  return reverse_valid(x, lengths, size), (lengths, x.shape[1])


def _reverse_valid_bwd(size, residuals, g):
  del size
  lengths, x_length = residuals
  return reverse_valid(g, lengths, x_length), None


reverse_valid.defvjp(_reverse_valid_fwd, _reverse_valid_bwd)


def folded_convolution(u: Array, system: diagonal.Siso, filters: Sequence[Array],
                       lookaheads: Sequence[int], mix: Array, *, bidirectional: bool,
                       lengths: Array | None = None, skip: Array | None = None) -> Array:
  """Q mixtures of the stream outputs, `sum_j M[h, j, q] y^j`, by one FFT of `u` per channel.

  Args:
    u: `(B, L, H)` layer inputs (zero beyond `lengths` when bidirectional).
    system: the S' streams, `(H, S', N)` SISO systems (`c_reverse` for bidirectional layers).
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
  lam, scale = system.a_bar, system.readout_scale
  g, head_response = direction_kernels(lam, system.c * system.b_bar, scale, h, before, mix, length)
  g = _circular(g, before, n)
  if bidirectional:
    # Reverse scan: v_t' feeds y_t for t' >= t, so g_r[-e] = sum_p h[p] k_r[e + p]: the forward
    # composition with the flipped taps, mirrored.
    g_r, tail_response = direction_kernels(lam, system.c_reverse * system.b_bar, scale,
                                           jnp.flip(h, axis=0), after, mix, length)
    g = g + _mirror(_circular(g_r, after, n))
  if skip is not None:
    g = g.at[..., 0].add(skip.astype(g.dtype))
  u = fft_conv.promote(u, g)
  out = fft_conv.circular_conv(u[..., None], g, n)  # (B, L, H, Q)
  if before == 0:
    return out
  # The bands at t' = -i (i = 1..before) read the first `before` inputs.
  head = jnp.pad(u, [(0, 0), (0, max(0, before - length)), (0, 0)])[:, :before]
  out = out - jnp.einsum("hqst,bsh->bthq", head_response, head)
  if not bidirectional:
    return out
  if lengths is None:
    lengths = jnp.full(u.shape[:1], length, jnp.int32)
  # The bands at t' = lengths - 1 + i (i = 1..after) read the last `after` valid inputs: by
  # symmetry, the head's correction of the reverse kernels with the flipped taps, in the time
  # reversed within each sequence (step t at lengths - 1 - t).
  tail = jnp.einsum("hqst,bsh->bthq", tail_response, reverse_valid(u, lengths, after))
  return out - reverse_valid(tail, lengths, length)
