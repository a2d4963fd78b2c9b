"""The sequence model: shapes for every layer and block, padding invariance, precision."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import common
from ms_ssm_jax import layers
from ms_ssm_jax import model as model_lib
from ms_ssm_jax.data.task import TaskSpec

B, L = 2, 8
CONTINUOUS = TaskSpec("continuous", "continuous", num_classes=5, max_length=L, num_channels=3)
TOKENS = TaskSpec("tokens", "tokens", num_classes=5, max_length=L, vocab_size=7)
DUAL = TaskSpec("dual", "tokens", num_classes=2, max_length=L, vocab_size=7, dual=True)
TINY_LAYERS = {
    "ms_ssm": {"num_levels": 1, "kernel_size": 2, "state_per_stream": 2},
    "s5": {"state_size": 4},
    "lru": {"state_size": 2},
    "s4d": {"state_size": 4},
    "s6": {"state_size": 2},
}


def tiny_config(layer: str = "ms_ssm", *, model: str | None = None,
                **updates) -> ml_collections.ConfigDict:
  """A 1-layer, width-4 model config: `model` preset (default: the layer's own) + updates."""
  config = common.base_config("japanese_vowels", model or layer)
  if model is None and layer == "ms_ssm":
    config = common.with_model(config, "ms_ssm")
  config.model.layer = layer
  config.model.layer_config = layers.default_layer_config(layer)
  config.model.layer_config.update(TINY_LAYERS[layer])
  config.model.d_model, config.model.num_layers = 4, 1
  common.override(config, {f"model.{k}": v for k, v in updates.items()})
  return config.model


def random_batch(spec: TaskSpec, key: jax.Array, lengths=(L, 5)) -> dict[str, jax.Array]:
  lengths = jnp.asarray(lengths, jnp.int32)
  if spec.input_type == "tokens":
    inputs = jax.random.randint(key, (B, L), 1, spec.vocab_size)
    inputs = jnp.where(jnp.arange(L) < lengths[:, None], inputs, 0)
  else:
    inputs = jax.random.normal(key, (B, L, spec.num_channels))
  batch = {"inputs": inputs, "lengths": lengths}
  if spec.dual:
    batch.update(inputs2=jnp.flip(inputs, 0), lengths2=jnp.flip(lengths, 0))
  return batch


def change_padding(batch, key):
  """The batch with different values at every padded step (valid steps unchanged)."""
  inputs = batch["inputs"]
  valid = jnp.arange(L) < batch["lengths"][:, None]
  if inputs.ndim == 2:
    noise = jax.random.randint(key, inputs.shape, 1, 7)
  else:
    noise = 100.0 * jax.random.normal(key, inputs.shape)
    valid = valid[..., None]
  return {**batch, "inputs": jnp.where(valid, inputs, noise)}


def shapes(model_cfg, spec, batch=None):
  model = model_lib.build_model(model_cfg, spec)
  batch = model_lib.dummy_batch(spec, B) if batch is None else batch
  return jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), batch))


@pytest.mark.parametrize("layer", sorted(TINY_LAYERS))
def test_every_block_gives_logits_of_the_right_shape(layer):
  for block, spec in zip(("multires", "s5", "mamba"), (CONTINUOUS, TOKENS, CONTINUOUS)):
    cfg = tiny_config(layer, block=block, prenorm=block == "mamba")
    logits, variables = shapes(cfg, spec)
    assert logits.shape == (B, spec.num_classes) and logits.dtype == jnp.float32, block
    assert set(variables) == ({"params", "batch_stats"} if cfg.norm == "batch" else {"params"})
    assert "seq_layer" in variables["params"]["blocks_0"]


def test_pooling_and_dual_shapes():
  for pooling in ("mean", "last", "none"):
    logits, _ = shapes(tiny_config(pooling=pooling), TOKENS)
    expected = (B, L, TOKENS.num_classes) if pooling == "none" else (B, TOKENS.num_classes)
    assert logits.shape == expected, pooling
  logits, variables = shapes(tiny_config(), DUAL)
  assert logits.shape == (B, 2)
  # Shared weights: one encoder and one stack for both sequences, an MLP on [u, v, uv, u-v].
  assert sorted(variables["params"]) == ["blocks_0", "encoder", "head", "head_hidden"]
  assert variables["params"]["head_hidden"]["kernel"].shape == (4 * 4, 4)


def test_parameter_paths():
  _, variables = shapes(tiny_config(num_layers=2), TOKENS)
  params = variables["params"]
  assert sorted(params) == ["blocks_0", "blocks_1", "encoder", "head"]
  assert sorted(params["encoder"]) == ["embedding"]
  assert sorted(params["blocks_0"]) == ["glu", "norm", "seq_layer"]
  assert sorted(params["blocks_0"]["norm"]) == ["batch_norm"]
  _, variables = shapes(tiny_config("s6", model="s6"), CONTINUOUS)
  params = variables["params"]
  assert sorted(params) == ["blocks_0", "encoder", "final_norm", "head"]
  assert sorted(params["blocks_0"]) == ["conv", "in_proj", "norm", "out_proj", "seq_layer"]
  assert params["blocks_0"]["in_proj"]["kernel"].shape == (4, 2 * 2 * 4)  # expand 2: x, z
  _, variables = shapes(tiny_config(model="ms_ssm_s6"), CONTINUOUS)
  assert "conv" not in variables["params"]["blocks_0"]  # the decomposition replaces it


@pytest.mark.parametrize("name, cfg, spec, train", [
    ("causal ms_ssm, BatchNorm in training, per-step outputs",
     dict(layer="ms_ssm", pooling="none", dropout=0.1), TOKENS, True),
    ("s6 in a mamba block with its conv, last step", dict(layer="s6", model="s6",
                                                          pooling="last"), CONTINUOUS, True),
    ("bidirectional s5, masked mean",
     dict(layer="s5", model="s5", pooling="mean", bidirectional=True), CONTINUOUS, False),
    ("bidirectional ms_ssm, masked mean", dict(layer="ms_ssm", pooling="mean",
                                               bidirectional=True), CONTINUOUS, True),
])
def test_padding_does_not_reach_valid_outputs(name, cfg, spec, train):
  cfg = dict(cfg)
  layer, model_name = cfg.pop("layer"), cfg.pop("model", None)
  bidirectional = cfg.pop("bidirectional", False)
  model_cfg = tiny_config(layer, model=model_name, **cfg)
  if bidirectional:
    model_cfg.layer_config.bidirectional = True
  model = model_lib.build_model(model_cfg, spec)
  batch = random_batch(spec, jax.random.key(1))
  variables = jax.jit(model.init)(jax.random.key(0), batch)

  @jax.jit
  def apply(batch):
    return model.apply(variables, batch, train=train, rngs={"dropout": jax.random.key(2)},
                       mutable=["batch_stats"])

  (out, stats), (out2, stats2) = apply(batch), apply(change_padding(batch, jax.random.key(3)))
  if model_cfg.pooling == "none":
    valid = np.arange(L) < np.asarray(batch["lengths"])[:, None]
    out, out2 = np.asarray(out)[valid], np.asarray(out2)[valid]
  assert np.all(np.isfinite(out))
  np.testing.assert_allclose(out, out2, rtol=1e-5, atol=1e-5, err_msg=name)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), stats, stats2)


def test_padding_changes_the_output_without_lengths_masking():
  """Guards the test above: changing a *valid* step does change the outputs."""
  model = model_lib.build_model(tiny_config("s4d", model="s4d", pooling="mean"), CONTINUOUS)
  batch = random_batch(CONTINUOUS, jax.random.key(1))
  variables = jax.jit(model.init)(jax.random.key(0), batch)
  changed = {**batch, "inputs": batch["inputs"].at[1, 0].add(5.0)}
  apply = jax.jit(model.apply)
  out, out2 = apply(variables, batch), apply(variables, changed)
  assert not np.allclose(out[1], out2[1], atol=1e-4)
  np.testing.assert_allclose(out[0], out2[0], rtol=1e-6)


def test_bfloat16_is_finite_and_close_to_float32():
  cfg = tiny_config(norm="layer", d_model=16)
  batch = random_batch(CONTINUOUS, jax.random.key(1))
  f32 = model_lib.build_model(cfg, CONTINUOUS)
  bf16 = model_lib.build_model(cfg, CONTINUOUS, precision="bfloat16")
  variables = jax.jit(bf16.init)(jax.random.key(0), batch)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
  out32, out16 = jax.jit(f32.apply)(variables, batch), jax.jit(bf16.apply)(variables, batch)
  assert out16.dtype == jnp.float32 and np.all(np.isfinite(out16))
  scale = float(jnp.max(jnp.abs(out32)))
  np.testing.assert_allclose(out16, out32, atol=0.05 * scale)
  assert not np.array_equal(out16, out32)  # bf16 did run


@pytest.mark.parametrize("block", ["multires", pytest.param("mamba", marks=pytest.mark.slow)])
def test_remat_gives_the_same_params_outputs_and_gradients(block):
  extra = {"prenorm": True, "norm": "layer"} if block == "mamba" else {}
  cfg = tiny_config(block=block, num_layers=2, dropout=0.1, **extra)
  batch = random_batch(CONTINUOUS, jax.random.key(1))
  plain = model_lib.build_model(cfg, CONTINUOUS)
  remat = model_lib.build_model(cfg, CONTINUOUS, remat=True)
  variables = jax.jit(plain.init)(jax.random.key(0), batch)
  assert jax.tree.structure(variables) == jax.tree.structure(
      jax.eval_shape(remat.init, jax.random.key(0), batch))

  def loss(model, params):
    logits, _ = model.apply({**variables, "params": params}, batch, train=True,
                            rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"])
    return jnp.sum(logits**2)

  value, grads = jax.jit(jax.value_and_grad(lambda p: loss(plain, p)))(variables["params"])
  value_remat, grads_remat = jax.jit(jax.value_and_grad(lambda p: loss(remat, p)))(
      variables["params"])
  np.testing.assert_allclose(value_remat, value, rtol=1e-5)
  for g, g_remat in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_remat)):
    np.testing.assert_allclose(g_remat, g, rtol=1e-4, atol=1e-6)


def test_summarize_counts_parameters_and_states():
  cfg = tiny_config("s4d", model="s4d", num_layers=3)
  summary = model_lib.summarize(cfg, TOKENS)
  _, variables = shapes(cfg, TOKENS)
  assert summary.num_params == layers.count_parameters(variables["params"])
  assert sum(summary.params_by_module.values()) == summary.num_params
  assert list(summary.params_by_module) == ["encoder", "blocks", "head"]
  assert summary.layer_states == 4 * 4  # H channels x N states
  assert summary.num_layers == 3 and "48 in total" in str(summary)


@pytest.mark.parametrize("updates, spec, match", [
    (dict(block="mamba", prenorm=False), CONTINUOUS, "prenorm"),
    (dict(pooling="none"), DUAL, "pooling"),
    (dict(block="transformer"), CONTINUOUS, "model.block='transformer'"),
    (dict(activation="relu"), CONTINUOUS, "activation"),
])
def test_bad_configs_are_errors(updates, spec, match):
  with pytest.raises(ValueError, match=match):
    model_lib.build_model(tiny_config(**updates), spec)


def test_unknown_model_key_and_precision_are_errors():
  cfg = tiny_config()
  with pytest.raises(ValueError, match="bfloat8"):
    model_lib.build_model(cfg, CONTINUOUS, precision="bfloat8")
  cfg = ml_collections.ConfigDict(cfg.to_dict())
  cfg.residual_scale = 0.5
  with pytest.raises(ValueError, match="residual_scale"):
    model_lib.build_model(cfg, CONTINUOUS)
  # One line, naming the key and what is known.
  with pytest.raises(
      ValueError, match=r"^config.model has unknown keys \['residual_scale'\]; "
      r"the known keys are \[[^\n]*'d_model'[^\n]*\]"):
    model_lib.build_model(cfg, CONTINUOUS)


# A value other than the default for every `config.model` key that is a SequenceModel field.
NON_DEFAULTS = {
    "d_model": 6, "num_layers": 2, "block": "mamba", "norm": "layer", "prenorm": True,
    "batchnorm_momentum": 0.5, "activation": "gelu", "dropout": 0.25, "pooling": "last",
    "mamba_expand": 3, "mamba_conv_kernel": 2
}


def test_model_config_keys_are_the_model_fields():
  defaults = model_lib.default_model_config("s4d")
  assert set(defaults) == model_lib.MODEL_CONFIG_KEYS
  assert defaults.layer_config.to_dict() == layers.default_layer_config("s4d").to_dict()
  # Every field but dual_combine (one choice) gets a value other than its default, and the
  # built model holds it: build_model passes every key through.
  fields = set(model_lib.MODEL_CONFIG_KEYS) - set(model_lib.LAYER_CONFIG_KEYS)
  assert set(NON_DEFAULTS) == fields - {"dual_combine"}
  cfg = tiny_config("s4d", **NON_DEFAULTS)
  model = model_lib.build_model(cfg, CONTINUOUS)
  for key, value in NON_DEFAULTS.items():
    assert getattr(model, key) == value != defaults[key], key
  assert model.seq_layer.d_model == 3 * 6  # mamba_expand * d_model


def test_a_missing_model_key_takes_its_default():
  # A config saved before a model field existed lacks it: it gets the field's default.
  cfg = tiny_config("s4d", num_layers=2)
  saved = cfg.to_dict()
  del saved["mamba_expand"], saved["pooling"]
  model = model_lib.build_model(ml_collections.ConfigDict(saved), TOKENS)
  assert (model.mamba_expand, model.pooling, model.num_layers) == (2, "mean", 2)
  del saved["layer"]
  with pytest.raises(ValueError, match="no 'layer'"):
    model_lib.build_model(ml_collections.ConfigDict(saved), TOKENS)
