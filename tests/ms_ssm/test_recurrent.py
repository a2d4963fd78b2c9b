"""MSSSMLayer's `step` (ring buffers, stream states, mixer) against its parallel pass."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ms_ssm_jax import streaming
from ms_ssm_jax.ms_ssm import MSSSMLayer
from ms_ssm_jax.ms_ssm import decomposition
from ms_ssm_jax.ms_ssm import recurrent
from tests.streaming_helpers import perturbed_variables
from tests.streaming_helpers import prepared_outputs
from tests.streaming_helpers import primitive_names
from tests.streaming_helpers import stepped_outputs
from tests.streaming_helpers import to_float64
from tests.marks import marked_slow

BATCH, WIDTH = 2, 3
# Longer than the widest filter (S=3, K=3: R_3 = 15 samples), so every ring buffer wraps.
LEVELS, KERNEL, LENGTH = 3, 3, 20

CASES = {
    **{f"{backbone}_linear_input": dict(backbone=backbone) for backbone in ("s4d_real", "s5", "s6")},
    **{
        f"s4d_real_{mixer}": dict(mixer=mixer) for mixer in ("static", "softmax_input", "linear_input_dense", "none")
    },
    "s4d_real_conv": dict(impl="conv"),
    "s5_conv": dict(backbone="s5", impl="conv"),
    "s6_band_conditioned_silu": dict(backbone="s6", s6_condition_on="band", band_activation="silu"),
    "s5_no_levels": dict(backbone="s5", num_levels=0),
    "s4d_real_kernel_4": dict(kernel_size=4),
    "no_ssm": dict(backbone="none", state_per_stream=None),
}


def _layer(**fields) -> MSSSMLayer:
  defaults = dict(num_levels=LEVELS, kernel_size=KERNEL, state_per_stream=4)
  return MSSSMLayer(WIDTH, **{**defaults, **fields})


def _inputs(dtype) -> jax.Array:
  return jnp.asarray(np.random.default_rng(0).normal(size=(BATCH, LENGTH, WIDTH)), dtype)


def _variables(layer):
  return perturbed_variables(layer, WIDTH)


# s5_no_levels and s5_linear_input (S5 streams are also in s5_conv) and s4d_real_linear_input
# (s4d_real streams in the other mixers' cases, the mixer in s6's) run with -m slow.
SLOW_CASES = ("s5_no_levels", "s5_linear_input", "s4d_real_linear_input")


@pytest.mark.parametrize("name", marked_slow(CASES, SLOW_CASES))
def test_step_equals_parallel_pass_float64(x64, name):
  layer = _layer(**CASES[name])
  variables, u = to_float64(_variables(layer)), _inputs(jnp.float64)
  stepped, prepared = stepped_outputs(layer, variables, u), prepared_outputs(layer, variables, u)
  assert stepped.shape == prepared.shape == u.shape
  assert stepped.dtype == prepared.dtype == jnp.float64
  parallel = layer.apply(variables, u)
  np.testing.assert_allclose(prepared, parallel, rtol=1e-10, atol=1e-10)
  np.testing.assert_allclose(stepped, parallel, rtol=1e-10, atol=1e-10)
  np.testing.assert_allclose(prepared, stepped, rtol=1e-12, atol=1e-12)


# With -m slow (17-47 s each): float64 above; tests/test_streaming.py streams float32 models.
@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["s4d_real", "s5", "s6"])
def test_step_equals_parallel_pass_float32(backbone):
  layer = _layer(backbone=backbone)
  variables, u = _variables(layer), _inputs(jnp.float32)
  parallel = layer.apply(variables, u)
  np.testing.assert_allclose(prepared_outputs(layer, variables, u), parallel, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(stepped_outputs(layer, variables, u), parallel, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backbone", ["s4d_real", "s5"])
def test_prepared_step_does_not_discretize(backbone):
  layer = _layer(backbone=backbone)
  variables, u_t = _variables(layer), _inputs(jnp.float32)[:, 0]
  state = layer.apply(variables, BATCH, method="init_state")
  prepared = streaming.prepare_layer(layer, variables["params"])
  layer_step = lambda v, s, u: layer.apply(v, s, u, method="step")
  assert "exp" in primitive_names(layer_step, variables, state, u_t)
  assert "exp" not in primitive_names(lambda p, s, u: p.step(s, u), prepared, state, u_t)


def test_ring_buffers_hold_the_filters_past_samples():
  layer = _layer()
  sizes = recurrent.buffer_sizes(LEVELS, KERNEL)
  assert sizes == tuple((KERNEL - 1) * 2**(s - 1) for s in (1, 2, 3)) == (2, 4, 8)
  # The newest sample a level-S filter reads is R_S - 1 steps back through the cascade.
  assert sum(sizes) + 1 == decomposition.receptive_field(LEVELS, KERNEL)
  state = layer.apply(_variables(layer), BATCH, method="init_state")
  assert [b.shape for b in state["buffers"]] == [(BATCH, size, WIDTH) for size in sizes]
  assert state["streams"].shape == (BATCH, WIDTH, layer.num_streams, 4)


def test_gradients_of_streamed_outputs_equal_the_parallel_ones(x64):
  layer = _layer(backbone="s6")
  variables, u = to_float64(_variables(layer)), _inputs(jnp.float64)
  weights = jnp.asarray(np.random.default_rng(3).normal(size=u.shape))
  stepped = jax.grad(lambda v: jnp.sum(weights * stepped_outputs(layer, v, u)))(variables)
  parallel = jax.grad(lambda v: jnp.sum(weights * layer.apply(v, u)))(variables)
  for got, want in zip(jax.tree.leaves(stepped), jax.tree.leaves(parallel)):
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


def test_bidirectional_layer_refuses_to_step():
  layer = _layer(bidirectional=True)
  variables = layer.init(jax.random.key(0), jnp.zeros((1, 1, WIDTH)))
  with pytest.raises(ValueError, match="bidirectional.*cannot stream"):
    layer.apply(variables, BATCH, method="init_state")
