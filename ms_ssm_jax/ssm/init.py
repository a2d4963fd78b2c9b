"""Initializations of the baseline SSMs: eigenvalues, eigenvectors and timescales.

- S4D (Gu et al. 2022, "On the parameterization and initialization of diagonal state space
  models", sec. 4): S4D-Real `-(n+1)`, S4D-Lin `-1/2 + i pi n`, S4D-Inv
  `-1/2 + i N/pi (N/(2n+1) - 1)`.
- S5 (Smith et al. 2023, sec. 4.2 and app. B): HiPPO-N, the normal part of HiPPO-LegS,
  diagonalized, optionally block-diagonal and conjugate-symmetric.
- LRU (Orvieto et al. 2023, sec. 3.2-3.3): eigenvalues uniform on a ring of the complex plane,
  stored as `nu_log, theta_log`, and the normalization `gamma = sqrt(1 - |lambda|^2)`.
- Timescales: `log Delta` uniform in `[log dt_min, log dt_max]` (S4, S5, Mamba).

The deterministic constructions return numpy float64/complex128 arrays; the random ones take a
JAX key (usable inside `flax.linen` initializers) or, for the LRU ring, a numpy Generator.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def _check_positive_count(name: str, n: int) -> None:
  if not isinstance(n, (int, np.integer)) or n < 1:
    raise ValueError(f"{name} must be a positive integer, got {n!r}")


def s4d_real_eigenvalues(n: int) -> np.ndarray:
  """S4D-Real: `A_k = -(k+1)`, k = 0..n-1; (n,) float64."""
  _check_positive_count("n", n)
  return -(np.arange(n, dtype=np.float64) + 1.0)


def s4d_lin_eigenvalues(n: int) -> np.ndarray:
  """S4D-Lin: `A_k = -1/2 + i pi k`, k = 0..n-1; (n,) complex128.

  `n` counts the complex states kept under conjugate symmetry (half of the real state size).
  """
  _check_positive_count("n", n)
  return -0.5 + 1j * np.pi * np.arange(n, dtype=np.float64)


def s4d_inv_eigenvalues(n: int) -> np.ndarray:
  """S4D-Inv: `A_k = -1/2 + i N/pi (N/(2k+1) - 1)`, k = 0..n-1; (n,) complex128.

  `n` counts the complex states kept under conjugate symmetry, so the paper's state size is
  `N = 2n` (as in the S4 reference code, whose formula runs over the kept half).
  """
  _check_positive_count("n", n)
  size = 2.0 * n
  k = np.arange(n, dtype=np.float64)
  return -0.5 + 1j * size / np.pi * (size / (2.0 * k + 1.0) - 1.0)


def hippo_legs_matrix(p: int) -> np.ndarray:
  """HiPPO-LegS (Gu et al. 2020), sign included: (p, p) float64.

  `A_nk = -sqrt(2n+1) sqrt(2k+1)` for n > k, `-(n+1)` for n = k, 0 above the diagonal.
  """
  _check_positive_count("p", p)
  root = np.sqrt(2.0 * np.arange(p) + 1.0)
  a = -np.tril(np.outer(root, root), k=-1)
  return a - np.diag(np.arange(p) + 1.0)


def hippo_normal_matrix(p: int) -> np.ndarray:
  """HiPPO-N: HiPPO-LegS plus the rank-1 term `q q^T`, `q_n = sqrt(n + 1/2)`; (p, p) float64.

  The result is `-1/2 I` plus a skew-symmetric matrix, hence normal (S5, app. B.1.1).
  """
  q = np.sqrt(np.arange(p) + 0.5)
  return hippo_legs_matrix(p) + np.outer(q, q)


def hippo_n(p: int) -> tuple[np.ndarray, np.ndarray]:
  """Eigen-decomposition of HiPPO-N: `hippo_normal_matrix(p) = v diag(lam) v^H`.

  The real parts are all -1/2; the imaginary parts and the unitary `v` come from the
  Hermitian eigenproblem of `-1j S`, S the skew-symmetric part. Eigenvalues are ordered by
  increasing imaginary part, so for even p the first p/2 hold one of each conjugate pair.

  Returns:
    `lam` (p,) complex128 and `v` (p, p) complex128 (unitary: `v^-1 = v^H`).
  """
  normal = hippo_normal_matrix(p)
  skew = 0.5 * (normal - normal.T)
  imag, v = np.linalg.eigh(-1j * skew)
  lam = -0.5 + 1j * imag
  return lam, v


def s5_init(p: int, blocks: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """S5's block-diagonal HiPPO-N initialization (Smith et al. 2023, sec. 4.3).

  One HiPPO-N of size `p / blocks` is built and repeated on each of the `blocks` diagonal
  blocks. Conjugate symmetry: each block keeps the half of its eigenpairs with negative
  imaginary part; the discarded half are their conjugates, accounted for by a `2 Re(.)` readout.

  Returns:
    `lam` (p/2,) complex128, `v` (p, p/2) and `v_inv` (p/2, p); `v_inv` is the restriction of
    `v^-1` to the kept modes.
  """
  _check_positive_count("p", p)
  _check_positive_count("blocks", blocks)
  if p % blocks:
    raise ValueError(f"the state size p={p} must be divisible by blocks={blocks}")
  block_size = p // blocks
  if block_size % 2:
    raise ValueError(f"conjugate symmetry keeps one eigenvalue of each pair, so it needs an even "
                     f"block size; got state size / blocks = {p} / {blocks} = {block_size}")
  lam_block, v_block = hippo_n(block_size)
  kept = block_size // 2
  lam_block, v_block = lam_block[:kept], v_block[:, :kept]
  v_inv_block = v_block.conj().T
  lam = np.tile(lam_block, blocks)
  v = np.kron(np.eye(blocks), v_block)
  v_inv = np.kron(np.eye(blocks), v_inv_block)
  return lam, v, v_inv


def lru_ring_init(rng: np.random.Generator | Array, n: int, r_min: float, r_max: float,
                  max_phase: float, dtype: Any = jnp.float32) -> tuple[Any, Any]:
  """LRU eigenvalues uniform (by area) on the ring `r_min <= |lambda| <= r_max`.

  `lambda = exp(-exp(nu_log) + i exp(theta_log))` (Orvieto et al. 2023, eq. 6 and
  Lemma 3.2): `|lambda|^2 = r_min^2 + U (r_max^2 - r_min^2)` and `arg lambda = max_phase U'`.

  Args:
    rng: a JAX key (traceable, for flax initializers) or a numpy Generator.
    n: number of complex states.
    r_min, r_max: ring radii, `0 <= r_min < r_max <= 1`.
    max_phase: largest phase, > 0.
    dtype: float dtype of the JAX result (the numpy path returns float64).

  Returns:
    `(nu_log, theta_log)`, each (n,).
  """
  _check_positive_count("n", n)
  if not 0.0 <= r_min < r_max <= 1.0:
    raise ValueError(f"need 0 <= r_min < r_max <= 1, got r_min={r_min}, r_max={r_max}")
  if max_phase <= 0.0:
    raise ValueError(f"max_phase must be > 0, got {max_phase}")
  if isinstance(rng, np.random.Generator):
    xp = np
    # Open interval (0, 1): both logs below stay finite.
    u_radius = 1.0 - rng.uniform(size=n)
    u_phase = 1.0 - rng.uniform(size=n)
  else:
    xp = jnp
    key_radius, key_phase = jax.random.split(rng)
    tiny = jnp.finfo(dtype).tiny
    u_radius = jax.random.uniform(key_radius, (n,), dtype, minval=tiny, maxval=1.0)
    u_phase = jax.random.uniform(key_phase, (n,), dtype, minval=tiny, maxval=1.0)
  # nu = -log|lambda| = -1/2 log1p(|lambda|^2 - 1), accurate for radii near 1.
  radius_sq_minus_one = (r_min**2 - 1.0) + u_radius * (r_max**2 - r_min**2)
  nu = -0.5 * xp.log1p(radius_sq_minus_one)
  return xp.log(nu), xp.log(max_phase * u_phase)


def lru_gamma_log(nu_log: Any) -> Any:
  """`log gamma = log sqrt(1 - |lambda|^2)` with `|lambda| = exp(-exp(nu_log))`."""
  xp = np if isinstance(nu_log, np.ndarray) else jnp
  return 0.5 * xp.log(-xp.expm1(-2.0 * xp.exp(nu_log)))


def log_uniform(key: Array, shape: tuple[int, ...], minval: float, maxval: float,
                dtype: Any = jnp.float32) -> Array:
  """`log Delta` with `Delta` log-uniform in `[minval, maxval]`, i.e. U[log minval, log maxval]."""
  if not 0.0 < minval <= maxval:
    raise ValueError(f"need 0 < minval <= maxval for timescales, got [{minval}, {maxval}]")
  return jax.random.uniform(key, shape, dtype, minval=math.log(minval), maxval=math.log(maxval))
