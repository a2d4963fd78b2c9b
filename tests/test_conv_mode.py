"""`impl="conv"` (FFT convolution) computes the scan's outputs and gradients, with the same params.

Every time-invariant layer (S4D, S5, LRU, MS-SSM with an LTI backbone), causal and
bidirectional, on padded sequences: the parameters initialized in either mode are identical,
and the conv outputs equal the scan outputs in float64 (tight) and float32 (loose, FFT
rounding). Gradients w.r.t. the parameters match in float64; configuration errors are clear.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ms_ssm_jax import fft_conv
from ms_ssm_jax.ms_ssm import MSSSMLayer
from ms_ssm_jax.ssm.lru import LRU
from ms_ssm_jax.ssm.s4d import S4D
from ms_ssm_jax.ssm.s5 import S5

BATCH, LENGTH, WIDTH = 3, 13, 4
LENGTHS = np.array([LENGTH, 8, 2], np.int32)


def _ms_ssm(backbone: str, bidirectional: bool) -> MSSSMLayer:
  return MSSSMLayer(d_model=WIDTH, num_levels=1, state_per_stream=4, backbone=backbone,
                    bidirectional=bidirectional)


# name -> the layer with impl="scan" (the conv layer is its clone with impl="conv").
CASES: dict[str, nn.Module] = {
    "s4d_real": S4D(WIDTH, state_size=3, a_init="real"),
    "s4d_real_bidirectional": S4D(WIDTH, state_size=3, a_init="real", bidirectional=True),
    "s4d_lin": S4D(WIDTH, state_size=4, a_init="lin"),
    "s4d_lin_bidirectional": S4D(WIDTH, state_size=4, a_init="lin", bidirectional=True),
    "s5": S5(WIDTH, state_size=8, blocks=2, clip_eigs=True),
    "s5_bidirectional_concat": S5(WIDTH, state_size=4, bidirectional=True),
    "lru": LRU(WIDTH, state_size=3, r_min=0.5, r_max=0.95, max_phase=1.0),
    "lru_bidirectional": LRU(WIDTH, state_size=3, bidirectional=True),
    "ms_ssm_s4d_real": _ms_ssm("s4d_real", False),
    "ms_ssm_s4d_real_bidirectional": _ms_ssm("s4d_real", True),
    "ms_ssm_s5": _ms_ssm("s5", False),
    "ms_ssm_s5_bidirectional": _ms_ssm("s5", True),
}
# A tiny float64 gradient check per layer class and MS-SSM stream type (SISO real and complex,
# MIMO), bidirectional so that both kernels get gradients.
GRADIENT_CASES = [
    "s4d_lin_bidirectional", "s5_bidirectional_concat", "lru_bidirectional",
    "ms_ssm_s4d_real_bidirectional", "ms_ssm_s5_bidirectional"
]

# Parameter values (not only names and shapes) compared between the modes' inits: one case per
# class with every parameter (compiling an init costs more than the forward passes).
INIT_VALUE_CASES = [
    "s4d_lin_bidirectional", "s5_bidirectional_concat", "lru_bidirectional",
    "ms_ssm_s5_bidirectional"
]


def _inputs(dtype) -> jax.Array:
  return jnp.asarray(np.random.default_rng(0).normal(size=(BATCH, LENGTH, WIDTH)), dtype)


@functools.lru_cache(maxsize=None)
def _init(name: str, mode: str = "scan"):
  """float32 params at init (as numpy, so they outlive an x64 context)."""
  layer = CASES[name].clone(impl=mode)
  params = jax.jit(layer.init)(jax.random.key(1), _inputs(jnp.float32), jnp.asarray(LENGTHS))
  return jax.tree.map(np.asarray, params["params"])


def _params(name: str, dtype):
  return jax.tree.map(lambda p: jnp.asarray(p, dtype), _init(name))


def _scan_and_conv(name: str, params, u: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The layer's outputs in both modes with the same params (one compilation)."""
  scan_layer, conv_layer = CASES[name], CASES[name].clone(impl="conv")

  @jax.jit
  def apply_both(params, u, lengths):
    return (scan_layer.apply({"params": params}, u,
                             lengths), conv_layer.apply({"params": params}, u, lengths))

  outputs = apply_both(params, u, jnp.asarray(LENGTHS))
  return tuple(jnp.where(_compared(name), y, 0) for y in outputs)


def _compared(name: str) -> np.ndarray:
  """`(B, L, 1)`: the steps compared. Bidirectional layers: the valid ones (the MS-SSM folded
  convolution differs at padded steps, which no block reads; tests/ms_ssm/test_folded_conv.py)."""
  if "bidirectional" not in name:
    return np.ones((BATCH, LENGTH, 1), bool)
  return (np.arange(LENGTH)[None, :] < LENGTHS[:, None])[..., None]


def _assert_close(got: jax.Array, want: jax.Array, rtol: float) -> None:
  """Close relative to the array's scale (FFT rounding is relative to the largest value)."""
  want = np.asarray(want)
  np.testing.assert_allclose(np.asarray(got), want, rtol=rtol, atol=rtol * np.abs(want).max())


@pytest.mark.parametrize("name", CASES)
def test_param_names_and_shapes_identical_in_both_modes(name):
  shapes = {
      mode:
          jax.eval_shape(CASES[name].clone(impl=mode).init, jax.random.key(1), _inputs(jnp.float32),
                         jnp.asarray(LENGTHS)) for mode in ("scan", "conv")
  }
  assert shapes["scan"] == shapes["conv"]


@pytest.mark.parametrize("name", INIT_VALUE_CASES)
def test_init_identical_in_both_modes(name):
  scan_params, conv_params = _init(name), _init(name, "conv")
  assert jax.tree.structure(scan_params) == jax.tree.structure(conv_params)
  jax.tree.map(np.testing.assert_array_equal, scan_params, conv_params)


@pytest.mark.parametrize("name", CASES)
def test_conv_equals_scan_float64(x64, name):
  scan_y, conv_y = _scan_and_conv(name, _params(name, jnp.float64), _inputs(jnp.float64))
  assert conv_y.dtype == scan_y.dtype == jnp.float64
  _assert_close(conv_y, scan_y, rtol=1e-8)


@pytest.mark.parametrize("name", CASES)
def test_conv_equals_scan_float32(name):
  scan_y, conv_y = _scan_and_conv(name, _params(name, jnp.float32), _inputs(jnp.float32))
  assert conv_y.dtype == jnp.float32
  _assert_close(conv_y, scan_y, rtol=1e-4)


@pytest.mark.parametrize("name", ["s4d_lin_bidirectional", "ms_ssm_s5_bidirectional"])
def test_conv_bfloat16_inputs(name):
  scan_y, conv_y = _scan_and_conv(name, _params(name, jnp.float32), _inputs(jnp.bfloat16))
  assert conv_y.dtype == jnp.bfloat16
  _assert_close(conv_y.astype(jnp.float32), scan_y.astype(jnp.float32), rtol=2e-2)


@pytest.mark.parametrize("name", GRADIENT_CASES)
def test_gradients_match_float64(x64, name):
  params, u = _params(name, jnp.float64), _inputs(jnp.float64)
  weights = jnp.asarray(np.random.default_rng(1).normal(size=u.shape) * _compared(name))

  def grads(mode: str):
    layer = CASES[name].clone(impl=mode)

    def loss(p) -> jax.Array:
      return jnp.sum(weights * layer.apply({"params": p}, u, jnp.asarray(LENGTHS)))

    return jax.jit(jax.grad(loss))(params)

  jax.tree.map(functools.partial(_assert_close, rtol=1e-8), grads("conv"), grads("scan"))


def test_kernel_of_an_underflowed_eigenvalue():
  """A very fast mode whose lam_bar underflowed to 0 still passes `c b_bar u_t` (0^0 = 1, as in
  the scan), and the kernel's gradients stay finite."""
  lam_bar = jnp.array([0.0, 0.5], jnp.float32)
  b_bar, c = jnp.array([2.0, 1.0]), jnp.array([3.0, 1.0])
  kernel = fft_conv.siso_kernel(lam_bar, b_bar, c, 4)
  np.testing.assert_allclose(kernel, [7.0, 0.5, 0.25, 0.125], rtol=1e-6)
  grads = jax.grad(lambda lam, b: fft_conv.siso_kernel(lam, b, c, 4).sum(), (0, 1))(lam_bar, b_bar)
  assert all(np.isfinite(g).all() for g in grads)


def test_conv_with_s6_backbone_is_a_config_error():
  with pytest.raises(
      ValueError, match=r"impl='conv' is not supported by MSSSMLayer\(backbone="
      r"'s6'\) \(a selective system has no convolution form\); choose one of "
      "auto, scan, chunked, pallas$"):
    MSSSMLayer(d_model=WIDTH, state_per_stream=4, backbone="s6", impl="conv")


@pytest.mark.parametrize("layer, message", [
    (S4D(WIDTH, impl="fft"), "impl='fft' is not supported by S4D.*auto, scan, chunked, conv($|\n)"),
    (S4D(WIDTH, a_init="real", impl="fft"),
     "impl='fft' is not supported by S4D.*auto, scan, chunked, pallas, conv($|\n)"),
    (S4D(WIDTH, impl="pallas"), "impl='pallas' is not supported by S4D.*MIMO complex ones only"),
    (LRU(WIDTH, impl="fft"), "impl='fft' is not supported by LRU"),
    (S4D(WIDTH, impl="chunked", chunk_size=0), "chunk_size must be >= 1"),
], ids=["s4d", "s4d_real", "s4d_pallas", "lru", "s4d_chunk_size"])
def test_baseline_impl_errors(layer, message):
  with pytest.raises(ValueError, match=message):
    layer.init(jax.random.key(0), jnp.zeros((1, 2, WIDTH)))


@pytest.mark.parametrize("fields, message", [
    (dict(impl="fft"), "impl='fft' is not supported"),
    (dict(impl="chunked", chunk_size=-8), "chunk_size must be >= 1"),
])
def test_ms_ssm_impl_errors(fields, message):
  with pytest.raises(ValueError, match=message):
    MSSSMLayer(d_model=WIDTH, state_per_stream=4, **fields)
