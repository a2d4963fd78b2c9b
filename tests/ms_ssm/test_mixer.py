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


def test_per_channel_mixer_is_the_papers_eq4_float64(x64):
  """E_t[h, j] = w[h, j] u_t[h] + b[h, j]: each channel's weights from its own input only."""
  y, u = inputs(jnp.float64)
  module = mixer.ScaleMixer(mixer="linear_input")
  params = randomized(module.init(jax.random.key(0), y, u)["params"], 1)
  assert {k: v.shape for k, v in params.items()} == {"weight": (H, S), "bias": (H, S)}
  got = module.apply({"params": params}, y, u)
  w, b = np.asarray(params["weight"]), np.asarray(params["bias"])
  y_np, u_np = np.asarray(y), np.asarray(u)
  ref = np.zeros((B, L, H))
  for bi in range(B):
    for t in range(L):
      for h in range(H):
        e = w[h] * u_np[bi, t, h] + b[h]
        ref[bi, t, h] = np.dot(e, y_np[bi, t, h])
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12, atol=1e-12)
  input_term, constant_term = module.apply({"params": params}, y, u, method="terms")
  np.testing.assert_allclose(np.asarray(constant_term), (y_np * b).sum(-1), rtol=1e-12)
  np.testing.assert_allclose(np.asarray(input_term + constant_term), ref, rtol=1e-12, atol=1e-12)


def test_per_channel_mixer_gradients_match_float64_reference(x64):
  y, u = inputs(jnp.float64)
  module = mixer.ScaleMixer(mixer="linear_input")
  params = randomized(module.init(jax.random.key(0), y, u)["params"], 3)

  def loss(params, y, u):
    return jnp.sum(jnp.sin(module.apply({"params": params}, y, u)))

  def reference(params, y, u):
    e = params["weight"] * u[..., None] + params["bias"]
    return jnp.sum(jnp.sin(jnp.sum(e * y, axis=-1)))

  got = jax.grad(loss, argnums=(0, 1, 2))(params, y, u)
  want = jax.grad(reference, argnums=(0, 1, 2))(params, y, u)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-10, atol=1e-12)


def test_per_channel_mixer_has_h_times_streams_input_weights():
  """The paper's form adds H S' input weights, the dense reading H^2 S' (sec. 3)."""
  width = 128
  y = jnp.zeros((1, 2, width, S))
  u = jnp.zeros((1, 2, width))
  count = lambda name: sum(
      p.size for p in jax.tree.leaves(mixer.ScaleMixer(mixer=name).init(jax.random.key(0), y, u)))
  assert count("linear_input") == 2 * width * S
  assert count("linear_input_dense") == width * width * S + width * S


@pytest.mark.parametrize("name", ["linear_input_dense", "softmax_input"])
def test_dense_input_mixers_match_formula_float64(x64, name):
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


def test_input_ratio_counts_valid_steps_only(x64):
  rng = np.random.default_rng(4)
  input_term = jnp.asarray(rng.normal(size=(B, L, H)))
  rest = jnp.asarray(rng.normal(size=(B, L, H)))
  lengths = jnp.array([L, 2])
  valid = np.arange(L)[None, :, None] < np.asarray(lengths)[:, None, None]
  want = (np.abs(input_term) * valid).sum() / (np.abs(rest) * valid).sum()
  got = mixer.input_ratio(input_term, rest, lengths)
  np.testing.assert_allclose(float(got), want, rtol=1e-6)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(float(mixer.input_ratio(input_term, rest)),
                             np.abs(input_term).sum() / np.abs(rest).sum(), rtol=1e-6)


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


@pytest.mark.parametrize("name", ["linear_input", "static", "softmax_input", "linear_input_dense"])
def test_init_averages_the_streams(name):
  y, u = inputs()
  module = mixer.ScaleMixer(mixer=name)
  z, variables = module.init_with_output(jax.random.key(0), y, u)
  mean = jnp.mean(y, axis=-1)
  # w and W_E are small, not zero: the input-dependent part is ~1% of the weights at init.
  assert float(jnp.linalg.norm(z - mean) / jnp.linalg.norm(mean)) < 0.1
  params = variables["params"]
  if name == "linear_input_dense":
    np.testing.assert_array_equal(params["bias"], jnp.full((H * S,), 1 / S))
  if name == "linear_input":
    np.testing.assert_array_equal(params["bias"], jnp.full((H, S), 1 / S))
    zero_weight = dict(params, weight=jnp.zeros_like(params["weight"]))
    exact = module.apply({"params": zero_weight}, y, u)
    np.testing.assert_allclose(np.asarray(exact), np.asarray(mean), rtol=1e-6, atol=1e-6)
    assert float(jnp.std(params["weight"])) < 0.02
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
  with pytest.raises(ValueError, match="unknown mixer 'attention'; known: linear_input, static"):
    mixer.ScaleMixer(mixer="attention").init(jax.random.key(0), y, u)
