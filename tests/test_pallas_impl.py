"""`impl="pallas"`: layers give the associative scan's outputs and gradients, same params.

MS-SSM with s4d_real and s6 streams (causal layers whole in `pallas_ms_ssm`'s kernel, with
each per-channel mixer; bidirectional, band-conditioned and dense-mixer layers with their
streams in `pallas_scan`'s; padded sequences), MS-SSM with s5 streams, the S6, S4D-real, S5
and LRU layers (`pallas_recurrence` for the complex ones), in float32 (the kernels' precision);
the kernels run in the Pallas interpreter here.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest

from ms_ssm_jax import pallas_ms_ssm
from ms_ssm_jax import target
from ms_ssm_jax.ms_ssm import MSSSMLayer
from ms_ssm_jax.ssm import diagonal
from ms_ssm_jax.ssm.lru import LRU
from ms_ssm_jax.ssm.s4d import S4D
from ms_ssm_jax.ssm.s5 import S5
from ms_ssm_jax.ssm.s6 import S6
from tests.marks import marked_slow

BATCH, LENGTH, WIDTH = 2, 11, 4
LENGTHS = np.array([LENGTH, 6], np.int32)
fused_layer = pallas_ms_ssm.fused_layer

CASES: dict[str, nn.Module] = {
    "ms_ssm_s4d_real":
        MSSSMLayer(d_model=WIDTH, num_levels=1, state_per_stream=3),
    "ms_ssm_s4d_real_static":
        MSSSMLayer(d_model=WIDTH, num_levels=2, state_per_stream=3, mixer="static"),
    "ms_ssm_s4d_real_none":
        MSSSMLayer(d_model=WIDTH, num_levels=1, state_per_stream=2, mixer="none"),
    "ms_ssm_s4d_real_dense_mixer":
        MSSSMLayer(d_model=WIDTH, num_levels=1, state_per_stream=3, mixer="linear_input_dense"),
    "ms_ssm_s4d_real_bidirectional":
        MSSSMLayer(d_model=WIDTH, num_levels=1, state_per_stream=3, bidirectional=True),
    "ms_ssm_s6":
        MSSSMLayer(d_model=WIDTH, num_levels=2, state_per_stream=4, backbone="s6"),
    "ms_ssm_s6_silu":
        MSSSMLayer(d_model=WIDTH, num_levels=1, state_per_stream=4, backbone="s6",
                   band_activation="silu"),
    "ms_ssm_s6_band_conditioned":
        MSSSMLayer(d_model=WIDTH, num_levels=1, state_per_stream=4, backbone="s6",
                   s6_condition_on="band"),
    "ms_ssm_s6_bidirectional":
        MSSSMLayer(d_model=WIDTH, num_levels=1, state_per_stream=4, backbone="s6",
                   bidirectional=True),
    "s6":
        S6(WIDTH, state_size=5),
    "s4d_real_bidirectional":
        S4D(WIDTH, state_size=3, a_init="real", bidirectional=True),
    "s5_bidirectional":
        S5(WIDTH, state_size=4, blocks=2, bidirectional=True),
    "lru":
        LRU(WIDTH, state_size=3, r_min=0.5, r_max=0.95, max_phase=1.0),
    "ms_ssm_s5_bidirectional":
        MSSSMLayer(d_model=WIDTH, num_levels=1, state_per_stream=4, backbone="s5",
                   bidirectional=True),
}

# The S6 streams' cases run with -m slow (10-22 s each): the fused layer's wiring is checked by
# the s4d_real cases, the S6 kernel by test_pallas_ms_ssm (float64), and the S6 streams in
# pallas_scan by the bidirectional case. So do ms_ssm_s4d_real (its mixer and streams are in
# the other s4d_real cases) and lru (the complex kernel is in the s5 cases).
SLOW_CASES = ("ms_ssm_s6", "ms_ssm_s6_silu", "ms_ssm_s6_band_conditioned", "ms_ssm_s4d_real", "lru")


@pytest.mark.parametrize("name", marked_slow(sorted(CASES), SLOW_CASES))
def test_pallas_matches_associative(name):
  layer = CASES[name]
  fused = layer.clone(impl="pallas")
  u = jax.random.normal(jax.random.PRNGKey(0), (BATCH, LENGTH, WIDTH))
  params = jax.jit(layer.init)(jax.random.PRNGKey(1), u, LENGTHS)
  assert jax.tree.structure(params) == jax.tree.structure(
      jax.eval_shape(fused.init, jax.random.PRNGKey(1), u, LENGTHS))

  def loss(module, p):
    y = module.apply(p, u, LENGTHS)
    return (y * np.cos(np.arange(y.size)).reshape(y.shape)).sum(), y

  gradients = lambda module: jax.jit(jax.value_and_grad(lambda p: loss(module, p), has_aux=True))
  (_, y_ref), g_ref = gradients(layer)(params)
  (_, y), g = gradients(fused)(params)
  np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4 * np.abs(y_ref).max())
  for (path, leaf), ref_leaf in zip(jax.tree_util.tree_leaves_with_path(g), jax.tree.leaves(g_ref)):
    scale = np.abs(ref_leaf).max() + 1e-12
    assert np.abs(leaf - ref_leaf).max() / scale < 1e-3, jax.tree_util.keystr(path)


# The layers that run whole in the fused MS-SSM kernel; the other MS-SSM cases run pallas_scan.
FUSED_LAYERS = ("ms_ssm_s4d_real", "ms_ssm_s4d_real_static", "ms_ssm_s4d_real_none", "ms_ssm_s6",
                "ms_ssm_s6_silu")


@pytest.mark.parametrize("name", sorted(n for n in CASES if n.startswith("ms_ssm")))
def test_causal_per_channel_layers_run_the_fused_layer_kernel(name, monkeypatch):
  calls = []
  monkeypatch.setattr(pallas_ms_ssm, "fused_layer",
                      lambda *args, **kwargs: calls.append(1) or fused_layer(*args, **kwargs))
  layer = CASES[name].clone(impl="pallas")
  u = jax.random.normal(jax.random.PRNGKey(0), (BATCH, LENGTH, WIDTH))
  jax.eval_shape(layer.init, jax.random.PRNGKey(1), u, LENGTHS)  # traces, runs nothing
  assert bool(calls) == (name in FUSED_LAYERS)


def test_tpu_layers_run_the_streams_kernel_not_the_fused_one(monkeypatch):
  """The fused kernel's backward adds with Triton's atomics: on a TPU the layer runs its streams
  through `pallas_scan` instead."""
  calls = []
  monkeypatch.setattr(pallas_ms_ssm, "fused_layer", lambda *args, **kwargs: calls.append(1))
  u = jax.random.normal(jax.random.PRNGKey(0), (BATCH, LENGTH, WIDTH))
  with target.compiling_for("tpu"):
    jax.eval_shape(CASES["ms_ssm_s6"].clone(impl="pallas").init, jax.random.PRNGKey(1), u, LENGTHS)
  assert not calls


def test_auto_picks_pallas_on_gpu_and_tpu_only():
  on_accelerator = jax.default_backend() in ("gpu", "tpu")
  assert diagonal.resolve_impl("auto", fusable=True,
                               layer="test") == ("pallas" if on_accelerator else "chunked")
  assert diagonal.resolve_impl("auto", fusable=False, layer="test") == "chunked"
  assert diagonal.resolve_impl("pallas", fusable=True, layer="test") == "pallas"


@pytest.mark.parametrize("layer,message", [
    (lambda: jax.eval_shape(
        S4D(WIDTH, state_size=4, a_init="lin", impl="pallas").init, jax.random.PRNGKey(0),
        np.zeros((1, 2, WIDTH), np.float32)),
     r"MIMO complex ones only\); choose one of auto, scan, chunked, conv"),
    (lambda: MSSSMLayer(d_model=WIDTH, state_per_stream=4, impl="triton"),
     "impl='triton' is not supported.*auto, scan, chunked, pallas, conv$"),
])
def test_bad_impl_raises_clear_errors(layer, message):
  with pytest.raises(ValueError, match=message):
    layer()


def test_s6_bad_impl():
  u = np.zeros((1, 3, WIDTH), np.float32)
  with pytest.raises(ValueError, match="impl='fast' is not supported by S6"):
    S6(WIDTH, impl="fast").init(jax.random.PRNGKey(0), u)
