"""The baseline layers' `step` against their parallel pass, at every step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ms_ssm_jax import streaming
from ms_ssm_jax.ssm.lru import LRU
from ms_ssm_jax.ssm.s4d import S4D
from ms_ssm_jax.ssm.s5 import S5
from ms_ssm_jax.ssm.s6 import S6
from tests.streaming_helpers import perturbed_variables
from tests.streaming_helpers import prepared_outputs
from tests.streaming_helpers import primitive_names
from tests.streaming_helpers import stepped_outputs
from tests.streaming_helpers import to_float64

BATCH, LENGTH, WIDTH = 2, 12, 4

CAUSAL = {
    "s4d_real": S4D(WIDTH, state_size=3, a_init="real"),
    "s4d_lin_conv": S4D(WIDTH, state_size=4, a_init="lin", impl="conv"),
    "s4d_inv_chunked": S4D(WIDTH, state_size=4, a_init="inv", impl="chunked", chunk_size=5),
    "s5_blocks_clipped": S5(WIDTH, state_size=8, blocks=2, clip_eigs=True),
    "s5_conv": S5(WIDTH, state_size=4, impl="conv"),
    "lru_ring": LRU(WIDTH, state_size=3, r_min=0.5, r_max=0.95, max_phase=1.0),
    "lru_conv": LRU(WIDTH, state_size=3, impl="conv"),
    "s6": S6(WIDTH, state_size=3),
}
BIDIRECTIONAL = {
    "s4d": S4D(WIDTH, state_size=4, bidirectional=True),
    "s5": S5(WIDTH, state_size=4, bidirectional=True),
    "lru": LRU(WIDTH, state_size=3, bidirectional=True),
}


def _inputs(dtype) -> jax.Array:
  return jnp.asarray(np.random.default_rng(0).normal(size=(BATCH, LENGTH, WIDTH)), dtype)


def _variables(layer):
  return perturbed_variables(layer, WIDTH)


@pytest.mark.parametrize("name", CAUSAL)
def test_step_equals_parallel_pass_float64(x64, name):
  layer = CAUSAL[name]
  variables, u = to_float64(_variables(layer)), _inputs(jnp.float64)
  stepped, prepared = stepped_outputs(layer, variables, u), prepared_outputs(layer, variables, u)
  assert stepped.shape == prepared.shape == u.shape
  assert stepped.dtype == prepared.dtype == jnp.float64
  parallel = layer.apply(variables, u)
  np.testing.assert_allclose(prepared, parallel, rtol=1e-10, atol=1e-10)
  np.testing.assert_allclose(stepped, parallel, rtol=1e-10, atol=1e-10)
  np.testing.assert_allclose(prepared, stepped, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name",
                         ["s4d_real", "s4d_lin_conv", "s5_blocks_clipped", "lru_ring", "s6"])
def test_step_equals_parallel_pass_float32(name):
  layer = CAUSAL[name]
  variables, u = _variables(layer), _inputs(jnp.float32)
  stepped, prepared = stepped_outputs(layer, variables, u), prepared_outputs(layer, variables, u)
  assert stepped.dtype == prepared.dtype == jnp.float32
  parallel = layer.apply(variables, u)
  np.testing.assert_allclose(prepared, parallel, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(stepped, parallel, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["s4d_real", "s4d_lin_conv", "s5_blocks_clipped", "lru_ring"])
def test_prepared_step_does_not_discretize(name):
  layer = CAUSAL[name]
  variables, u_t = _variables(layer), _inputs(jnp.float32)[:, 0]
  state = layer.apply(variables, BATCH, method="init_state")
  prepared = streaming.prepare_layer(layer, variables["params"])
  layer_step = lambda v, s, u: layer.apply(v, s, u, method="step")
  assert "exp" in primitive_names(layer_step, variables, state, u_t)
  assert "exp" not in primitive_names(lambda p, s, u: p.step(s, u), prepared, state, u_t)


def test_bf16_steps_keep_float32_states():
  layer = CAUSAL["s6"]
  variables = _variables(layer)
  state = layer.apply(variables, BATCH, jnp.bfloat16, method="init_state")
  assert state.dtype == jnp.float32
  new_state, y_t = layer.apply(variables, state, _inputs(jnp.bfloat16)[:, 0], method="step")
  assert new_state.dtype == jnp.float32 and y_t.dtype == jnp.bfloat16


@pytest.mark.parametrize("name", BIDIRECTIONAL)
def test_bidirectional_layers_refuse_to_step(name):
  layer = BIDIRECTIONAL[name]
  variables = layer.init(jax.random.key(0), jnp.zeros((1, 1, WIDTH)))
  with pytest.raises(ValueError, match="bidirectional.*future samples"):
    layer.apply(variables, BATCH, method="init_state")


def test_step_input_shape_error():
  layer = CAUSAL["s4d_real"]
  variables = layer.init(jax.random.key(0), jnp.zeros((1, 1, WIDTH)))
  state = layer.apply(variables, BATCH, method="init_state")
  with pytest.raises(ValueError, match=r"one step at a time: u\[:, t\]"):
    layer.apply(variables, state, _inputs(jnp.float32), method="step")
