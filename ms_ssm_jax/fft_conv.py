"""Convolution form of time-invariant diagonal SSMs, evaluated with the FFT.

A time-invariant diagonal SSM `x_t = lam_bar * x_{t-1} + b_bar u_t`, `y_t = C x_t` is the
causal convolution `y = k * u` with the kernel

    k[l] = C diag(lam_bar^l) b_bar,     l = 0 .. L-1.

Evaluating `k` costs O(L P) and the convolution O(L log L) per channel, and neither stores a
state per step, so for long sequences and many states this is much cheaper in memory and time
than any scan (S4, Gu et al. 2022; the "Memory" section of the MS-SSM spec measures ~60x at
the paper's ListOps size). It applies only to LTI layers (S4D, S5, LRU, MS-SSM with an LTI
backbone); selective (S6) layers have no convolution form.

Powers are taken as `exp(l * log(lam_bar))`, which is exact to rounding for |lam_bar| <= 1
and never forms repeated products. An eigenvalue that underflowed to 0 (a very fast mode) has
the powers `1, 0, 0, ...`, as in the scan.

Inputs are promoted to the kernel's real dtype and to at least float32 (the FFT takes no bf16),
the same dtype that the scan carries its states in.

Shapes: SISO kernels are per channel, `(..., L)`; MIMO kernels map H_in to H_out channels,
`(L, H_out, H_in)`. Inputs `u` are `(B, L, ...)`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array


def powers(lam_bar: Array, length: int, stride: int = 1) -> Array:
  """`lam_bar^(stride l)` for l < length: `(..., P) -> (..., P, L)`."""
  steps = stride * jnp.arange(length, dtype=jnp.real(lam_bar).dtype)
  # log(0) = -inf would make the zeroth power 0 * -inf = nan; the smallest normal number
  # gives 1 there and (numerically) 0 beyond, and a zero gradient like exp's underflow.
  tiny = jnp.finfo(steps.dtype).tiny
  safe = jnp.where(lam_bar == 0, jnp.asarray(tiny, lam_bar.dtype), lam_bar)
  return jnp.exp(jnp.log(safe)[..., None] * steps)


def power_sum(lam_bar: Array, coeffs: Array, length: int) -> Array:
  """`out[..., m, l] = sum_n coeffs[..., n, m] lam_bar[..., n]^l` for l < length, in blocks.

  With `l = T b + r` (T about `sqrt(L M)`), the sum is a matrix product of the coarse terms
  `coeffs lam^(T b)`, `(..., N, M, L/T)`, with the fine powers `lam^r`, `(..., N, T)`: no tensor
  of all the powers `(..., N, L)` is formed, which for kernels of many channels and few
  outputs per channel is most of the memory traffic of building them (and of their gradient).

  Args:
    lam_bar: `(..., N)` discrete eigenvalues (real or complex).
    coeffs: `(..., N, M)` weights of each eigenvalue's powers in each output.
    length: L.

  Returns:
    `(..., M, L)`, complex if either input is.
  """
  outputs = coeffs.shape[-1]
  block = min(length, 1 << max(0, round(0.5 * math.log2(length * outputs))))
  num_blocks = -(-length // block)
  coarse = coeffs[..., None] * powers(lam_bar, num_blocks, stride=block)[..., None, :]
  out = jnp.einsum("...nmb,...nr->...mbr", coarse, powers(lam_bar, block))
  return out.reshape(out.shape[:-2] + (num_blocks * block,))[..., :length]


def promote(u: Array, kernel: Array) -> Array:
  """u in the dtype the convolution runs in: u's and the kernel's, at least float32."""
  return u.astype(jnp.result_type(jnp.float32, u.dtype, kernel.dtype))


def siso_kernel(lam_bar: Array, b_bar: Array, c: Array, length: int) -> Array:
  """Per-channel kernels `k[..., l] = sum_n c[..., n] lam_bar[..., n]^l b_bar[..., n]`.

  Args:
    lam_bar: `(..., N)` discrete eigenvalues (real or complex).
    b_bar: `(..., N)` discretized input weights.
    c: `(..., N)` readout weights.
    length: L.

  Returns:
    `(..., L)` kernels, complex if any input is complex (take the real part, or `2 Re` under
    conjugate symmetry, at the caller).
  """
  return power_sum(lam_bar, (c * b_bar)[..., None], length)[..., 0, :]


def mimo_kernel(lam_bar: Array, b_bar: Array, c: Array, length: int) -> Array:
  """MIMO kernel `k[l] = c diag(lam_bar^l) b_bar`.

  Args:
    lam_bar: `(P,)` discrete eigenvalues.
    b_bar: `(P, H_in)` discretized input matrix.
    c: `(H_out, P)` readout matrix.
    length: L.

  Returns:
    `(L, H_out, H_in)` kernel (complex if the inputs are).
  """
  return jnp.einsum("op,pl,pi->loi", c, powers(lam_bar, length), b_bar)


def fft_size(length: int) -> int:
  """Smallest power of two >= 2L, so the circular convolution has no wrap-around."""
  return 1 << (2 * length - 1).bit_length()


def causal_conv(u: Array, kernel: Array) -> Array:
  """Per-channel causal convolution `y[:, t] = sum_{l <= t} kernel[..., l] u[:, t - l]`.

  Args:
    u: `(B, L, ...)` real inputs.
    kernel: `(..., L)` real per-channel kernels; `...` broadcasts against u's trailing axes.

  Returns:
    `(B, L, ...)` outputs in u's dtype promoted with the kernel's (at least float32).
  """
  return circular_conv(u, kernel, fft_size(u.shape[1]))


def circular_conv(u: Array, kernel: Array, n: int) -> Array:
  """`y[:, t] = sum_l kernel[..., l] u[:, (t - l) mod n]` for `t < L`, u zero-padded to n steps.

  With `n >= 2L` and at most L taps this is `causal_conv`; a kernel of n taps whose tap `n - i`
  holds lag `-i` makes it a two-sided (non-causal) convolution.

  Args:
    u: `(B, L, ...)` real inputs.
    kernel: `(..., K)` real per-channel kernels, `K <= n`; `...` broadcasts against u's
      trailing axes.
    n: the FFT size.

  Returns:
    `(B, L, ...)` outputs in u's dtype promoted with the kernel's (at least float32).
  """
  u = promote(u, kernel)
  length = u.shape[1]
  # Time last while in the frequency domain (XLA's FFT runs over the last axis): one transpose
  # in and one out, none of the complex spectra.
  u_f = jnp.fft.rfft(jnp.moveaxis(u, 1, -1), n=n, axis=-1)  # (B, ..., F)
  k_f = jnp.fft.rfft(kernel, n=n, axis=-1)  # (..., F)
  return jnp.moveaxis(jnp.fft.irfft(u_f * k_f, n=n, axis=-1)[..., :length], -1, 1)


def anticausal_conv(u: Array, kernel: Array) -> Array:
  """`y[:, t] = sum_{l >= 0, t + l < L} kernel[..., l] u[:, t + l]`: the reverse-time scan's
  convolution form. Inputs beyond a sequence's valid length must be zero (then they add
  nothing, which is what "reverse within the valid length" means for a scan)."""
  return jnp.flip(causal_conv(jnp.flip(u, axis=1), kernel), axis=1)


def causal_conv_mimo(u: Array, kernel: Array) -> Array:
  """MIMO causal convolution `y[:, t] = sum_{l <= t} kernel[l] @ u[:, t - l]`.

  Args:
    u: `(B, L, H_in)` real inputs.
    kernel: `(L, H_out, H_in)` real kernel.

  Returns:
    `(B, L, H_out)` in u's dtype promoted with the kernel's (at least float32).
  """
  u = promote(u, kernel)
  length = u.shape[1]
  n = fft_size(length)
  u_f = jnp.fft.rfft(u, n=n, axis=1)
  k_f = jnp.fft.rfft(kernel, n=n, axis=0)
  y_f = jnp.einsum("foi,bfi->bfo", k_f, u_f)
  return jnp.fft.irfft(y_f, n=n, axis=1)[:, :length]


def anticausal_conv_mimo(u: Array, kernel: Array) -> Array:
  """The anti-causal (reverse-time) MIMO convolution; see `anticausal_conv`."""
  return jnp.flip(causal_conv_mimo(jnp.flip(u, axis=1), kernel), axis=1)
