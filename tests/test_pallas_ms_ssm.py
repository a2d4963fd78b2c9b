"""The fused MS-SSM layer kernel against a float64 reference: bands by a loop over the filter
taps, the streams by `lax.scan`, then the per-channel mixer and the skip.

On the CPU the kernels run in the Pallas interpreter; on a GPU the same tests run the compiled
Triton kernels (`JAX_PLATFORMS=cuda pytest tests/test_pallas_ms_ssm.py`).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ms_ssm_jax import pallas_ms_ssm
from ms_ssm_jax.ms_ssm import MSSSMLayer
from ms_ssm_jax.ms_ssm import decomposition
from tests import reference

ARG_NAMES = ("u", "filters", "a", "mix_bias", "skip", "dt_low", "dt_proj", "dt_bias", "b", "c",
             "b_channel", "c_channel", "mix_weight")


def random_inputs(seed, batch=2, length=13, channels=3, states=3, levels=2, kernel_size=2, rank=3,
                  *, selective=True, input_weight=True):
  """Float64 inputs of G = levels + 2 streams with the wavelet filters of random (phi, psi);
  selective steps in about [e^-3, 1]."""
  rng = np.random.default_rng(seed)
  shape = (levels, kernel_size, channels)
  filters, _ = decomposition.stream_filters(jnp.asarray(rng.normal(size=shape)),
                                            jnp.asarray(rng.normal(size=shape)),
                                            streams="details+approx+raw", centered=False)
  groups = len(filters)
  proj = (batch, length, groups, states)
  chan = (groups, channels, states)
  steps = np.exp(rng.uniform(-3, 0, size=(channels, groups)))
  return {
      "u":
          rng.normal(size=(batch, length, channels)),
      "filters": [np.asarray(f) for f in filters],
      "a":
          -np.exp(rng.uniform(-1, 1, size=chan))
          if selective else -np.exp(rng.uniform(-3, -1, size=chan)),
      "mix_bias":
          rng.normal(size=(channels, groups)),
      "skip":
          rng.normal(size=(channels,)),
      "dt_low":
          0.3 * rng.normal(size=(batch, length, groups, rank)) if selective else None,
      "dt_proj":
          rng.normal(size=(groups, rank, channels)) if selective else None,
      "dt_bias":
          steps + np.log(-np.expm1(-steps)) if selective else None,  # softplus^-1
      "b":
          rng.normal(size=proj) if selective else None,
      "c":
          rng.normal(size=proj) if selective else None,
      "b_channel":
          rng.normal(size=chan),
      "c_channel":
          rng.normal(size=chan),
      "mix_weight":
          rng.normal(size=(channels, groups)) if input_weight else None,
  }


def reference_layer(u, filters, a, mix_bias, skip, dt_low=None, dt_proj=None, dt_bias=None, b=None,
                    c=None, b_channel=None, c_channel=None, mix_weight=None,
                    band_activation="none"):
  """`z_t = sum_j (w_j u_t + b_j) y^j_t + D u_t` with `y^j = SSM^j(act(f_j * u))`, all in
  loops."""
  length = u.shape[1]
  bands = []
  for f in filters:
    band = jnp.zeros_like(u)
    for m in range(f.shape[0]):
      band = band.at[:, m:].add(f[m] * u[:, :length - m])
    bands.append(band)
  bands = jnp.stack(bands, axis=2)  # (B, L, G, H)
  if band_activation == "silu":
    bands = jax.nn.silu(bands)
  if dt_low is None:
    steps = jnp.ones_like(bands)
  else:
    steps = jax.nn.softplus(jnp.einsum("blgr,grh->blgh", dt_low, dt_proj) + dt_bias.T)
  y = reference.sequential_selective_scan(bands, steps, a, b, c, b_channel, c_channel)
  weight = mix_bias.T if mix_weight is None else mix_bias.T + mix_weight.T * u[:, :, None]
  return jnp.sum(weight * y, axis=2) + skip * u


def fused(inputs, **options):
  return jax.jit(functools.partial(pallas_ms_ssm.fused_layer,
                                   **options))(inputs["u"], inputs["filters"], inputs["a"],
                                               **{name: inputs[name] for name in ARG_NAMES[3:]})


def relative_error(x, reference_value):
  return float(np.max(np.abs(np.asarray(x) - reference_value)) / np.max(np.abs(reference_value)))


CASES = [  # (shape kwargs, kernel options): halo longer and shorter than a chunk, padding
    (dict(), dict(chunk=4, block_channels=2)),
    (dict(length=16, channels=4, states=4, levels=1, kernel_size=3), dict(chunk=8)),
    (dict(length=11, channels=2, states=2, levels=3, kernel_size=2), dict(chunk=2)),
    (dict(length=9, levels=0), dict(chunk=4)),  # no decomposition: one raw stream, no halo
    (dict(length=17), dict(chunk=2, checkpoint_every=3)),  # segments of 3 chunks, L padded
    (dict(length=16, states=5), dict(chunk=4)),  # default E = ceil(8 / 8) = 1 ...
    (dict(length=16, states=9), dict(chunk=4)),  # ... and ceil(16 / 8) = 2
]

# The default suite keeps the halo, no-decomposition and segment cases of the forward and
# gradient tests; the rest run with -m slow.
SUITE_CASES = [
    pytest.param(*case, marks=pytest.mark.slow) if index in (1, 2, 5, 6) else case
    for index, case in enumerate(CASES)
]


@pytest.mark.parametrize("shape,options", SUITE_CASES)
@pytest.mark.parametrize("selective,input_weight", [(True, True), (False, False)])
def test_forward_matches_float64_reference(x64, shape, options, selective, input_weight):
  inputs = random_inputs(0, **shape, selective=selective, input_weight=input_weight)
  z = fused(inputs, **options)
  expected = reference_layer(**inputs)
  assert z.shape == inputs["u"].shape and z.dtype == jnp.float32
  assert relative_error(z, expected) < 1e-5


@pytest.mark.parametrize("shape,options", SUITE_CASES)
@pytest.mark.parametrize("selective,input_weight", [(True, True), (False, False)])
def test_gradients_match_float64_reference(x64, shape, options, selective, input_weight):
  inputs = random_inputs(1, **shape, selective=selective, input_weight=input_weight)
  weights = np.random.default_rng(2).normal(size=inputs["u"].shape)
  names = [name for name in ARG_NAMES if inputs[name] is not None]

  def loss(layer_fn, *args):
    return jnp.sum(weights * layer_fn(dict(zip(names, args))))

  args = [inputs[name] for name in names]
  argnums = tuple(range(len(names)))
  grads = jax.jit(
      jax.grad(lambda *x: loss(lambda i: fused(dict(inputs, **i), **options), *x),
               argnums=argnums))(*args)
  expected = jax.jit(
      jax.grad(lambda *x: loss(lambda i: reference_layer(**dict(inputs, **i)), *x),
               argnums=argnums))(*args)
  for name, grad, want in zip(names, grads, expected):
    for g, w in zip(jax.tree.leaves(grad), jax.tree.leaves(want)):
      assert g.shape == w.shape, name
      assert relative_error(g, w) < 1e-4, name


def test_band_silu_matches_float64_reference(x64):
  """SiLU on the bands (the S6 variant's `band_activation`): outputs and every gradient."""
  inputs = random_inputs(5, length=11)
  options = dict(chunk=4, block_channels=2, band_activation="silu")
  names = [name for name in ARG_NAMES if inputs[name] is not None]
  weights = np.random.default_rng(6).normal(size=inputs["u"].shape)

  def loss(layer_fn, *args):
    return jnp.sum(weights * layer_fn(dict(inputs, **dict(zip(names, args)))))

  args = [inputs[name] for name in names]
  reference = lambda i: reference_layer(**i, band_activation="silu")
  assert relative_error(fused(inputs, **options), reference(inputs)) < 1e-5
  grads = jax.jit(
      jax.grad(lambda *x: loss(lambda i: fused(i, **options), *x),
               argnums=tuple(range(len(names)))))(*args)
  expected = jax.jit(jax.grad(lambda *x: loss(reference, *x),
                              argnums=tuple(range(len(names)))))(*args)
  for name, grad, want in zip(names, grads, expected):
    for g, w in zip(jax.tree.leaves(grad), jax.tree.leaves(want)):
      assert relative_error(g, w) < 1e-4, name


def test_causal(x64):
  inputs = random_inputs(4, length=12)
  z = fused(inputs, chunk=4)
  changed = dict(inputs, u=inputs["u"].copy())
  changed["u"][:, 7:] += 1.0
  z_changed = fused(changed, chunk=4)
  np.testing.assert_array_equal(z[:, :7], z_changed[:, :7])
  assert np.all(np.abs(np.asarray(z_changed[:, 7:] - z[:, 7:])) > 0)


@pytest.mark.parametrize("checkpoint_every", [1, 2])
def test_saved_states_one_per_segment_and_no_bands(checkpoint_every):
  """The forward's residuals: the inputs and one state per segment of E chunks and stream
  `(B, L / (T E), G, H, N)`; nothing of shape `(B, L, G, H)` (bands, stream outputs)."""
  inputs = random_inputs(5, length=32, selective=False)
  _, vjp_fn = jax.vjp(
      lambda u: fused(dict(inputs, u=u), chunk=8, checkpoint_every=checkpoint_every), inputs["u"])
  leaves = [x for x in jax.tree.leaves(vjp_fn) if hasattr(x, "shape")]
  [entries] = [x for x in leaves if x.ndim == 5]
  assert entries.shape == (2, 4 // checkpoint_every, 4, 4, 4)  # N, H = 3 padded to 4
  assert not [x for x in leaves if x.ndim == 4 and x.shape[1] >= 16]


@pytest.mark.parametrize("bad,message", [
    (dict(a=np.zeros((4, 3, 3), np.complex64)), "real states only"),
    (dict(dt_low=np.ones((2, 13, 4, 2)), dt_proj=np.ones((4, 3, 3))), "dt_proj must have shape"),
    (dict(dt_bias=None), "give all of dt_low, dt_proj and dt_bias"),
    (dict(filters=[np.ones((2, 2))] * 4), "filters must be"),
    (dict(mix_bias=np.ones((4, 3))), "mix_bias must have shape"),
])
def test_bad_shapes_name_the_fix(bad, message):
  inputs = dict(random_inputs(6), **bad)
  with pytest.raises(ValueError, match=message):
    fused(inputs)


@pytest.mark.parametrize("selective,input_weight,checkpoint_every,band_activation",
                         [(True, True, 1, "silu"), (False, False, 4, "none")])
def test_kernels_lower_to_triton(monkeypatch, selective, input_weight, checkpoint_every,
                                 band_activation):
  """Both kernels pass the Pallas-to-Triton lowering (what a GPU compiles) on any machine, at
  the paper's S = 3, K = 4 (halo 21) with 32 channels and 16 states per stream; the selective
  case with the S6 variant's SiLU on the bands."""
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")  # Triton compiler params
  batch, length, channels, states, groups = 2, 64, 32, 16, 5
  taps = [22, 22, 10, 4, 1]
  f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  args = {
      "u": f32(batch, length, channels), "filters": [f32(r, channels) for r in taps],
      "a": f32(groups, channels, states), "mix_bias": f32(channels, groups), "skip": f32(channels),
      "c_channel": f32(groups, channels, states)
  }
  if selective:
    args.update(dt_low=f32(batch, length, groups, 2), dt_proj=f32(groups, 2, channels),
                dt_bias=f32(channels, groups), b=f32(batch, length, groups,
                                                     states), c=f32(batch, length, groups, states))
  else:
    args.update(b_channel=f32(groups, channels, states))
  if input_weight:
    args["mix_weight"] = f32(channels, groups)

  def forward(args):
    return pallas_ms_ssm.fused_layer(**args, checkpoint_every=checkpoint_every,
                                     band_activation=band_activation, interpret=False)

  backward = jax.grad(lambda args: forward(args).sum())
  for fn in (forward, backward):
    lowered = jax.jit(fn).trace(args).lower(lowering_platforms=("cuda",))
    assert "__gpu$xla.gpu.triton" in lowered.as_text()


@pytest.mark.parametrize(
    "backbone,mixer,band_activation",
    [
        pytest.param("s6", "linear_input", "none", marks=pytest.mark.slow),  # the silu case below
        ("s6", "linear_input", "silu"),
        ("s4d_real", "static", "none"),
        ("s4d_real", "none", "none")
    ])
def test_equals_the_layer(x64, backbone, mixer, band_activation):
  """`MSSSMLayer(impl="pallas")`, which runs this kernel on the layer's own parameters, gives the
  band-wise layer's (associative scan) output and mixer metric; with SiLU on the bands, the
  paper's S6 variant."""
  layer = MSSSMLayer(d_model=3, num_levels=2, kernel_size=3, backbone=backbone, state_per_stream=3,
                     mixer=mixer, band_activation=band_activation)
  u = jnp.asarray(np.random.default_rng(7).normal(size=(2, 11, 3)))
  params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64),
                        layer.init(jax.random.key(0), u)["params"])
  if mixer == "linear_input":  # an input-dependent part as large as the bias
    params["mixer"]["weight"] = params["mixer"]["weight"] * 30.0
  apply = lambda module: jax.jit(functools.partial(module.apply, mutable=["intermediates"])
                                )({"params": params}, u)
  want, want_state = apply(layer)
  got, state = apply(layer.clone(impl="pallas"))
  assert relative_error(got, np.asarray(want)) < 1e-5
  if mixer == "linear_input":
    np.testing.assert_allclose(state["intermediates"]["mixer_input_ratio"],
                               want_state["intermediates"]["mixer_input_ratio"], rtol=1e-5)


def test_default_block_bounds_the_state_and_fills_the_gpu():
  assert pallas_ms_ssm.default_block(16, 128, 6, 16) == (8, 8, 2)  # issue 26's shape
  assert pallas_ms_ssm.default_block(512, 128, 6, 16) == (8, 32, 4)  # many programs anyway
  assert pallas_ms_ssm.default_block(50, 128, 5, 128) == (8, 4, 4)  # the paper's ListOps S6
  assert pallas_ms_ssm.default_block(2, 5, 4, 3) == (8, 4, 1)
  assert pallas_ms_ssm.default_block(2, 128, 6, 1024) == (8, 1, 4)


def test_low_precision_inputs_accumulate_in_float32(x64):

  def cast(inputs, convert):
    return {
        k: None if v is None else [convert(f) for f in v] if k == "filters" else convert(v)
        for k, v in inputs.items()
    }

  low = cast(random_inputs(8), lambda x: jnp.asarray(x, jnp.bfloat16))
  z = fused(low, chunk=4)
  assert z.dtype == jnp.float32
  expected = reference_layer(**cast(low, lambda x: np.asarray(x.astype(jnp.float32), np.float64)))
  assert relative_error(z, expected) < 1e-5


@pytest.mark.slow  # 18 s; test_equals_the_layer checks the metric the layer sows from it
def test_input_term_for_the_mixer_ratio_metric(x64):
  """`return_input_term`: z's input-dependent part `sum_j w_j u y^j` (the reference with zero
  mixer bias and skip), without a gradient; z and its gradient as without it."""
  inputs = random_inputs(9)
  layer = lambda i, **options: pallas_ms_ssm.fused_layer(i["u"], i["filters"], i[
      "a"], **{name: i[name] for name in ARG_NAMES[3:]}, chunk=4, **options)
  z, input_term = jax.jit(functools.partial(layer, return_input_term=True))(inputs)
  np.testing.assert_allclose(z, jax.jit(layer)(inputs), rtol=1e-6, atol=1e-6)
  zero_bias = dict(inputs, mix_bias=np.zeros_like(inputs["mix_bias"]),
                   skip=np.zeros_like(inputs["skip"]))
  assert relative_error(input_term, reference_layer(**zero_bias)) < 1e-5
  grad = lambda **options: jax.jit(
      jax.grad(lambda u: jnp.sum(jnp.stack(jax.tree.leaves(layer(dict(inputs, u=u), **options))))))(
          inputs["u"])
  np.testing.assert_allclose(grad(return_input_term=True), grad(), rtol=1e-6)
