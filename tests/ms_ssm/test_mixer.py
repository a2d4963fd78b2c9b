"""The scale mixer against its formulas, and its init (the average of the streams)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ms_ssm_jax.ms_ssm import mixer

B, L, H, S = 2, 5, 3, 4


def inputs(x64_dtype=jnp.float32):
  rng = np.random.default_rng(0)
  y = jnp.asarray(rng.normal(size=(B, L, H, S)), x64_dtype)
  u = jnp.asarray(rng.normal(size=(B, L, H)), x64_dtype)
  return y, u


def randomized(params, seed):
  """Params replaced by random values, so that the formulas are tested away from init."""
  leaves, tree = jax.tree.flatten(params)
  rng = np.random.default_rng(seed)
  return jax.tree.unflatten(tree, [jnp.asarray(rng.normal(size=p.shape)) for p in leaves])


@pytest.mark.parametrize("name", ["linear_input", "softmax_input"])
def test_input_dependent_mixers_match_formula_float64(x64, name):
  y, u = inputs(jnp.float64)
  module = mixer.ScaleMixer(mixer=name)
  params = randomized(module.init(jax.random.key(0), y, u)["params"], 1)
  got = module.apply({"params": params}, y, u)
  w, b = np.asarray(params["kernel"]), np.asarray(params["bias"])
  y_np, u_np = np.asarray(y), np.asarray(u)
  ref = np.zeros((B, L, H))
  for bi in range(B):
    for t in range(L):
      e = (u_np[bi, t] @ w + b).reshape(H, S)  # E_t[h, j] at index h S + j
      if name == "softmax_input":
        e = np.exp(e - e.max(-1, keepdims=True))
        e = e / e.sum(-1, keepdims=True)
      ref[bi, t] = (e * y_np[bi, t]).sum(-1)
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12, atol=1e-12)


def test_static_and_none(x64):
  y, u = inputs(jnp.float64)
  module = mixer.ScaleMixer(mixer="static")
  params = randomized(module.init(jax.random.key(0), y, u)["params"], 2)
  got = module.apply({"params": params}, y, u)
  ref = (np.asarray(y) * np.asarray(params["weights"])).sum(-1)
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12)
  summed, variables = mixer.ScaleMixer(mixer="none").init_with_output(jax.random.key(0), y, u)
  assert not variables
  np.testing.assert_allclose(np.asarray(summed), np.asarray(y).sum(-1), rtol=1e-12)


@pytest.mark.parametrize("name", ["linear_input", "static", "softmax_input"])
def test_init_averages_the_streams(name):
  y, u = inputs()
  module = mixer.ScaleMixer(mixer=name)
  z, variables = module.init_with_output(jax.random.key(0), y, u)
  mean = jnp.mean(y, axis=-1)
  # W_E is small, not zero: the input-dependent part is ~1% of the weights at init.
  assert float(jnp.linalg.norm(z - mean) / jnp.linalg.norm(mean)) < 0.1
  params = variables["params"]
  if name == "linear_input":
    np.testing.assert_array_equal(params["bias"], jnp.full((H * S,), 1 / S))
  if "kernel" in params:
    zero_kernel = dict(params, kernel=jnp.zeros_like(params["kernel"]))
    exact = module.apply({"params": zero_kernel}, y, u)
    np.testing.assert_allclose(np.asarray(exact), np.asarray(mean), rtol=1e-6, atol=1e-6)
    assert float(jnp.std(params["kernel"])) < 0.02


def test_bf16_inputs_stay_bf16():
  y, u = inputs()
  module = mixer.ScaleMixer()
  params = module.init(jax.random.key(0), y, u)
  z = module.apply(params, y.astype(jnp.bfloat16), u.astype(jnp.bfloat16))
  assert z.dtype == jnp.bfloat16
  assert jax.tree.leaves(params)[0].dtype == jnp.float32


def test_unknown_mixer():
  y, u = inputs()
  with pytest.raises(ValueError, match="unknown mixer 'attention'; known: linear_input"):
    mixer.ScaleMixer(mixer="attention").init(jax.random.key(0), y, u)
