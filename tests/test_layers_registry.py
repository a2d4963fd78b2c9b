"""The layer registry: configs from dataclass defaults, construction, errors, counts."""

from __future__ import annotations

import dataclasses
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import pytest

from ms_ssm_jax import layers
from ms_ssm_jax.ssm.s4d import S4D
from ms_ssm_jax.ssm.s5 import S5
from ms_ssm_jax.ssm.s6 import S6

BASELINES = ["s4d", "s5", "lru", "s6"]


def test_registry_names():
  assert set(layers.LAYERS) == {"ms_ssm", "s5", "lru", "s4d", "s6"}
  assert layers.LAYERS["s5"] is S5


@pytest.mark.parametrize("name", BASELINES)
def test_default_config_mirrors_the_dataclass_fields(name):
  cls = layers.LAYERS[name]
  config = layers.default_layer_config(name)
  assert isinstance(config, ml_collections.ConfigDict)
  fields = {
      f.name: f.default
      for f in dataclasses.fields(cls)
      if f.name not in ("d_model", "parent", "name")
  }
  assert set(config.keys()) == set(fields)
  for key, default in fields.items():
    assert config[key] == default, key
  layer = layers.make_layer(name, 8, config)
  assert isinstance(layer, cls) and layer.d_model == 8
  for key, default in fields.items():
    assert getattr(layer, key) == default, key


def test_none_default_becomes_a_typed_placeholder():
  config = layers.default_layer_config("ms_ssm")
  assert config.state_per_stream is None
  config.state_per_stream = 3  # what --config.model.layer_config.state_per_stream=3 does
  assert layers.make_layer("ms_ssm", 16, config).state_per_stream == 3
  with pytest.raises(TypeError):
    config.state_per_stream = "three"


def test_overrides_reach_the_layer():
  config = layers.default_layer_config("s4d")
  config.a_init = "real"
  config.state_size = 5
  layer = layers.make_layer("s4d", 4, config, module_name="mixer")
  assert (layer.a_init, layer.state_size, layer.name) == ("real", 5, "mixer")
  params = layer.init(jax.random.key(0), jnp.zeros((1, 2, 4)))["params"]
  assert params["A_re_log"].shape == (4, 5)
  assert layers.make_layer("s4d", 4, {"bidirectional": True}).bidirectional
  assert layers.make_layer("s4d", 4).state_size == S4D.state_size


def test_unknown_layer_lists_the_known_ones():
  known = "known layers: ms_ssm, s5, lru, s4d, s6"
  with pytest.raises(ValueError, match=f"unknown layer 's4'; {known}"):
    layers.make_layer("s4", 8, None)
  with pytest.raises(ValueError, match="unknown layer 'mamba'"):
    layers.default_layer_config("mamba")


def test_unknown_config_keys_are_named():
  config = layers.default_layer_config("s5")
  with config.unlocked():
    config.state_szie = 32
    config.blcoks = 2
  with pytest.raises(ValueError, match="unknown config keys for layer 's5': blcoks, state_szie"):
    layers.make_layer("s5", 8, config)


def test_count_parameters_and_state_size():
  layer = layers.make_layer("s5", 6, {"state_size": 8, "bidirectional": True})
  params = layer.init(jax.random.key(0), jnp.zeros((1, 2, 6)))["params"]
  # Lambda_re, Lambda_im (4 each), B (4, 6, 2), C and C_reverse (6, 4, 2), D (6), log_step (4, 1)
  assert layers.count_parameters(params) == 4 + 4 + 48 + 48 + 48 + 6 + 4
  assert layers.state_size(layer) == layers.StateCounts(per_channel=8, total=8, carried_floats=16)
  assert layers.state_size(layers.make_layer("s4d", 6, {"state_size": 8})) == (layers.StateCounts(
      per_channel=8, total=48, carried_floats=48))
  assert layers.state_size(layers.make_layer("lru", 6, {"state_size": 8})) == (layers.StateCounts(
      per_channel=8, total=8, carried_floats=16))
  assert layers.state_size(S6(6, state_size=4)) == layers.StateCounts(4, 24, 24)
  with pytest.raises(TypeError, match="Dense does not implement state_counts"):
    layers.state_size(nn.Dense(3))


def test_ms_ssm_resolves_lazily_with_placeholder_fields():
  assert layers.LAYERS["ms_ssm"].__name__ == "MSSSMLayer"
  config = layers.default_layer_config("ms_ssm")
  assert config.state_per_stream is None
  config.state_per_stream = 4
  assert layers.make_layer("ms_ssm", 8, config).state_per_stream == 4


@pytest.mark.parametrize("name, kept, retired, other_value", [
    ("ms_ssm", {"state_per_stream": 4}, "d_skip", False),
    ("s5", {"state_size": 8}, "conj_sym", False),
    ("s5", {"state_size": 8}, "discretization", "bilinear"),
    ("s5", {"state_size": 8}, "step_rescale", 2.0),
    ("lru", {"state_size": 8}, "train_gamma", False),
])
def test_retired_fields_load_at_their_value_and_fail_otherwise(name, kept, retired, other_value):
  """Released models store fields removed since (ms_ssm_jax/released/manifest.json)."""
  stored = {**kept, **layers.RETIRED_FIELDS[name]}
  layer = layers.make_layer(name, 8, stored)
  assert all(getattr(layer, key) == value for key, value in kept.items())
  assert not any(hasattr(layer, key) for key in layers.RETIRED_FIELDS[name])
  expected = f"no longer has the field '{retired}'; only {retired}={stored[retired]!r}"
  with pytest.raises(ValueError, match=re.escape(expected)):
    layers.make_layer(name, 8, {**stored, retired: other_value})


@pytest.mark.parametrize("name, stored, expected", [
    ("ms_ssm", {"mode": "conv", "scan_impl": "associative", "scan_chunk_size": 0}, {"impl": "conv"
                                                                                   }),
    ("ms_ssm", {"mode": "scan", "scan_impl": "auto", "scan_chunk_size": 128
               }, {"impl": "auto", "chunk_size": 128}),
    ("ms_ssm", {"mode": "scan", "scan_impl": "pallas", "scan_chunk_size": 0}, {"impl": "pallas"}),
    ("ms_ssm", {"mode": "scan", "scan_impl": "associative", "scan_chunk_size": 0}, {"impl": "scan"
                                                                                   }),
    ("s4d", {"mode": "scan", "scan_chunk_size": 32}, {"impl": "chunked", "chunk_size": 32}),
    ("s5", {"mode": "scan"}, {"impl": "scan"}),
    ("lru", {"mode": "conv"}, {"impl": "conv"}),
    ("s6", {"scan_impl": "associative", "scan_chunk_size": 128}, {"impl": "chunked"}),
])
def test_retired_evaluation_fields_become_impl(name, stored, expected):
  """Released models (and old configs) store `mode`, `scan_impl`, `scan_chunk_size`."""
  fields = {"state_per_stream": 4} if name == "ms_ssm" else {}
  layer = layers.make_layer(name, 8, {**fields, **stored})
  assert {key: getattr(layer, key) for key in expected} == expected
  assert not any(hasattr(layer, key) for key in layers.RETIRED_EVALUATION_FIELDS)


@pytest.mark.parametrize("stored", [{"mode": "conv", "scan_chunk_size": 8}, {"mode": "fft"},
                                    {"scan_impl": "triton"}, {"mode": "scan", "impl": "scan"}])
def test_retired_evaluation_fields_without_a_translation_are_one_line_errors(stored):
  with pytest.raises(
      ValueError, match=r"^layer 's4d': the retired fields .* have no "
      r"translation; set impl \(auto, scan, chunked, pallas, conv\) and chunk_size "
      r"instead$"):
    layers.make_layer("s4d", 8, stored)
