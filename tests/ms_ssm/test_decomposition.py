"""The learned SWT against float64 loops of the paper's formula, and its structure."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ms_ssm_jax.ms_ssm import decomposition


def numpy_causal_levels(x, phi, psi):
  """`a^s[t] = sum_l a^{s-1}[t - 2^(s-1) l] phi_s[l]` (and psi), step by step; float64.

  Returns the lists `[a^1..a^S]`, `[d^1..d^S]` of `(B, L, H)` arrays.
  """
  x = np.asarray(x, np.float64)
  num_levels, kernel_size, _ = phi.shape
  approx, details = [], []
  previous = x
  for s in range(1, num_levels + 1):
    dilation = 2**(s - 1)
    a, d = np.zeros_like(x), np.zeros_like(x)
    for t in range(x.shape[1]):
      for l in range(kernel_size):
        if t - dilation * l >= 0:
          a[:, t] += previous[:, t - dilation * l] * phi[s - 1, l]
          d[:, t] += previous[:, t - dilation * l] * psi[s - 1, l]
    approx.append(a)
    details.append(d)
    previous = a
  return approx, details


def numpy_composed_filters(phi, psi):
  """Impulse responses `[A_1..A_S]`, `[D_1..D_S]`, each `(R_s, H)`, with np.convolve."""
  num_levels, kernel_size, width = phi.shape
  lowpass = [np.ones(1) for _ in range(width)]
  approx, details = [], []
  for s in range(1, num_levels + 1):
    dilation = 2**(s - 1)
    up_phi = np.zeros((dilation * (kernel_size - 1) + 1, width))
    up_psi = np.zeros_like(up_phi)
    up_phi[::dilation], up_psi[::dilation] = phi[s - 1], psi[s - 1]
    details.append(np.stack([np.convolve(lowpass[h], up_psi[:, h]) for h in range(width)], 1))
    lowpass = [np.convolve(lowpass[h], up_phi[:, h]) for h in range(width)]
    approx.append(np.stack(lowpass, 1))
  return approx, details


def numpy_bands(x, phi, psi, streams="details+approx+raw", centered=False):
  """The layer's bands `(B, L, H, S')` in float64.

  Causal: the level loop above. Centered: each band's composed filter applied with `C_s`
  samples of look-ahead, `band[t] = sum_m x[t + C_s - m] F_s[m]` (zero outside [0, L)).
  """
  x = np.asarray(x, np.float64)
  num_levels, kernel_size, _ = phi.shape
  if centered:
    filters_a, filters_d = numpy_composed_filters(phi, psi)
    length = x.shape[1]

    def apply(f, level):
      shift = (decomposition.receptive_field(level, kernel_size) - 1) // 2
      out = np.zeros_like(x)
      for t in range(length):
        for m in range(f.shape[0]):
          if 0 <= t + shift - m < length:
            out[:, t] += x[:, t + shift - m] * f[m]
      return out

    approx = [apply(f, s + 1) for s, f in enumerate(filters_a)]
    details = [apply(f, s + 1) for s, f in enumerate(filters_d)]
  else:
    approx, details = numpy_causal_levels(x, phi, psi)
  if streams == "approx_only":
    bands = approx[::-1]
  else:
    bands = [approx[-1]] + details[::-1]
  if streams == "details+approx+raw":
    bands.append(x)
  return np.stack(bands, axis=-1)


def filterbank_bands(x, phi, psi, streams, centered):
  """The bands by one parallel bank of composed filters, autodiff gradients: a second
  implementation of `wavelet_bands` (the filters of `stream_filters`, the raw stream included)."""
  filters, lookaheads = decomposition.stream_filters(phi, psi, streams=streams, centered=centered)
  bands = []
  for f, c in zip(filters, lookaheads):
    padded = jnp.pad(x, [(0, 0), (0, c), (0, 0)])
    bands.append(decomposition.causal_dilated_conv(padded, f[..., None], 1)[:, c:, :, 0])
  return jnp.stack(bands, axis=-1)


def random_filters(seed, num_levels=3, kernel_size=4, width=3):
  rng = np.random.default_rng(seed)
  shape = (num_levels, kernel_size, width)
  return rng.normal(size=shape), rng.normal(size=shape)


@pytest.mark.parametrize("streams", decomposition.STREAM_LAYOUTS)
def test_cascade_matches_paper_formula_float64(x64, streams):
  phi, psi = random_filters(0)
  x = np.random.default_rng(1).normal(size=(2, 29, 3))
  got = decomposition.wavelet_bands(jnp.asarray(x), jnp.asarray(phi), jnp.asarray(psi),
                                    streams=streams, centered=False)
  ref = numpy_bands(x, phi, psi, streams)
  assert got.shape == (2, 29, 3, decomposition.num_streams(3, streams))
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel_size", [2, 4])
def test_centered_matches_composed_filters_float64(x64, kernel_size):
  phi, psi = random_filters(2, kernel_size=kernel_size)
  x = np.random.default_rng(3).normal(size=(2, 29, 3))
  ref = numpy_bands(x, phi, psi, centered=True)
  got = decomposition.wavelet_bands(jnp.asarray(x), jnp.asarray(phi), jnp.asarray(psi),
                                    streams="details+approx+raw", centered=True)
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("streams", ["details+approx+raw", "approx_only"])
def test_filterbank_equals_cascade(x64, centered, streams):
  phi, psi = random_filters(4, num_levels=4, kernel_size=3)
  x = jnp.asarray(np.random.default_rng(5).normal(size=(2, 40, 3)))
  phi, psi = jnp.asarray(phi), jnp.asarray(psi)
  got = decomposition.wavelet_bands(x, phi, psi, streams=streams, centered=centered)
  want = filterbank_bands(x, phi, psi, streams, centered)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-12)


def test_composed_filters_match_numpy_and_have_length_r_s(x64):
  phi, psi = random_filters(6, num_levels=3, kernel_size=4)
  got = decomposition.filterbank_filters(jnp.asarray(phi), jnp.asarray(psi), "details+approx")
  ref_a, ref_d = numpy_composed_filters(phi, psi)
  assert [f.shape[0] for f in got] == [22, 22, 10, 4]
  for g, r in zip(got, [ref_a[-1]] + ref_d[::-1]):
    np.testing.assert_allclose(np.asarray(g), r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel_size,fields", [(2, (2, 4, 8)), (4, (4, 10, 22))])
@pytest.mark.parametrize("centered", [False, True])
def test_receptive_field_is_exact(kernel_size, fields, centered):
  """Band s at t depends on exactly R_s = 1 + (K-1)(2^s - 1) samples (gradient support)."""
  phi, psi = random_filters(7, kernel_size=kernel_size, width=1)
  length, t0 = 64, 40
  x = jnp.asarray(np.random.default_rng(8).normal(size=(1, length, 1)), jnp.float32)

  def bands_at_t0(x):
    bands = decomposition.wavelet_bands(x, jnp.asarray(phi, jnp.float32),
                                        jnp.asarray(psi, jnp.float32), streams="details+approx+raw",
                                        centered=centered)
    return bands[0, t0, 0]  # (S+2,): a^3, d^3, d^2, d^1, x

  jac = jax.jacrev(bands_at_t0)(x)[:, 0, :, 0]  # (S+2, L)
  levels = [3, 3, 2, 1]
  for band, level in enumerate(levels):
    support = np.flatnonzero(np.asarray(jac[band]))
    r_s = fields[level - 1]
    assert r_s == decomposition.receptive_field(level, kernel_size)
    ahead = (r_s - 1) // 2 if centered else 0
    np.testing.assert_array_equal(support, np.arange(t0 + ahead - r_s + 1, t0 + ahead + 1))
  np.testing.assert_array_equal(np.flatnonzero(np.asarray(jac[-1])), [t0])


def test_module_params_and_lecun_uniform_init():
  x = jax.random.normal(jax.random.key(0), (2, 16, 3))
  params = decomposition.WaveletDecomposition(num_levels=3,
                                              kernel_size=4).init(jax.random.key(1), x)["params"]
  assert params["phi"].shape == params["psi"].shape == (3, 4, 3)
  phi = decomposition.init_filters(jax.random.key(0), (3, 4, 500))
  bound = math.sqrt(3 / 4)
  assert float(jnp.max(jnp.abs(phi))) <= bound
  assert abs(float(jnp.var(phi)) - 1 / 4) < 0.02


def test_zero_levels_is_the_raw_input():
  x = jax.random.normal(jax.random.key(0), (1, 8, 2))
  module = decomposition.WaveletDecomposition(num_levels=0)
  bands, variables = module.init_with_output(jax.random.key(1), x)
  assert not variables
  np.testing.assert_array_equal(bands, x[..., None])


def test_errors_name_the_fix():
  x = jnp.ones((1, 8, 2))
  with pytest.raises(ValueError, match="kernel_size must be >= 2"):
    decomposition.WaveletDecomposition(kernel_size=1).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="unknown streams"):
    decomposition.num_streams(3, "details")
  with pytest.raises(ValueError, match="num_levels=0"):
    decomposition.num_streams(0, "approx_only")


def numpy_bands_vjp(x, phi, psi, cotangent, streams, centered, eps=1e-3):
  """`<cotangent, numpy_bands>`'s gradient in (x, phi, psi) by central differences; float64
  (exact up to rounding: the bands are linear in each single coordinate)."""
  args = [np.array(a, np.float64) for a in (x, phi, psi)]
  grads = []
  for i, arg in enumerate(args):
    grad = np.zeros_like(arg)
    for index in np.ndindex(arg.shape):
      values = []
      for sign in (1, -1):
        shifted = [a.copy() for a in args]
        shifted[i][index] += sign * eps
        values.append(np.sum(cotangent * numpy_bands(*shifted, streams=streams, centered=centered)))
      grad[index] = (values[0] - values[1]) / (2 * eps)
    grads.append(grad)
  return grads


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("streams", decomposition.STREAM_LAYOUTS)
def test_gradients_match_float64_reference(x64, streams, centered):
  """The cascade's custom gradient (recomputed levels, band-major cotangents) and the
  filterbank reference's autodiff gradient against central differences of the float64 loop."""
  phi, psi = random_filters(9, num_levels=2, kernel_size=3, width=2)
  rng = np.random.default_rng(10)
  x = rng.normal(size=(2, 11, 2))
  cotangent = rng.normal(size=(2, 11, 2, decomposition.num_streams(2, streams)))
  ref = numpy_bands_vjp(x, phi, psi, cotangent, streams, centered)
  cascade = functools.partial(decomposition.wavelet_bands, streams=streams, centered=centered)
  filterbank = functools.partial(filterbank_bands, streams=streams, centered=centered)
  for impl, bands_fn in (("cascade", cascade), ("filterbank", filterbank)):
    loss = lambda *args, bands_fn=bands_fn: jnp.sum(jnp.asarray(cotangent) * bands_fn(*args))
    got = jax.grad(loss, argnums=(0, 1, 2))(jnp.asarray(x), jnp.asarray(phi), jnp.asarray(psi))
    for g, r, name in zip(got, ref, ("x", "phi", "psi")):
      np.testing.assert_allclose(np.asarray(g), r, rtol=1e-7, atol=1e-7, err_msg=f"{impl} {name}")


def test_cascade_gradient_float32_and_bfloat16():
  """float32 gradients agree with the float64 ones; bf16 inputs give bf16 gradients whose
  filter gradients were accumulated in float32 (error of bf16 rounding, not of the sums)."""
  phi, psi = random_filters(11, num_levels=3, kernel_size=4, width=4)
  x = np.random.default_rng(12).normal(size=(2, 300, 4))

  def grads(dtype):
    loss = lambda *args: jnp.sum(
        decomposition.wavelet_bands(*args, streams="details+approx+raw", centered=False).astype(
            jnp.float32)**2)
    args = [jnp.asarray(a, dtype) for a in (x, phi, psi)]
    return jax.grad(loss, argnums=(0, 1, 2))(*args)

  with jax.enable_x64(True):
    ref = [np.asarray(g) for g in grads(jnp.float64)]
  for dtype, tol in ((jnp.float32, 1e-5), (jnp.bfloat16, 5e-2)):
    for g, r in zip(grads(dtype), ref):
      assert g.dtype == dtype
      scale = np.max(np.abs(r))
      np.testing.assert_allclose(np.asarray(g, np.float64) / scale, r / scale, atol=tol)


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("streams", ["details+approx+raw", "approx_only"])
def test_conv1d_decomposition_matches_float64_loop(x64, centered, streams):
  """The "plain Conv1D" ablation: band j is `sum_{m < R} w_j[m] x_{t + C - m}` (zero outside x),
  R = R_S; the raw stream (when in the layout) stays the raw input."""
  num_levels, kernel_size = 2, 3
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 17, 3)))
  module = decomposition.Conv1DDecomposition(num_levels=num_levels, kernel_size=kernel_size,
                                             streams=streams, centered=centered)
  params = module.init(jax.random.key(0), x)
  taps = np.asarray(params["params"]["taps"])
  size = decomposition.receptive_field(num_levels, kernel_size)
  raw = streams == "details+approx+raw"
  assert taps.shape == (decomposition.num_streams(num_levels, streams) - raw, size, 3)
  lookahead = (size - 1) // 2 if centered else 0
  xs = np.asarray(x)
  want = np.zeros(xs.shape + (taps.shape[0],))
  for j in range(taps.shape[0]):
    for t in range(xs.shape[1]):
      for m in range(size):
        if 0 <= t + lookahead - m < xs.shape[1]:
          want[:, t, :, j] += taps[j, m] * xs[:, t + lookahead - m]
  got = np.asarray(module.apply(params, x))
  np.testing.assert_allclose(got[..., :taps.shape[0]], want, rtol=1e-12, atol=1e-12)
  if raw:
    np.testing.assert_array_equal(got[..., -1], xs)
  # LeCun-uniform over the R taps.
  assert np.abs(taps).max() <= math.sqrt(3.0 / size) and taps.std() > 0.3 * math.sqrt(1.0 / size)
