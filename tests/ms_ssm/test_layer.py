"""MSSSMLayer against a float64 loop of its own equations, and its contracts."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ms_ssm_jax import scan
from ms_ssm_jax.ms_ssm import MSSSMLayer
from ms_ssm_jax.ms_ssm import streams as streams_lib
from ms_ssm_jax.ssm import SSM_PARAM_NAMES
from tests.ms_ssm.test_decomposition import numpy_bands

B, L, H, N = 3, 20, 4, 4
LENGTHS = np.array([20, 13, 7], np.int32)


def make_inputs(seed=0, dtype=jnp.float32):
  return jnp.asarray(np.random.default_rng(seed).normal(size=(B, L, H)), dtype)


def make_layer(**fields):
  return MSSSMLayer(d_model=H, state_per_stream=fields.pop("state_per_stream", N), **fields)


def init_layer(**fields):
  """The layer and its float32 params at init; cached, since compiling `init` dominates."""
  layer = make_layer(**fields)
  return layer, jax.tree.map(jnp.asarray, _cached_params(tuple(sorted(fields.items()))))


@functools.lru_cache(maxsize=None)
def _cached_params(fields):
  layer = make_layer(**dict(fields))
  params = jax.jit(layer.init)(jax.random.key(0), make_inputs(), jnp.asarray(LENGTHS))
  return jax.tree.map(np.asarray, params["params"])


@functools.lru_cache(maxsize=None)
def jitted_apply(**fields):
  layer = make_layer(**fields)
  return jax.jit(lambda params, u, lengths=None: layer.apply({"params": params}, u, lengths))


def to_float64(tree):
  return jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), tree)


# ----------------------------------------------------------------------------------------------
# The float64 reference: one unpadded sequence, a Python loop over time.


def softplus(x):
  return np.logaddexp(0.0, x)


def numpy_stream_coefficients(p, backbone, bands, u):
  """Per-step `a_t`, `b_t` (L, *state) and readouts `C_t`, `C_rev_t` -> y = readout(x_t)."""
  length = bands.shape[0]
  if backbone == "s4d_real":
    a = -np.exp(p["A_re_log"])  # (H, S', N)
    a_bar = np.exp(np.exp(p["log_step"])[..., None] * a)
    b_bar = (a_bar - 1) / a * p["B"]
    return (np.broadcast_to(a_bar,
                            (length,) + a.shape), bands[..., None] * b_bar, lambda x, c=p["C"]:
            (x * c).sum(-1), lambda x, c=p.get("C_reverse"): (x * c).sum(-1))
  if backbone == "s6":
    a = -np.exp(p["A_log"])  # (H, S', N)
    rank, n = p["dt_proj"].shape[1], a.shape[-1]
    proj = np.einsum("lh,hjk->ljk", u, p["x_proj"])
    dt_low, b_t = proj[..., :rank], proj[..., rank:rank + n]
    c_t, c_rev_t = proj[..., rank + n:rank + 2 * n], proj[..., rank + 2 * n:]
    step = softplus(np.einsum("ljr,jrh->lhj", dt_low, p["dt_proj"]) + p["dt_bias"])
    a_bar = np.exp(step[..., None] * a)
    b = step[..., None] * b_t[:, None] * bands[..., None]
    return a_bar, b, (lambda x, t: (x * c_t[t]).sum(-1)), (lambda x, t: (x * c_rev_t[t]).sum(-1))
  lam = p["Lambda_re"] + 1j * p["Lambda_im"]  # s5, (S', n)
  a_bar = np.exp(np.exp(p["log_step"]) * lam)
  b_bar = ((a_bar - 1) / lam)[..., None] * (p["B"][..., 0] + 1j * p["B"][..., 1])  # (S', n, H)
  c = p["C"][..., 0] + 1j * p["C"][..., 1]  # (S', H, n)
  b = np.einsum("lhj,jnh->ljn", bands, b_bar)
  return (np.broadcast_to(a_bar, (length,) + lam.shape), b,
          lambda x: 2 * np.einsum("jn,jhn->hj", x, c).real, None)


def numpy_layer(params, u, *, backbone="s4d_real", bidirectional=False, num_levels=3):
  """The layer on one sequence `u` (l, H), float64, step by step."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  if num_levels:
    bands = numpy_bands(u[None], p["decomposition"]["phi"], p["decomposition"]["psi"],
                        centered=bidirectional)[0]
  else:
    bands = u[..., None]
  a_bar, b, readout, readout_reverse = numpy_stream_coefficients(p["streams"], backbone, bands, u)
  selective = backbone == "s6"
  length = u.shape[0]
  y = np.zeros(bands.shape)
  state = np.zeros(b.shape[1:], b.dtype)
  for t in range(length):
    state = a_bar[t] * state + b[t]
    y[t] = readout(state, t) if selective else readout(state)
  if bidirectional:
    state = np.zeros(b.shape[1:], b.dtype)
    for t in reversed(range(length)):
      state = a_bar[t] * state + b[t]
      y[t] += readout_reverse(state, t) if selective else readout_reverse(state)
  mixer = p["mixer"]
  e = mixer["weight"] * u[..., None] + mixer["bias"]  # the paper's per-channel E_t (eq. 4)
  return (e * y).sum(-1) + p["D"] * u


@pytest.mark.parametrize("backbone,bidirectional",
                         [("s4d_real", True), ("s6", False),
                          pytest.param("s4d_real", False, marks=pytest.mark.slow),
                          pytest.param("s6", True, marks=pytest.mark.slow),
                          pytest.param("s5", False, marks=pytest.mark.slow)])
def test_matches_float64_loop(x64, backbone, bidirectional):
  """Three sequences; bidirectional ones padded with garbage beyond their lengths."""
  _, params = init_layer(backbone=backbone, bidirectional=bidirectional)
  params = to_float64(params)
  u = np.random.default_rng(1).normal(size=(B, L, H))
  valid = np.arange(L)[None, :, None] < LENGTHS[:, None, None]
  padded = np.where(valid, u, 100.0) if bidirectional else u
  apply = jitted_apply(backbone=backbone, bidirectional=bidirectional)
  got = np.asarray(apply(params, jnp.asarray(padded), jnp.asarray(LENGTHS)))
  for b in range(B):
    length = LENGTHS[b] if bidirectional else L
    ref = numpy_layer(params, u[b, :length], backbone=backbone, bidirectional=bidirectional)
    np.testing.assert_allclose(got[b, :length], ref, rtol=1e-9, atol=1e-9, err_msg=f"seq {b}")


@pytest.mark.parametrize("backbone", ["s6", pytest.param("s4d_real", marks=pytest.mark.slow)])
def test_causal_layer_is_exactly_causal(backbone):
  _, params = init_layer(backbone=backbone)
  apply = jitted_apply(backbone=backbone)
  u = make_inputs()
  for t0 in (0, 9, L - 1):
    out = apply(params, u)
    out_perturbed = apply(params, u.at[:, t0].add(1.0))
    np.testing.assert_array_equal(out[:, :t0], out_perturbed[:, :t0])
    assert np.all(np.abs(np.asarray(out[:, t0] - out_perturbed[:, t0])) > 0)


def test_zero_levels_is_the_plain_s4d_real_layer():
  from ms_ssm_jax.ssm.s4d import S4D  # pylint: disable=g-import-not-at-top
  layer, params = init_layer(num_levels=0)
  assert layer.num_streams == 1
  streams = params["streams"]
  s4d_params = {
      "A_re_log": streams["A_re_log"][:, 0], "B": streams["B"][:, 0], "C": streams["C"][:, 0],
      "log_step": streams["log_step"][:, 0], "D": params["D"]
  }
  # One stream with E = 1 (w = 0): the mixer is the identity.
  params = dict(
      params,
      mixer={"weight": jnp.zeros_like(params["mixer"]["weight"]), "bias": params["mixer"]["bias"]})
  np.testing.assert_array_equal(params["mixer"]["bias"], 1.0)
  u = make_inputs()
  ours = jitted_apply(num_levels=0)(params, u)
  theirs = jax.jit(S4D(d_model=H, state_size=N, a_init="real").apply)({"params": s4d_params}, u)
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Init: the scale-dependent timescales.


def _stream_decays(backbone, params):
  """|lambda_bar| of every state, grouped by stream in band order: (S', ...)."""
  p = jax.tree.map(np.asarray, params["streams"])
  if backbone in ("s4d_real", "s6"):
    rates = np.exp(p["A_re_log" if backbone == "s4d_real" else "A_log"])  # (H, S', N)
    step = np.exp(p["log_step"]) if backbone == "s4d_real" else softplus(p["dt_bias"])
    return np.moveaxis(np.exp(-step[..., None] * rates), 1, 0)  # (S', H, N)
  return np.exp(p["Lambda_re"] * np.exp(p["log_step"]))  # s5, (S', N/2)


def _assert_ordered_by_rank(decays, ranks):
  """Every state of a slower stream decays more slowly than every state of a faster one (per
  channel for SISO backbones), and all are stable."""
  assert np.all(decays < 1) and np.all(decays > 0)
  by_rank = decays[np.argsort(ranks)]
  for slower, faster in zip(by_rank[:-1], by_rank[1:]):
    assert np.all(slower.min(-1) > faster.max(-1))


@pytest.mark.parametrize("backbone", [
    "s4d_real",
    pytest.param("s6", marks=pytest.mark.slow),
    pytest.param("s5", marks=pytest.mark.slow)
])
def test_stratified_init_orders_the_streams(backbone):
  layer, params = init_layer(backbone=backbone, bidirectional=backbone == "s4d_real")
  # Band order a^3, d^3, d^2, d^1, x; rank 0 is the slowest (|lambda_bar| nearest 1).
  assert tuple(range(layer.num_streams)) == (0, 1, 2, 3, 4)
  _assert_ordered_by_rank(_stream_decays(backbone, params), tuple(range(layer.num_streams)))
  if backbone in ("s4d_real", "s6"):
    rates = np.exp(np.asarray(params["streams"]["A_re_log" if backbone == "s4d_real" else "A_log"]))
    np.testing.assert_allclose(np.sort(rates[0].ravel()), np.arange(1, 5 * N + 1), rtol=1e-6)
    # Fig. 2 of the paper: stream j holds A = -(jN+1) .. -(jN+N).
    np.testing.assert_allclose(rates,
                               np.broadcast_to(np.arange(5 * N).reshape(5, N) + 1.0, rates.shape),
                               rtol=1e-6)
    step = params["streams"]["log_step" if backbone == "s4d_real" else "dt_bias"]
    np.testing.assert_array_equal(step, jnp.broadcast_to(step[:, :1], step.shape))


def test_the_inits_order_the_streams_by_rank():
  ranks = tuple(range(make_layer().num_streams))
  assert ranks == (0, 1, 2, 3, 4)
  key = jax.random.key(0)
  rates = np.asarray(streams_lib.decay_rates(ranks, N, "stratified_a", H))
  np.testing.assert_allclose(rates[:, 0], np.broadcast_to(np.arange(1, N + 1), (H, N)))
  _assert_ordered_by_rank(np.moveaxis(np.exp(-0.01 * rates), 1, 0), ranks)
  steps = np.exp(np.asarray(streams_lib.s5_log_steps(key, ranks, N, "stratified_a", 1e-3, 1e-1)))
  _assert_ordered_by_rank(np.exp(-0.5 * steps), ranks)
  shared = np.asarray(streams_lib.decay_rates(ranks, N, "shared", H))
  np.testing.assert_allclose(shared, np.broadcast_to(np.arange(1, N + 1), shared.shape))


# ----------------------------------------------------------------------------------------------
# One scan for all streams; chunked == full.


def _count_scan_calls(monkeypatch, layer, chunk=False):
  calls = []
  name = "chunked_linear_recurrence" if chunk else "linear_recurrence"
  original = getattr(scan, name)

  def counting(*args, **kwargs):
    calls.append(args[1].shape if not chunk else kwargs["chunk_size"])
    return original(*args, **kwargs)

  monkeypatch.setattr(scan, name, counting)
  u = jax.ShapeDtypeStruct((B, L, H), jnp.float32)
  lengths = jax.ShapeDtypeStruct((B,), jnp.int32)
  jax.eval_shape(layer.init, jax.random.key(0), u, lengths)
  return calls


@pytest.mark.parametrize("backbone,states", [("s4d_real", H * 5 * N), ("s6", H * 5 * N),
                                             ("s5", 5 * N // 2)])
def test_all_streams_run_in_one_scan(monkeypatch, backbone, states):
  layer = MSSSMLayer(d_model=H, state_per_stream=N, backbone=backbone)
  assert _count_scan_calls(monkeypatch, layer) == [(B, L, states)]
  bidirectional = MSSSMLayer(d_model=H, state_per_stream=N, backbone=backbone, bidirectional=True)
  assert _count_scan_calls(monkeypatch, bidirectional) == [(B, L, states)] * 2


def test_chunked_runs_one_chunked_scan(monkeypatch):
  layer = MSSSMLayer(d_model=H, state_per_stream=N, impl="chunked", chunk_size=6)
  assert _count_scan_calls(monkeypatch, layer, chunk=True) == [6]


@pytest.mark.parametrize("backbone", ["s6", pytest.param("s4d_real", marks=pytest.mark.slow)])
def test_chunked_equals_full_scan_and_gradients_reach_every_parameter(backbone):
  layer, params = init_layer(backbone=backbone, bidirectional=True)
  chunked = layer.clone(impl="chunked", chunk_size=6)  # L = 20 is not a multiple of 6
  u, lengths = make_inputs(), jnp.asarray(LENGTHS)

  def loss(module, params):
    return jnp.sum(jnp.sin(module.apply({"params": params}, u, lengths)))

  full_value, full_grads = jax.jit(jax.value_and_grad(functools.partial(loss, layer)))(params)
  value, grads = jax.jit(jax.value_and_grad(functools.partial(loss, chunked)))(params)
  np.testing.assert_allclose(value, full_value, rtol=1e-5)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    ref = functools.reduce(lambda t, k: t[k.key], path, full_grads)
    np.testing.assert_allclose(g, ref, rtol=2e-4, atol=2e-5, err_msg=jax.tree_util.keystr(path))
  _assert_finite_and_nonzero(grads)


def _assert_finite_and_nonzero(grads):
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    name = jax.tree_util.keystr(path)
    assert np.all(np.isfinite(g)), name
    assert np.any(np.asarray(g) != 0), name


# ----------------------------------------------------------------------------------------------
# Gradients and precision.


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["s5"])
def test_gradients_finite_and_nonzero_for_every_parameter(backbone):
  layer, params = init_layer(backbone=backbone, bidirectional=True)
  u, lengths = make_inputs(), jnp.asarray(LENGTHS)
  weights = make_inputs(seed=3)
  grads = jax.jit(
      jax.grad(lambda p: jnp.sum(weights * layer.apply({"params": p}, u, lengths))))(params)
  _assert_finite_and_nonzero(grads)


def test_gradients_match_finite_differences(x64):
  layer, params = init_layer(backbone="s6", bidirectional=True)
  chunked = layer.clone(impl="chunked", chunk_size=7)
  u, lengths = make_inputs(dtype=jnp.float64), jnp.asarray(LENGTHS)
  apply = jax.jit(lambda p: chunked.apply({"params": p}, u, lengths))
  check_grads(apply, (to_float64(params),), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_ssm_parameter_names_are_the_contract():
  for backbone in ["s4d_real", "s6"]:
    _, params = init_layer(backbone=backbone)
    names = {path[-1].key for path, _ in jax.tree_util.tree_leaves_with_path(params)}
    ssm_names = names & SSM_PARAM_NAMES
    expected = {"A_re_log", "log_step", "B"} if backbone == "s4d_real" else {"A_log", "dt_bias"}
    assert ssm_names == expected
    assert not {"phi", "psi", "kernel", "bias", "C", "D"} & SSM_PARAM_NAMES


def test_bf16_activations_with_float32_params():
  _, params = init_layer(backbone="s6")
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  u = make_inputs()
  apply = jitted_apply(backbone="s6")
  out32 = apply(params, u)
  out16 = apply(params, u.astype(jnp.bfloat16))
  assert out16.dtype == jnp.bfloat16
  err = jnp.linalg.norm(out16.astype(jnp.float32) - out32) / jnp.linalg.norm(out32)
  assert float(err) < 3e-2


# ----------------------------------------------------------------------------------------------
# Config.


def test_state_sizes_and_counts():
  per_stream = MSSSMLayer(d_model=H, state_per_stream=8)
  assert per_stream.stream_state_size == 8
  counts = per_stream.state_counts()
  assert (counts.per_channel, counts.total, counts.carried_floats) == (40, 40 * H, 40 * H)
  s5 = MSSSMLayer(d_model=H, state_per_stream=8, backbone="s5", bidirectional=True)
  counts = s5.state_counts()
  assert (counts.per_channel, counts.total, counts.carried_floats) == (40, 40, 80)


@pytest.mark.parametrize("fields,message", [
    (dict(), "backbone='s4d_real' needs state_per_stream"),
    (dict(state_per_stream=0), "needs state_per_stream \\(N per stream\\) >= 1; got 0"),
    (dict(state_per_stream=4, kernel_size=1), "kernel_size must be >= 2"),
    (dict(state_per_stream=4, backbone="mamba"), "backbone='mamba' is not supported"),
    (dict(state_per_stream=4, mixer="attention"), "unknown mixer"),
    (dict(state_per_stream=4, scale_init="hippo"), "scale_init='hippo'"),
    (dict(state_per_stream=3, backbone="s5"), "must be even"),
    (dict(state_per_stream=4, scale_init="random_uniform_in_block"), "scale_init="),
    (dict(state_per_stream=4, band_activation="gelu"), "band_activation='gelu'"),
    (dict(state_per_stream=4, impl="chunked", chunk_size=0), "chunk_size must be >= 1"),
    (dict(state_per_stream=4, backbone="lru"), "backbone='lru' is not supported"),
    (dict(state_per_stream=4, num_levels=-1), "num_levels must be >= 0"),
])
def test_config_errors(fields, message):
  with pytest.raises(ValueError, match=message):
    MSSSMLayer(d_model=H, **fields)


def test_input_shape_error():
  layer = MSSSMLayer(d_model=H, state_per_stream=N)
  with pytest.raises(ValueError, match=r"expected inputs of shape \(B, L, H=4\)"):
    layer.init(jax.random.key(0), jnp.ones((2, 5, H + 1)))


@pytest.mark.slow
def test_silu_band_activation_runs_and_differs():
  layer, params = init_layer(backbone="s6", band_activation="silu")
  plain = layer.clone(band_activation="none")
  u = make_inputs()
  out = jax.jit(layer.apply)({"params": params}, u)
  assert out.shape == (B, L, H) and np.all(np.isfinite(out))
  assert not np.allclose(out, jax.jit(plain.apply)({"params": params}, u))
  assert math.isclose(float(jnp.mean(params["D"])), 1.0)


def test_linear_input_mixer_sows_its_input_ratio():
  """The train loop's stability metric: mean |w u y| / mean |b y + D u| over valid steps."""
  layer, params = init_layer()
  u, lengths = make_inputs(), jnp.asarray(LENGTHS)
  params["mixer"]["weight"] = params["mixer"]["weight"] * 300.0  # an input term worth measuring
  out, state = layer.apply({"params": params}, u, lengths, mutable=["intermediates"],
                           capture_intermediates=lambda module, method: method == "terms")
  (ratio,) = state["intermediates"]["mixer_input_ratio"]
  ((input_term, constant_term),) = state["intermediates"]["mixer"]["terms"]
  valid = (np.arange(L)[None, :] < LENGTHS[:, None])[..., None]
  rest = np.asarray(constant_term) + np.asarray(params["D"]) * np.asarray(u)
  want = (np.abs(np.asarray(input_term)) * valid).sum() / (np.abs(rest) * valid).sum()
  assert 0.01 < want < 100
  np.testing.assert_allclose(float(ratio), want, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(out), np.asarray(input_term) + rest, rtol=1e-5, atol=1e-6)
  _, static_state = make_layer(mixer="static").init_with_output(jax.random.key(0), u, lengths,
                                                                mutable=["params", "intermediates"])
  assert "intermediates" not in static_state


@pytest.mark.parametrize("bidirectional", [False, True])
def test_no_ssm_mixes_the_bands_themselves(x64, bidirectional):
  """backbone='none' (the paper's "no SSM" ablation): the mixer and D skip on the bands."""
  layer = MSSSMLayer(d_model=H, backbone="none", bidirectional=bidirectional)
  u = make_inputs(1, jnp.float64)
  lengths = jnp.asarray(LENGTHS) if bidirectional else None
  params = layer.init(jax.random.key(0), u, lengths)["params"]
  assert set(params) == {"decomposition", "mixer", "D"}
  params["mixer"]["weight"] = jnp.asarray(np.random.default_rng(2).normal(size=(H, 5)))
  y = np.asarray(layer.apply({"params": params}, u, lengths))
  valid = (np.arange(L)[None, :] < (LENGTHS if bidirectional else np.full(B, L))[:, None])[...,
                                                                                           None]
  x = np.asarray(u) * valid
  bands = numpy_bands(x, params["decomposition"]["phi"], params["decomposition"]["psi"],
                      centered=bidirectional) * valid[..., None]
  mixer = params["mixer"]
  expected = (np.einsum("blhj,hj->blh", bands, mixer["bias"]) +
              x * np.einsum("blhj,hj->blh", bands, mixer["weight"]) + params["D"] * x)
  mask = valid[..., 0]  # bidirectional outputs beyond the length are unspecified
  np.testing.assert_allclose(y[mask], expected[mask], rtol=1e-10, atol=1e-12)
  assert layer.state_counts().per_channel == 0
  if not bidirectional:
    changed = np.asarray(layer.apply({"params": params}, u.at[:, 9:].add(1.0)))
    np.testing.assert_array_equal(changed[:, :9], y[:, :9])
    assert not np.allclose(changed[:, 9:], y[:, 9:])


@pytest.mark.parametrize("fields,message", [
    (dict(state_per_stream=4), "backbone='none' has no stream states"),
    (dict(impl="conv"), "backbone='none' runs no SSM"),
])
def test_no_ssm_config_errors(fields, message):
  with pytest.raises(ValueError, match=message):
    MSSSMLayer(d_model=H, backbone="none", **fields)
