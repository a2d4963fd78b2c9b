"""Initializations and discretization: closed forms, HiPPO-N, the LRU ring, stability at init."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate

from ms_ssm_jax.ssm import init
from ms_ssm_jax.ssm.discretize import discretize
from ms_ssm_jax.ssm.lru import LRU
from ms_ssm_jax.ssm.s4d import S4D
from ms_ssm_jax.ssm.s5 import S5
from ms_ssm_jax.ssm.s6 import S6

LAMBDAS = np.array([-0.5 + 3.0j, -2.0 - 0.25j, -0.01 + 40.0j])
STEPS = np.array([1e-3, 0.1, 0.7])


def test_zoh_input_scale_is_the_integral_of_the_decay(x64):
  # ZOH holds u constant over a step: b_scale = int_0^Delta exp(lam s) ds.
  lam_bar, b_scale = discretize(LAMBDAS, STEPS, "zoh")
  for lam, step, expected_bar, scale in zip(LAMBDAS, STEPS, lam_bar, b_scale):
    real = scipy.integrate.quad(lambda s: np.exp(lam * s).real, 0, step, epsabs=1e-14)[0]
    imag = scipy.integrate.quad(lambda s: np.exp(lam * s).imag, 0, step, epsabs=1e-14)[0]
    np.testing.assert_allclose(scale, real + 1j * imag, rtol=1e-9)
    np.testing.assert_allclose(expected_bar, np.exp(lam * step), rtol=1e-12)


def test_euler_b(x64):
  lam_bar, b_scale = discretize(-np.arange(1.0, 4.0)[:, None], STEPS, "euler_b")
  assert lam_bar.shape == b_scale.shape == (3, 3)
  np.testing.assert_allclose(lam_bar, np.exp(-np.arange(1.0, 4.0)[:, None] * STEPS))
  np.testing.assert_allclose(b_scale, np.broadcast_to(STEPS, (3, 3)))


def test_discretizations_agree_to_first_order(x64):
  step = 1e-6
  for method in ("zoh", "euler_b"):
    lam_bar, b_scale = discretize(LAMBDAS, step, method)
    np.testing.assert_allclose(lam_bar, 1 + LAMBDAS * step, atol=1e-9)
    np.testing.assert_allclose(b_scale, step, atol=1e-9)


def test_unknown_discretization_lists_the_known_ones():
  with pytest.raises(ValueError, match="'foh'.*zoh, euler_b"):
    discretize(LAMBDAS, STEPS, "foh")


def test_s4d_eigenvalues():
  np.testing.assert_array_equal(init.s4d_real_eigenvalues(3), [-1.0, -2.0, -3.0])
  np.testing.assert_allclose(init.s4d_lin_eigenvalues(3),
                             [-0.5, -0.5 + np.pi * 1j, -0.5 + 2 * np.pi * 1j])
  # S4D-Inv with N = 2n = 4 real states: imag = N/pi (N/(2k+1) - 1), k = 0, 1.
  np.testing.assert_allclose(init.s4d_inv_eigenvalues(2),
                             [-0.5 + 12j / np.pi, -0.5 + 4 / np.pi * (4 / 3 - 1) * 1j])
  with pytest.raises(ValueError, match="positive integer"):
    init.s4d_lin_eigenvalues(0)


def test_hippo_n_reconstructs_the_normal_hippo_matrix():
  p = 8
  lam, v = init.hippo_n(p)
  np.testing.assert_allclose(lam.real, -0.5)
  normal = init.hippo_normal_matrix(p)
  np.testing.assert_allclose(v @ np.diag(lam) @ np.linalg.inv(v), normal, atol=1e-10)
  # HiPPO-N is HiPPO-LegS (lower triangular) plus the rank-1 term q q^T, q_n = sqrt(n + 1/2).
  n, k = 5, 2
  assert init.hippo_legs_matrix(p)[n,
                                   k] == pytest.approx(-math.sqrt(2 * n + 1) * math.sqrt(2 * k + 1))
  assert init.hippo_legs_matrix(p)[k, n] == 0.0
  assert init.hippo_legs_matrix(p)[n, n] == -(n + 1)
  assert normal[n, k] == pytest.approx(-0.5 * math.sqrt(2 * n + 1) * math.sqrt(2 * k + 1))
  np.testing.assert_allclose(normal @ normal.T, normal.T @ normal, atol=1e-10)


def test_s5_init_blocks_and_conjugate_symmetry():
  p, blocks = 12, 3
  block = init.hippo_normal_matrix(p // blocks)
  lam_block, v_block = init.hippo_n(p // blocks)  # every eigenpair of one block
  np.testing.assert_allclose(v_block @ np.diag(lam_block) @ v_block.conj().T, block, atol=1e-10)
  expected = np.kron(np.eye(blocks), block)

  lam_half, v_half, v_inv_half = init.s5_init(p, blocks)
  assert lam_half.shape == (p // 2,) and v_half.shape == (p, p // 2)
  assert v_inv_half.shape == (p // 2, p)
  np.testing.assert_allclose(v_inv_half @ v_half, np.eye(p // 2), atol=1e-10)
  # Kept eigenpairs plus their conjugates give back the real block-diagonal matrix.
  reconstructed = 2 * np.real(v_half @ np.diag(lam_half) @ v_inv_half)
  np.testing.assert_allclose(reconstructed, expected, atol=1e-10)
  with pytest.raises(ValueError, match="divisible"):
    init.s5_init(12, 5)
  with pytest.raises(ValueError, match="even block size"):
    init.s5_init(9, 3)


@pytest.mark.parametrize("rng", [np.random.default_rng(0), jax.random.key(0)], ids=["numpy", "jax"])
def test_lru_ring_init(rng):
  r_min, r_max, max_phase = 0.4, 0.9, 0.5
  nu_log, theta_log = init.lru_ring_init(rng, 4000, r_min, r_max, max_phase)
  radius = np.exp(-np.exp(np.asarray(nu_log, np.float64)))
  phase = np.exp(np.asarray(theta_log, np.float64))
  assert np.all((radius >= r_min - 1e-6) & (radius <= r_max + 1e-6))
  assert np.all((phase >= 0) & (phase <= max_phase))
  # Uniform by area: |lambda|^2 is uniform in [r_min^2, r_max^2], the phase in [0, max_phase].
  assert np.mean(radius**2) == pytest.approx((r_min**2 + r_max**2) / 2, abs=0.01)
  assert np.mean(phase) == pytest.approx(max_phase / 2, abs=0.01)
  gamma = np.exp(np.asarray(init.lru_gamma_log(nu_log), np.float64))
  np.testing.assert_allclose(gamma, np.sqrt(1 - radius**2), rtol=1e-5)


def test_lru_ring_init_is_finite_at_the_unit_circle():
  nu_log, theta_log = init.lru_ring_init(jax.random.key(1), 10000, 0.0, 1.0, 2 * np.pi)
  assert np.all(np.isfinite(nu_log)) and np.all(np.isfinite(theta_log))
  assert np.all(np.isfinite(init.lru_gamma_log(nu_log)))
  with pytest.raises(ValueError, match="r_min < r_max"):
    init.lru_ring_init(jax.random.key(1), 3, 0.9, 0.5, 1.0)


def test_log_uniform():
  log_step = init.log_uniform(jax.random.key(0), (2000,), 1e-3, 1e-1)
  assert np.all((log_step >= math.log(1e-3)) & (log_step <= math.log(1e-1)))
  assert np.mean(log_step) == pytest.approx(math.log(1e-2), abs=0.1)
  with pytest.raises(ValueError, match="0 < minval <= maxval"):
    init.log_uniform(jax.random.key(0), (2,), 0.0, 1e-1)


def _init(layer, width=4):
  return jax.jit(layer.init)(jax.random.key(0), jnp.zeros((1, 1, width)))["params"]


def test_discrete_eigenvalues_inside_the_unit_circle_at_init():
  """|lambda_bar| < 1 for every layer's initialized parameters (stable from the start)."""
  p = _init(S4D(4, state_size=8, a_init="inv"))
  a = -np.exp(p["A_re_log"]) + 1j * p["A_im"]
  assert np.all(np.abs(np.exp(a * np.exp(p["log_step"])[:, None])) < 1)
  assert np.all(np.exp(p["log_step"]) >= 1e-3 * (1 - 1e-6))
  assert np.all(np.exp(p["log_step"]) <= 1e-1 * (1 + 1e-6))

  p = _init(S5(4, state_size=8, blocks=2))
  np.testing.assert_allclose(p["Lambda_re"], -0.5)
  lam = p["Lambda_re"] + 1j * p["Lambda_im"]
  lam_bar, _ = discretize(lam, np.exp(p["log_step"][:, 0]), "zoh")
  assert np.all(np.abs(lam_bar) < 1)

  p = _init(LRU(4, state_size=256, r_min=0.9, r_max=0.999, max_phase=np.pi / 10))
  radius = np.exp(-np.exp(p["nu_log"]))
  assert np.all((radius >= 0.9 - 1e-6) & (radius <= 0.999 + 1e-6) & (radius < 1))
  assert np.all(np.exp(p["theta_log"]) <= np.pi / 10 * (1 + 1e-6))
  np.testing.assert_allclose(np.exp(p["gamma_log"]), np.sqrt(1 - radius**2), rtol=1e-4)

  p = _init(S6(32, state_size=4), width=32)
  np.testing.assert_allclose(-np.exp(p["A_log"]), np.broadcast_to(-np.arange(1.0, 5.0), (32, 4)),
                             rtol=1e-6)
  np.testing.assert_array_equal(p["D"], 1.0)
  step = np.asarray(jax.nn.softplus(p["dt_bias"]))
  assert np.all((step >= 1e-3 * (1 - 1e-5)) & (step <= 1e-1 * (1 + 1e-5)))
  assert np.all(np.exp(-np.exp(p["A_log"]) * step[:, None]) < 1)
  assert p["dt_proj"]["kernel"].shape == (2, 32)  # rank ceil(32 / 16)
  floored = _init(S6(4, state_size=2, dt_min=1e-6, dt_max=1e-5))
  np.testing.assert_allclose(jax.nn.softplus(floored["dt_bias"]), 1e-4, rtol=1e-4)
