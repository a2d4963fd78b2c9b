"""The baseline layers against float64 loops over their own equations, and their contracts.

Each case initializes a layer, pulls its parameters out of the params tree and evaluates the
paper's equations step by step in numpy (tests/ssm/references.py). The other tests check
causality, that padding cannot leak into valid outputs of bidirectional layers, gradients
(finite, non-zero, equal to finite differences), the chunked scan, bf16 activations and the
parameter names the optimizer relies on.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ms_ssm_jax.ssm import SSM_PARAM_NAMES
from ms_ssm_jax.ssm.lru import LRU
from ms_ssm_jax.ssm.s4d import S4D
from ms_ssm_jax.ssm.s5 import S5
from ms_ssm_jax.ssm.s6 import S6
from tests.ssm import references

BATCH, LENGTH, WIDTH = 3, 9, 4
LENGTHS = np.array([LENGTH, 5, 1], np.int32)

# name -> (layer, reference evaluating the same configuration)
CASES = {
    "s4d_real": (S4D(WIDTH, state_size=3, a_init="real"), references.s4d),
    "s4d_inv_bidirectional": (S4D(WIDTH, state_size=4, a_init="inv", bidirectional=True),
                              functools.partial(references.s4d, bidirectional=True)),
    "s5_blocks_clipped": (S5(WIDTH, state_size=8, blocks=2,
                             clip_eigs=True), functools.partial(references.s5, clip_eigs=True)),
    "s5_bidirectional_concat": (S5(WIDTH, state_size=4, bidirectional=True, c_init="lecun_normal"),
                                functools.partial(references.s5, bidirectional=True)),
    "s5_complex_normal_bidirectional": (S5(WIDTH, state_size=4, c_init="complex_normal",
                                           bidirectional=True),
                                        functools.partial(references.s5, bidirectional=True)),
    "lru_ring": (LRU(WIDTH, state_size=3, r_min=0.5, r_max=0.95, max_phase=1.0), references.lru),
    "lru_bidirectional": (LRU(WIDTH, state_size=3, bidirectional=True),
                          functools.partial(references.lru, bidirectional=True)),
    "s6": (S6(WIDTH, state_size=3), lambda p, u, lengths: references.s6(p, u)),
}
BIDIRECTIONAL = [
    name for name, (layer, _) in CASES.items() if getattr(layer, "bidirectional", False)
]
CAUSAL = [name for name in CASES if name not in BIDIRECTIONAL]
# Every class's own parameters that are SSM parameters (optimizer: ssm_lr, no weight decay).
EXPECTED_SSM_PARAMS = {
    S4D: {"A_re_log", "A_im", "B", "log_step"},
    S5: {"Lambda_re", "Lambda_im", "B", "log_step"},
    LRU: {"nu_log", "theta_log", "gamma_log", "B_re", "B_im"},
    S6: {"A_log", "dt_bias"},
}


def _inputs(seed: int = 0, dtype=np.float32) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=(BATCH, LENGTH, WIDTH)).astype(dtype)


@functools.lru_cache(maxsize=None)
def _params(name: str):
  layer, _ = CASES[name]
  # Parameter shapes do not depend on the length: a one-step input compiles fastest.
  return jax.jit(layer.init)(jax.random.key(1), jnp.zeros((1, 1, WIDTH)))["params"]


@functools.lru_cache(maxsize=None)
def _apply(name: str):
  """The layer's jitted `(params, u, lengths) -> y`."""
  layer, _ = CASES[name]
  return jax.jit(lambda params, u, lengths: layer.apply({"params": params}, u, lengths))


@functools.lru_cache(maxsize=None)
def _loss_and_grad(name: str):
  """Jitted `(params, u, lengths) -> ((loss, y), (dloss/dparams, dloss/du))`, loss = sum(w y).

  Most tests run through this one function in float64, so that each case compiles once.
  """
  layer, _ = CASES[name]
  weights = _inputs(seed=5)

  def loss(params, u, lengths):
    y = layer.apply({"params": params}, u, lengths)
    return jnp.sum(y * weights.astype(y.dtype)), y

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))


def _outputs64(name: str, params, u: np.ndarray, lengths: np.ndarray = LENGTHS) -> np.ndarray:
  (_, y), _ = _loss_and_grad(name)(params, np.asarray(u, np.float64), lengths)
  return np.asarray(y)


def _float64_params(name: str):
  return jax.tree.map(lambda x: np.asarray(x, np.float64), _params(name))


def _valid(lengths: np.ndarray) -> np.ndarray:
  """(B, L, 1) mask of the steps within each sequence's length."""
  return (np.arange(LENGTH)[None, :] < lengths[:, None])[..., None]


def _leaf_names(tree) -> set[str]:
  return {path[-1].key for path, _ in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_float64_reference(name, x64):
  _, reference = CASES[name]
  params = _float64_params(name)
  u = _inputs(seed=2, dtype=np.float64)
  (_, y), _ = _loss_and_grad(name)(params, u, LENGTHS)
  assert y.shape == (BATCH, LENGTH, WIDTH) and y.dtype == jnp.float64
  expected = reference(params, u, lengths=LENGTHS)
  # Beyond its length a bidirectional output has no meaning; causal layers ignore lengths.
  mask = _valid(LENGTHS) if name in BIDIRECTIONAL else np.ones_like(u, bool)
  np.testing.assert_allclose(np.where(mask, y, 0.0), np.where(mask, expected, 0.0), rtol=1e-10,
                             atol=1e-10)
  # The recurrence must matter: outputs are not just the skip term D u.
  assert np.abs(expected - params["D"] * u).max() > 1e-2


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_finite_nonzero_and_equal_to_finite_differences(name, x64):
  params = _float64_params(name)
  u = _inputs(seed=2, dtype=np.float64)
  loss_and_grad = _loss_and_grad(name)
  _, (grad_params, grad_u) = loss_and_grad(params, u, LENGTHS)
  for path, g in jax.tree_util.tree_leaves_with_path(grad_params):
    assert np.all(np.isfinite(g)), jax.tree_util.keystr(path)
    assert np.abs(g).max() > 0, f"zero gradient for {jax.tree_util.keystr(path)}"

  # Directional derivative along a random direction in (params, u), central differences.
  rng = np.random.default_rng(6)
  direction = jax.tree.map(lambda x: rng.normal(size=x.shape), params)
  direction_u = rng.normal(size=u.shape)
  eps = 1e-6

  def shifted_loss(sign: float) -> float:
    shifted = jax.tree.map(lambda p, d: p + sign * eps * d, params, direction)
    (loss, _), _ = loss_and_grad(shifted, u + sign * eps * direction_u, LENGTHS)
    return float(loss)

  numeric = (shifted_loss(1.0) - shifted_loss(-1.0)) / (2 * eps)
  analytic = sum(
      float(np.vdot(g, d))
      for g, d in zip(jax.tree.leaves(grad_params), jax.tree.leaves(direction)))
  analytic += float(np.vdot(grad_u, direction_u))
  np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


@pytest.mark.parametrize("name", CAUSAL)
def test_causal(name, x64):
  params, u = _float64_params(name), _inputs()
  cut = 4
  changed = u.copy()
  changed[:, cut:] = _inputs(seed=3)[:, cut:]
  y = _outputs64(name, params, u)
  y_changed = _outputs64(name, params, changed)
  np.testing.assert_array_equal(y[:, :cut], y_changed[:, :cut])
  assert np.abs(y[:, cut:] - y_changed[:, cut:]).min() > 0


@pytest.mark.parametrize("name", BIDIRECTIONAL)
def test_padding_does_not_reach_valid_outputs(name, x64):
  params, u = _float64_params(name), _inputs()
  padded_differently = np.where(_valid(LENGTHS), u, 100.0 * _inputs(seed=4))
  y = _outputs64(name, params, u)
  y_other = _outputs64(name, params, padded_differently)
  mask = np.broadcast_to(_valid(LENGTHS), y.shape)
  np.testing.assert_array_equal(y[mask], y_other[mask])
  # Run over the whole padded length instead, the reverse scan does carry the padding back.
  full = np.full_like(LENGTHS, LENGTH)
  y_unmasked = _outputs64(name, params, padded_differently, full)
  assert np.abs(y_unmasked[1, :5] - y[1, :5]).max() > 1e-3


@pytest.mark.parametrize("name", ["s4d_inv_bidirectional", "s6"])
def test_chunked_scan_equals_full_scan(name, x64):
  layer, _ = CASES[name]
  chunked = layer.clone(impl="chunked", chunk_size=4)  # 9 steps: two full chunks and a partial one
  params, u = _float64_params(name), _inputs(seed=2, dtype=np.float64)
  weights = _inputs(seed=5)

  def loss(params, u):
    y = chunked.apply({"params": params}, u, LENGTHS)
    return jnp.sum(y * weights), y

  (chunk_loss,
   chunk_y), chunk_grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(params,
                                                                                           u)
  (full_loss, full_y), full_grads = _loss_and_grad(name)(params, u, LENGTHS)
  np.testing.assert_allclose(chunk_y, full_y, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(chunk_loss, full_loss, rtol=1e-12)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), chunk_grads,
               full_grads)


@pytest.mark.parametrize("name",
                         ["s4d_inv_bidirectional", "s5_bidirectional_concat", "lru_ring", "s6"])
def test_bfloat16_activations(name):
  params, u = _params(name), _inputs()
  y32 = _apply(name)(params, u, LENGTHS)
  y16 = _apply(name)(params, jnp.asarray(u, jnp.bfloat16), LENGTHS)
  assert y32.dtype == jnp.float32 and y16.dtype == jnp.bfloat16
  assert y16.shape == (BATCH, LENGTH, WIDTH)
  assert np.all(np.isfinite(np.asarray(y16, np.float32)))
  mask = np.broadcast_to(_valid(LENGTHS), y32.shape)
  np.testing.assert_allclose(
      np.asarray(y16, np.float32)[mask],
      np.asarray(y32)[mask], rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("name", list(CASES))
def test_ssm_parameter_names(name):
  layer, _ = CASES[name]
  names = _leaf_names(_params(name))
  expected = EXPECTED_SSM_PARAMS[type(layer)]
  assert expected <= SSM_PARAM_NAMES
  # Exactly the SSM parameters carry SSM names: C, D and projection kernels do not.
  assert names & SSM_PARAM_NAMES == expected & names
  assert names & SSM_PARAM_NAMES


def test_bad_inputs_raise():
  layer, _ = CASES["s4d_real"]
  params = _params("s4d_real")
  with pytest.raises(ValueError, match=r"\(B, L, H=4\)"):
    layer.apply({"params": params}, jnp.zeros((2, 5, 3)))
  with pytest.raises(ValueError, match="lengths must have shape"):
    layer.apply({"params": params}, jnp.zeros((2, 5, 4)), jnp.zeros((3,), jnp.int32))
  with pytest.raises(ValueError, match="a_init='legs'.*real, lin, inv"):
    S4D(WIDTH, a_init="legs").init(jax.random.key(0), jnp.zeros((1, 2, WIDTH)))
  with pytest.raises(ValueError, match="state_size must be even"):
    S4D(WIDTH, state_size=3).init(jax.random.key(0), jnp.zeros((1, 2, WIDTH)))
  with pytest.raises(ValueError, match="c_init='orthogonal'.*trunc_standard_normal"):
    S5(WIDTH, c_init="orthogonal").init(jax.random.key(0), jnp.zeros((1, 2, WIDTH)))
  with pytest.raises(ValueError, match="chunk_size must be >= 1"):
    S6(WIDTH, impl="chunked", chunk_size=0).init(jax.random.key(0), jnp.zeros((1, 2, WIDTH)))
