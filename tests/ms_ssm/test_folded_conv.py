"""The folded convolution (`impl="conv"`, SISO streams) against the scan and the band-wise path.

The band-wise reference is the layer's old conv path, kept here only: the bands of the
decomposition, each convolved with its stream kernel (`StreamSSMs` in conv mode), then the
mixer and D. Every mixer, causal and bidirectional, padded sequences (equal at valid steps),
float64 tight, float32 loose, gradients, the mixer's sown ratio, and the config errors.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ms_ssm_jax import fft_conv
from ms_ssm_jax.ms_ssm import MSSSMLayer
from ms_ssm_jax.ms_ssm import decomposition
from ms_ssm_jax.ms_ssm import folded_conv
from ms_ssm_jax.ms_ssm import mixer as mixer_lib
from ms_ssm_jax.ms_ssm import streams as streams_lib
from ms_ssm_jax.ms_ssm.layer import STREAM_LAYOUT
from ms_ssm_jax.ssm import common
from ms_ssm_jax.ssm import diagonal

B, L, H = 3, 19, 3
LENGTHS = np.array([19, 11, 2], np.int32)


def _layer(mixer: str, bidirectional: bool, backbone: str = "s4d_real", num_levels: int = 2,
           impl: str = "scan") -> MSSSMLayer:
  return MSSSMLayer(d_model=H, num_levels=num_levels, state_per_stream=4, backbone=backbone,
                    mixer=mixer, bidirectional=bidirectional, impl=impl)


def _inputs(dtype=jnp.float64) -> jax.Array:
  return jnp.asarray(np.random.default_rng(0).normal(size=(B, L, H)), dtype)


@functools.lru_cache(maxsize=None)
def _random_params(mixer: str, bidirectional: bool, backbone: str, num_levels: int):
  """Init params moved off their init values (so that every weight matters), as numpy."""
  layer = _layer(mixer, bidirectional, backbone, num_levels)
  params = jax.jit(layer.init)(jax.random.key(0), _inputs(jnp.float32), jnp.asarray(LENGTHS))
  leaves, tree = jax.tree.flatten(params["params"])
  rng = np.random.default_rng(1)
  return jax.tree.unflatten(tree, [np.asarray(p) + 0.1 * rng.normal(size=p.shape) for p in leaves])


def _params(mixer, bidirectional, backbone="s4d_real", num_levels=2, dtype=jnp.float64):
  return jax.tree.map(lambda p: jnp.asarray(p, dtype),
                      _random_params(mixer, bidirectional, backbone, num_levels))


def bandwise_conv(layer: MSSSMLayer, params, u, lengths):
  """The old `impl="conv"` layer: bands, one FFT convolution per band, mixer, D."""
  if layer.bidirectional:
    u = common.zero_beyond_lengths(u, lengths)
  decomp = decomposition.WaveletDecomposition(num_levels=layer.num_levels,
                                              kernel_size=layer.kernel_size, streams=STREAM_LAYOUT,
                                              centered=layer.bidirectional)
  bands = decomp.apply({"params": params["decomposition"]}, u)
  if layer.bidirectional:
    bands = common.zero_beyond_lengths(bands, lengths)
  stream_ssms = streams_lib.StreamSSMs(backbone=layer.backbone,
                                       state_per_stream=layer.stream_state_size,
                                       bidirectional=layer.bidirectional, impl="conv")
  y = stream_ssms.apply({"params": params["streams"]}, bands, u, lengths)
  mixer = mixer_lib.ScaleMixer(mixer=layer.mixer)
  return mixer.apply({"params": params.get("mixer", {})}, y, u) + params["D"] * u


def _valid(bidirectional: bool) -> np.ndarray:
  if not bidirectional:
    return np.ones((B, L), bool)
  return np.arange(L)[None, :] < LENGTHS[:, None]


def _assert_close_at(valid, got, want, rtol):
  got, want = np.asarray(got)[valid], np.asarray(want)[valid]
  np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


CASES = [(mixer, bidirectional, backbone)
         for mixer in mixer_lib.MIXERS
         for bidirectional in (False, True)
         for backbone in ("s4d_real",)]


@pytest.mark.parametrize("mixer,bidirectional,backbone", CASES)
def test_folded_equals_scan_and_bandwise_float64(x64, mixer, bidirectional, backbone):
  layer = _layer(mixer, bidirectional, backbone)
  params, u, lengths = _params(mixer, bidirectional, backbone), _inputs(), jnp.asarray(LENGTHS)

  @jax.jit
  def all_three(params, u, lengths):
    return (layer.apply({"params": params}, u,
                        lengths), layer.clone(impl="conv").apply({"params": params}, u, lengths),
            bandwise_conv(layer, params, u, lengths))

  scan_y, folded_y, bandwise_y = all_three(params, u, lengths)
  assert folded_y.shape == (B, L, H) and folded_y.dtype == jnp.float64
  valid = _valid(bidirectional)
  _assert_close_at(valid, folded_y, scan_y, 1e-12)
  _assert_close_at(valid, folded_y, bandwise_y, 1e-12)


@pytest.mark.parametrize("num_levels",
                         [pytest.param(s, marks=pytest.mark.slow) for s in (0, 1)] + [4])
def test_folded_equals_scan_other_depths_float64(x64, num_levels):
  """S=0 (no bands), and S=4 whose centered filters (46 taps) outreach the 19 steps."""
  layer = _layer("static", True, num_levels=num_levels)
  params = _params("static", True, num_levels=num_levels)
  u, lengths = _inputs(), jnp.asarray(LENGTHS)
  scan_y = layer.apply({"params": params}, u, lengths)
  folded_y = layer.clone(impl="conv").apply({"params": params}, u, lengths)
  _assert_close_at(_valid(True), folded_y, scan_y, 1e-12)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_folded_equals_scan_float32(bidirectional):
  layer = _layer("linear_input", bidirectional)
  params = _params("linear_input", bidirectional, dtype=jnp.float32)
  u, lengths = _inputs(jnp.float32), jnp.asarray(LENGTHS)
  scan_y = layer.apply({"params": params}, u, lengths)
  folded_y = layer.clone(impl="conv").apply({"params": params}, u, lengths)
  assert folded_y.dtype == jnp.float32
  _assert_close_at(_valid(bidirectional), folded_y, scan_y, 2e-5)


def test_folded_is_causal_and_ignores_padding(x64):
  layer = _layer("linear_input", False, impl="conv")
  params, u = _params("linear_input", False), _inputs()
  y = layer.apply({"params": params}, u)
  changed = layer.apply({"params": params}, u.at[:, 9:].set(5.0))
  # FFT rounding spreads over all steps: equal up to it before step 9, different after.
  _assert_close_at(np.broadcast_to(np.arange(L) < 9, (B, L)), changed, y, 1e-13)
  assert not np.allclose(changed[:, 9:], y[:, 9:])
  # Bidirectional: what lies beyond a sequence's length never reaches its valid outputs.
  bi = _layer("linear_input", True, impl="conv")
  params, lengths = _params("linear_input", True), jnp.asarray(LENGTHS)
  y = bi.apply({"params": params}, u, lengths)
  noisy = jnp.where(_valid(True)[..., None], u, 7.0)
  _assert_close_at(_valid(True), bi.apply({"params": params}, noisy, lengths), y, 1e-13)


@pytest.mark.slow  # about 2 minutes on 2 cores
def test_folded_gradients_equal_scan_float64(x64):
  layer = _layer("linear_input", True)
  params, u, lengths = _params("linear_input", True), _inputs(), jnp.asarray(LENGTHS)
  valid = jnp.asarray(_valid(True))[..., None]

  def loss(layer):
    return lambda p, u: jnp.sum(jnp.where(valid, layer.apply({"params": p}, u, lengths), 0)**2)

  want = jax.grad(loss(layer), argnums=(0, 1))(params, u)
  got = jax.grad(loss(layer.clone(impl="conv")), argnums=(0, 1))(params, u)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-9,
                               atol=1e-9 * np.abs(np.asarray(w)).max())


def test_folded_sows_the_same_mixer_ratio(x64):
  layer = _layer("linear_input", True)
  params, u, lengths = _params("linear_input", True), _inputs(), jnp.asarray(LENGTHS)
  ratios = []
  for mode in ("scan", "conv"):
    _, state = layer.clone(impl=mode).apply({"params": params}, u, lengths,
                                            mutable=["intermediates"])
    ratios.append(float(state["intermediates"]["mixer_input_ratio"][0]))
  np.testing.assert_allclose(ratios[1], ratios[0], rtol=1e-12)


def test_folded_convolution_one_kernel_reproduces_band_convolutions(x64):
  """The bare function: mixtures of the causal band-wise convolutions of SISO kernels."""
  rng = np.random.default_rng(2)
  phi, psi = (jnp.asarray(rng.normal(size=(3, 2, H))) for _ in range(2))
  filters, lookaheads = decomposition.stream_filters(phi, psi, streams="details+approx",
                                                     centered=False)
  lam = jnp.asarray(rng.uniform(0.3, 0.99, (H, len(filters), 2)))
  c = jnp.asarray(rng.normal(size=lam.shape))
  system = diagonal.Siso(a_bar=lam, b_bar=jnp.ones_like(lam), c=c)
  mix = jnp.asarray(rng.normal(size=(H, len(filters), 1)))
  u = _inputs()
  bands = decomposition.wavelet_bands(u, phi, psi, streams="details+approx", centered=False)
  want = jnp.einsum("blhj,hjq->blhq", fft_conv.causal_conv(bands, system.kernel(L, reverse=False)),
                    mix)
  got = folded_conv.folded_convolution(u, system, filters, lookaheads, mix, bidirectional=False)
  _assert_close_at(np.ones((B, L), bool), got, want, 1e-12)


def test_band_activation_with_conv_is_an_error():
  with pytest.raises(ValueError, match="band_activation='silu'.*impl='conv'"):
    MSSSMLayer(d_model=H, state_per_stream=4, band_activation="silu", impl="conv")


@pytest.mark.parametrize("bidirectional", [False, True])
def test_conv1d_decomposition_scan_equals_folded_float64(x64, bidirectional):
  """The "plain Conv1D" ablation's bands fold into the kernels like the wavelet's; its params
  are `decomposition/taps` instead of `phi`, `psi`."""
  layer = _layer("linear_input", bidirectional).clone(decomposition="conv1d")
  u, lengths = _inputs(), jnp.asarray(LENGTHS)
  params = layer.init(jax.random.key(0), u, lengths)["params"]
  assert set(params["decomposition"]) == {"taps"}
  rng = np.random.default_rng(1)
  params = jax.tree.map(lambda p: p + 0.1 * rng.normal(size=p.shape), params)
  scan_y = layer.apply({"params": params}, u, lengths)
  folded_y = layer.clone(impl="conv").apply({"params": params}, u, lengths)
  _assert_close_at(_valid(bidirectional), folded_y, scan_y, 1e-12)


def test_conv1d_decomposition_errors():
  with pytest.raises(ValueError, match="decomposition='haar' is not supported"):
    MSSSMLayer(d_model=H, state_per_stream=4, decomposition="haar")
  with pytest.raises(ValueError, match="conv1d.*num_levels >= 1"):
    MSSSMLayer(d_model=H, num_levels=0, state_per_stream=4, decomposition="conv1d")
  layer = MSSSMLayer(d_model=H, state_per_stream=4, decomposition="conv1d")
  with pytest.raises(ValueError, match="no step"):
    layer.init_state(2)


def test_reverse_valid_and_its_gradient(x64):
  """Time reversed within each length (zeros elsewhere), both ways of the size change; its
  custom gradient equals autodiff's of a plain gather (a scatter)."""
  x, lengths = _inputs(), jnp.asarray(LENGTHS)
  rng = np.random.default_rng(3)
  for size in (5, L + 4):
    index = LENGTHS[:, None] - 1 - np.arange(size)[None, :]
    inside = (index >= 0) & (index < L)

    def plain(x, index=index, inside=inside):
      picked = x[np.arange(B)[:, None], np.clip(index, 0, L - 1)]
      return jnp.where(inside[..., None], picked, 0.0)

    y = folded_conv.reverse_valid(x, lengths, size)
    assert y.shape == (B, size, H)
    np.testing.assert_array_equal(y, plain(x))
    np.testing.assert_array_equal(y[1, :11], x[1, 10::-1][:size])  # length 11
    assert not np.any(np.asarray(y[1, 11:]))
    cotangent = jnp.asarray(rng.normal(size=y.shape))
    got = jax.vjp(lambda x: folded_conv.reverse_valid(x, lengths, size), x)[1](cotangent)[0]
    np.testing.assert_array_equal(got, jax.vjp(plain, x)[1](cotangent)[0])
