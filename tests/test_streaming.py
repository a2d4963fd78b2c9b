"""Streaming a whole model one sample at a time equals its parallel pass on every prefix."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ms_ssm_jax import evaluation
from ms_ssm_jax import model as model_lib
from ms_ssm_jax import streaming
from tests.streaming_helpers import primitive_names
from tests.test_model import CONTINUOUS
from tests.test_model import DUAL
from tests.test_model import TOKENS
from tests.test_model import tiny_config
from tests.marks import marked_slow

B, L = 2, 8

# name -> (model preset, layer, task, model config updates): every block, norm, prenorm,
# activation and pooling that a preset uses, two blocks deep.
CASES = {
    "ms_ssm_multires_batchnorm_mean": ("ms_ssm", "ms_ssm", CONTINUOUS, {}),
    "ms_ssm_s6_mamba_last":
        ("ms_ssm_s6", "ms_ssm", TOKENS, {"pooling": "last", "layer_config.backbone": "s6"}),
    "s5_block_prenorm_half_glu2": ("s5", "s5", CONTINUOUS, {"activation": "half_glu2"}),
    "s6_mamba_conv": ("s6", "s6", TOKENS, {}),
    "lru_per_step_logits":
        ("lru", "lru", CONTINUOUS, {"pooling": "none", "activation": "half_glu1"}),
    "s4d_gelu_layernorm": ("s4d", "s4d", TOKENS, {"activation": "gelu", "norm": "layer"}),
}


def _perturbed(variables):
  """Random variables away from the init (BatchNorm statistics included)."""
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.key(2), len(leaves))
  return jax.tree.unflatten(
      tree,
      [leaf + 0.1 * jax.random.normal(k, leaf.shape, leaf.dtype) for leaf, k in zip(leaves, keys)])


def _inputs(spec, key):
  if spec.input_type == "tokens":
    return jax.random.randint(key, (B, L), 1, spec.vocab_size)
  return jax.random.normal(key, (B, L, spec.num_channels))


def _model_and_variables(name):
  preset, layer, spec, updates = CASES[name]
  model = model_lib.build_model(tiny_config(layer, model=preset, num_layers=2, **updates), spec)
  return model, spec, _perturbed(model.init(jax.random.key(0), model_lib.dummy_batch(spec, B)))


def _prefix_logits(model, variables, inputs):
  """The parallel pass on every prefix 0..t: `(B, L, num_classes)`.

  One eval pass over L copies with lengths 1..L: the layers are causal, so the valid steps
  (all that the pooling reads) do not depend on the padding.
  """
  if model.pooling == "none":
    return model.apply(variables, {"inputs": inputs, "lengths": jnp.full((B,), L)})
  copies = jnp.repeat(inputs[None], L, axis=0).reshape((L * B,) + inputs.shape[1:])
  lengths = jnp.repeat(jnp.arange(1, L + 1, dtype=jnp.int32), B)
  logits = model.apply(variables, {"inputs": copies, "lengths": lengths}, train=False)
  return jnp.swapaxes(logits.reshape(L, B, -1), 0, 1)


# The default suite streams two of the models; the two S6 mamba models, the S5 block, LRU
# and the multires MS-SSM (a released MS-SSM streams in the default suite,
# test_released_model_streams_to_the_parallel_logits) run with -m slow.
SLOW_STREAMING = ("s6_mamba_conv", "ms_ssm_s6_mamba_last", "s5_block_prenorm_half_glu2",
                  "ms_ssm_multires_batchnorm_mean", "lru_per_step_logits")


@pytest.mark.parametrize("name", marked_slow(CASES, SLOW_STREAMING))
def test_streamed_logits_equal_the_parallel_pass_on_every_prefix(name):
  model, spec, variables = _model_and_variables(name)
  inputs = _inputs(spec, jax.random.key(3))
  streamed = jax.jit(lambda v, x: streaming.stream_logits(model, v, x))(variables, inputs)
  assert streamed.shape == (B, L, spec.num_classes) and streamed.dtype == jnp.float32
  np.testing.assert_allclose(streamed, _prefix_logits(model, variables, inputs), rtol=1e-4,
                             atol=1e-5)


@pytest.mark.parametrize(
    "name",
    ["ms_ssm_multires_batchnorm_mean",
     pytest.param("s6_mamba_conv", marks=pytest.mark.slow)])
def test_prepared_donated_steps_equal_the_unprepared_steps(name):
  model, spec, variables = _model_and_variables(name)
  inputs = _inputs(spec, jax.random.key(3))
  prepared = streaming.prepare(model, variables)
  fast, slow = streaming.jit_step(model), jax.jit(functools.partial(streaming.stream_step, model))
  fast_state = streaming.init_stream(model, variables, B)
  slow_state = streaming.init_stream(model, variables, B)
  for t in range(L):
    fast_state, fast_logits = fast(prepared, fast_state, inputs[:, t])
    slow_state, slow_logits = slow(variables, slow_state, inputs[:, t])
    np.testing.assert_allclose(fast_logits, slow_logits, rtol=1e-5, atol=1e-6)
  for fast_leaf, slow_leaf in zip(jax.tree.leaves(fast_state), jax.tree.leaves(slow_state)):
    np.testing.assert_allclose(fast_leaf, slow_leaf, rtol=1e-5, atol=1e-6)


def test_jit_step_updates_the_donated_state_in_place():
  model, spec, variables = _model_and_variables("ms_ssm_multires_batchnorm_mean")
  prepared = streaming.prepare(model, variables)
  state = streaming.init_stream(model, variables, B)
  inputs_t = _inputs(spec, jax.random.key(3))[:, 0]
  step = streaming.jit_step(model)
  state_bytes = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
  memory = step.lower(prepared, state, inputs_t).compile().memory_analysis()
  assert memory.alias_size_in_bytes == state_bytes  # every state buffer reused for the output
  new_state, _ = step(prepared, state, inputs_t)
  assert all(leaf.is_deleted() for leaf in jax.tree.leaves(state))
  assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(prepared))
  assert jax.tree.structure(new_state) == jax.tree.structure(state)


def test_prepared_model_step_neither_discretizes_nor_normalizes():
  model, spec, variables = _model_and_variables("ms_ssm_multires_batchnorm_mean")
  assert model.norm == "batch" and model.seq_layer.backbone == "s4d_real"
  state = streaming.init_stream(model, variables, B)
  inputs_t = _inputs(spec, jax.random.key(3))[:, 0]
  unprepared = primitive_names(functools.partial(streaming.stream_step, model), variables, state,
                               inputs_t)
  prepared = primitive_names(functools.partial(streaming.step, model),
                             streaming.prepare(model, variables), state, inputs_t)
  assert {"exp", "rsqrt"} <= unprepared  # the streams' ZOH and BatchNorm's 1/sqrt(var + eps)
  assert not {"exp", "rsqrt"} & prepared


@pytest.mark.slow  # 55 s on 2 cores; the float32 pass of the same model runs by default
def test_float64_model_streams_to_the_parallel_pass(x64):
  model, spec, variables = _model_and_variables("ms_ssm_multires_batchnorm_mean")
  model = model.clone(dtype=jnp.float64)
  variables = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), variables)
  inputs = _inputs(spec, jax.random.key(3)).astype(jnp.float64)
  streamed = jax.jit(lambda v, x: streaming.stream_logits(model, v, x))(variables, inputs)
  # The pooled features and the head are float32 in both passes (model.py): float32 rounding.
  np.testing.assert_allclose(streamed, _prefix_logits(model, variables, inputs), rtol=1e-6,
                             atol=1e-7)


def test_released_model_streams_to_the_parallel_logits():
  saved = evaluation.SavedModel.from_zoo("ms_ssm_japanese_vowels")
  model, variables = saved.model, jax.device_get(saved.variables)
  length = 29  # JapaneseVowels' longest sequence; longer than the widest wavelet filter
  inputs = jax.random.normal(jax.random.key(0), (B, length, saved.spec.num_channels))
  prepared, step = streaming.prepare(model, variables), streaming.jit_step(model)
  state = streaming.init_stream(model, variables, B)
  for t in range(length):
    state, logits = step(prepared, state, inputs[:, t])
  parallel = model.apply(variables, {"inputs": inputs, "lengths": jnp.full((B,), length)})
  np.testing.assert_allclose(logits, parallel, rtol=1e-4, atol=1e-4)
  assert int(state["steps"]) == length


def test_bidirectional_and_dual_models_refuse_to_stream():
  config = tiny_config("s5", **{"layer_config.bidirectional": True})
  model = model_lib.build_model(config, CONTINUOUS)
  with pytest.raises(ValueError, match="bidirectional: their outputs depend on future"):
    streaming.init_stream(model, {}, B)
  dual = model_lib.build_model(tiny_config("s5"), DUAL)
  with pytest.raises(ValueError, match="compares two whole sequences"):
    streaming.init_stream(dual, {}, B)
