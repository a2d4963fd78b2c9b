"""The FFT convolution form equals the scan form of the same LTI diagonal SSM."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ms_ssm_jax import fft_conv, scan

# Compiled: associative scans are slow op by op.
linear_recurrence = jax.jit(scan.linear_recurrence, static_argnames=("reverse",))


def _siso_problem(rng, complex_, dtype=np.float64):
  batch, length, h, n = 2, 67, 3, 5
  radius = rng.uniform(0.3, 0.999, (h, n))
  lam = radius * (np.exp(1j * rng.uniform(-3, 3, (h, n))) if complex_ else 1.0)
  b_bar = rng.normal(size=(h, n)) + (1j * rng.normal(size=(h, n)) if complex_ else 0)
  c = rng.normal(size=(h, n)) + (1j * rng.normal(size=(h, n)) if complex_ else 0)
  u = rng.normal(size=(batch, length, h)).astype(dtype)
  return lam, b_bar, c, u


def _siso_scan(lam, b_bar, c, u, reverse=False):
  batch, length, h = u.shape
  n = lam.shape[-1]
  b = (u[..., None] * b_bar).reshape(batch, length, h * n)
  states = linear_recurrence(jnp.asarray(lam).reshape(-1), b, reverse=reverse)
  return jnp.einsum("blhn,hn->blh", states.reshape(batch, length, h, n), c).real


@pytest.mark.parametrize("complex_", [False, True])
def test_siso_causal_equals_scan(x64, complex_):
  rng = np.random.default_rng(0)
  lam, b_bar, c, u = _siso_problem(rng, complex_)
  kernel = fft_conv.siso_kernel(jnp.asarray(lam), jnp.asarray(b_bar), jnp.asarray(c), u.shape[1])
  got = fft_conv.causal_conv(jnp.asarray(u), kernel.real)
  np.testing.assert_allclose(got, _siso_scan(lam, b_bar, c, u), rtol=1e-9, atol=1e-10)


def test_siso_anticausal_equals_reverse_scan_within_valid_length(x64):
  rng = np.random.default_rng(1)
  lam, b_bar, c, u = _siso_problem(rng, True)
  lengths = np.array([67, 40])
  valid = np.arange(u.shape[1])[None, :] < lengths[:, None]
  u_masked = np.where(valid[..., None], u, 0.0)
  kernel = fft_conv.siso_kernel(jnp.asarray(lam), jnp.asarray(b_bar), jnp.asarray(c), u.shape[1])
  got = fft_conv.anticausal_conv(jnp.asarray(u_masked), kernel.real)
  ref = _siso_scan(lam, b_bar, c, u_masked, reverse=True)
  np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-10)
  # The valid outputs of the short sequence equal those of the sequence cut at its length.
  short = _siso_scan(lam, b_bar, c, u[1:, :40], reverse=True)
  np.testing.assert_allclose(got[1, :40], short[0], rtol=1e-9, atol=1e-10)


def test_mimo_equals_scan(x64):
  rng = np.random.default_rng(2)
  batch, length, h, p = 2, 50, 4, 6
  lam = rng.uniform(0.5, 0.99, p) * np.exp(1j * rng.uniform(-1, 1, p))
  b_bar = rng.normal(size=(p, h)) + 1j * rng.normal(size=(p, h))
  c = rng.normal(size=(h, p)) + 1j * rng.normal(size=(h, p))
  u = rng.normal(size=(batch, length, h))
  for reverse in (False, True):
    states = linear_recurrence(jnp.asarray(lam), jnp.einsum("ph,blh->blp", b_bar, u),
                               reverse=reverse)
    ref = jnp.einsum("hp,blp->blh", c, states).real
    kernel = fft_conv.mimo_kernel(jnp.asarray(lam), jnp.asarray(b_bar), jnp.asarray(c), length)
    conv = fft_conv.anticausal_conv_mimo if reverse else fft_conv.causal_conv_mimo
    np.testing.assert_allclose(conv(jnp.asarray(u), kernel.real), ref, rtol=1e-9, atol=1e-10)


def test_float32_close_to_float64_scan():
  rng = np.random.default_rng(3)
  lam, b_bar, c, u = _siso_problem(rng, False, dtype=np.float32)
  kernel = fft_conv.siso_kernel(jnp.asarray(lam, jnp.float32), jnp.asarray(b_bar, jnp.float32),
                                jnp.asarray(c, jnp.float32), u.shape[1])
  got = np.asarray(fft_conv.causal_conv(jnp.asarray(u), kernel))
  ref = np.asarray(_siso_scan(lam, b_bar, c, u.astype(np.float64)))
  assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-5


def test_fft_size_avoids_wraparound():
  for length in (1, 2, 3, 64, 65, 1000):
    n = fft_conv.fft_size(length)
    assert n >= 2 * length - 1 and n & (n - 1) == 0


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("length,outputs", [(1, 1), (7, 3), (100, 1), (2048, 12)])
def test_power_sum_equals_the_powers_contracted(x64, complex_, length, outputs):
  rng = np.random.default_rng(length + outputs)
  lam = rng.uniform(0.3, 0.999, (2, 4)) * (np.exp(1j * rng.uniform(-3, 3,
                                                                   (2, 4))) if complex_ else 1.0)
  lam[0, 0] = 0.0  # an underflowed mode: powers 1, 0, 0, ...
  coeffs = rng.normal(size=(2, 4, outputs))
  want = np.einsum("hnm,hnl->hml", coeffs, lam[..., None]**np.arange(length))
  got = fft_conv.power_sum(jnp.asarray(lam), jnp.asarray(coeffs), length)
  assert got.shape == (2, outputs, length)
  np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_power_sum_gradient_matches_the_direct_sum(x64):
  rng = np.random.default_rng(1)
  lam = jnp.asarray(rng.uniform(0.3, 0.99, (3, 5)))
  coeffs = jnp.asarray(rng.normal(size=(3, 5, 2)))
  weights = jnp.asarray(rng.normal(size=(3, 2, 50)))

  def direct(lam, coeffs):
    return jnp.sum(weights * jnp.einsum("hnm,hnl->hml", coeffs, fft_conv.powers(lam, 50)))

  def blocked(lam, coeffs):
    return jnp.sum(weights * fft_conv.power_sum(lam, coeffs, 50))

  for want, got in zip(
      jax.grad(direct, (0, 1))(lam, coeffs),
      jax.grad(blocked, (0, 1))(lam, coeffs)):
    np.testing.assert_allclose(got, want, rtol=1e-10)
