"""The fused Pallas selective scan against the float64 sequential reference.

On the CPU the kernels run in the Pallas interpreter; on a GPU the same tests run the compiled
Triton kernels (`JAX_PLATFORMS=cuda pytest tests/test_pallas_scan.py`). Two tests lower the
kernels for platforms this machine lacks: Triton (GPU) and Mosaic (TPU).
"""

import functools

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from ms_ssm_jax import pallas_scan
from ms_ssm_jax import scan
from tests import reference

ARG_NAMES = ("u", "delta", "a", "b", "c", "b_channel", "c_channel")


def random_inputs(seed, batch=2, length=13, groups=3, channels=5, states=6, *, time_varying=True,
                  channel_factors=True):
  """Float64 inputs; steps in [e^-3, 1], eigenvalues in -[e^-1, e]."""
  rng = np.random.default_rng(seed)
  seq = (batch, length, groups, channels)
  proj = (batch, length, groups, states)
  chan = (groups, channels, states)
  return {
      "u": rng.normal(size=seq),
      "delta": np.exp(rng.uniform(-3, 0, size=seq)),
      "a": -np.exp(rng.uniform(-1, 1, size=chan)),
      "b": rng.normal(size=proj) if time_varying else None,
      "c": rng.normal(size=proj) if time_varying else None,
      "b_channel": rng.normal(size=chan) if channel_factors else None,
      "c_channel": rng.normal(size=chan) if channel_factors else None,
  }


def fused(inputs, **options):
  """The kernel on a dict of `ARG_NAMES` inputs (jitted: the interpreter is slow op by op)."""
  return jax.jit(functools.partial(pallas_scan.selective_scan,
                                   **options))(inputs["u"], inputs["delta"], inputs["a"],
                                               b=inputs["b"], c=inputs["c"],
                                               b_channel=inputs["b_channel"],
                                               c_channel=inputs["c_channel"])


def relative_error(x, reference_value):
  return float(np.max(np.abs(np.asarray(x) - reference_value)) / np.max(np.abs(reference_value)))


CASES = [  # (shape kwargs, kernel options): padding of L, H and N, several chunks and blocks
    (dict(), dict(chunk=4, block_channels=2)),
    (dict(length=16, channels=8, states=8), dict(chunk=8, block_channels=4, block_states=2)),
    (dict(length=1, channels=1, states=1), dict()),
    (dict(length=37, channels=4, states=3), dict(chunk=3, block_channels=4)),
    (dict(channels=3, states=6), dict(chunk=5, block_channels=2, block_states=4)),
    (dict(length=37, states=3), dict(chunk=3, block_states=2)),  # 13 chunks, N 3 padded to 4
    # One saved state per 4 chunks of 3 steps: L 37 padded to 48, 4 segments.
    (dict(length=37, channels=4, states=6), dict(chunk=3, checkpoint_every=4)),
    (dict(length=20, states=8), dict(chunk=2, block_states=4, checkpoint_every=3)),
]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("shape,options", CASES)
@pytest.mark.parametrize("time_varying,channel_factors", [(True, False), (False, True),
                                                          (True, True)])
def test_forward_matches_float64_reference(x64, reverse, shape, options, time_varying,
                                           channel_factors):
  inputs = random_inputs(0, **shape, time_varying=time_varying, channel_factors=channel_factors)
  y = fused(inputs, reverse=reverse, **options)
  expected = reference.sequential_selective_scan(**inputs, reverse=reverse)
  assert y.shape == inputs["u"].shape and y.dtype == jnp.float32
  assert relative_error(y, expected) < 1e-5


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("shape,options", CASES[:2] + CASES[3:])
def test_gradients_match_float64_reference(x64, reverse, shape, options):
  inputs = random_inputs(1, **shape)
  weights = np.random.default_rng(2).normal(size=inputs["u"].shape)
  argnums = tuple(range(len(ARG_NAMES)))

  def loss(scan_fn, *args):
    return jnp.sum(weights * scan_fn(dict(zip(ARG_NAMES, args))))

  args = [inputs[name] for name in ARG_NAMES]
  grads = jax.jit(
      jax.grad(lambda *x: loss(lambda i: fused(i, reverse=reverse, **options), *x),
               argnums=argnums))(*args)
  expected = jax.jit(
      jax.grad(
          lambda *x: loss(lambda i: reference.sequential_selective_scan(**i, reverse=reverse), *x),
          argnums=argnums))(*args)
  for name, grad, want in zip(ARG_NAMES, grads, expected):
    assert grad.shape == want.shape, name
    assert relative_error(grad, want) < 1e-4, name


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("options",
                         [dict(chunk=4, block_channels=2),
                          dict(chunk=3, block_states=2)])
def test_without_delta_matches_unit_steps(x64, reverse, options):
  """`delta=None` (the time-invariant streams) is the recurrence with delta = 1: outputs and
  the gradients of every other input."""
  inputs = random_inputs(10, length=17)
  unit_steps = np.ones_like(inputs["delta"])
  weights = np.random.default_rng(11).normal(size=inputs["u"].shape)
  names = tuple(name for name in ARG_NAMES if name != "delta")

  def loss(scan_fn, *args):
    return jnp.sum(weights * scan_fn(dict(zip(names, args))))

  fused_no_delta = lambda i: fused(dict(i, delta=None), reverse=reverse, **options)
  sequential = lambda i: reference.sequential_selective_scan(**i, delta=unit_steps, reverse=reverse)
  args = [inputs[name] for name in names]
  without_delta = dict(zip(names, args))
  assert relative_error(fused_no_delta(without_delta), sequential(without_delta)) < 1e-5
  argnums = tuple(range(len(names)))
  grads = jax.jit(jax.grad(lambda *x: loss(fused_no_delta, *x), argnums=argnums))(*args)
  expected = jax.jit(jax.grad(lambda *x: loss(sequential, *x), argnums=argnums))(*args)
  for name, grad, want in zip(names, grads, expected):
    assert relative_error(grad, want) < 1e-4, name


def _pallas_output_shapes(fn, *args) -> list[tuple[int, ...]]:
  """Shapes of every output of every pallas_call in `fn`'s jaxpr (the custom_vjp included)."""
  shapes = []

  def visit(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "pallas_call":
        shapes.extend(tuple(v.aval.shape) for v in eqn.outvars)
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        visit(sub)

  visit(jax.make_jaxpr(fn)(*args).jaxpr)
  return shapes


def test_state_blocks_add_into_one_output():
  """4 blocks of 2 states, each a program of its own, add their parts of y, du and ddelta into
  one `(B, G, L, H)` array each (atomic adds): no `(B, G, N / N_blk, L, H)` partial sums."""
  inputs = random_inputs(12, length=16, channels=4, states=8)
  options = dict(chunk=4, block_channels=4, block_states=2)
  grad = jax.grad(lambda u: jnp.sum(fused(dict(inputs, u=u), **options)))
  shapes = _pallas_output_shapes(grad, inputs["u"])
  assert shapes.count((2, 3, 16, 4)) == 3  # y; du and ddelta
  assert not [s for s in shapes if len(s) == 5 and s[-2:] == (16, 4)]
  want = jax.grad(lambda u: jnp.sum(fused(dict(inputs, u=u), block_states=8, chunk=4)))
  np.testing.assert_allclose(grad(inputs["u"]), want(inputs["u"]), rtol=1e-5, atol=1e-6)


def test_matches_associative_scan_of_the_same_coefficients(x64):
  """A second reference: the discretized coefficients through `scan.linear_recurrence`."""
  inputs = random_inputs(3)
  u, delta, a = inputs["u"], inputs["delta"], inputs["a"]
  decay = np.exp(delta[..., None] * a)  # (B, L, G, H, N)
  drive = (delta * u)[..., None] * inputs["b"][:, :, :, None, :] * inputs["b_channel"]
  flat = decay.shape[:2] + (-1,)
  states = scan.linear_recurrence(decay.reshape(flat), drive.reshape(flat)).reshape(decay.shape)
  readout = inputs["c"][:, :, :, None, :] * inputs["c_channel"]
  expected = np.sum(np.asarray(states) * readout, axis=-1)
  assert relative_error(fused(inputs), expected) < 1e-5


def test_causal(x64):
  inputs = random_inputs(4, length=12)
  y = fused(inputs, chunk=4)
  changed = dict(inputs, u=inputs["u"].copy())
  changed["u"][:, 7:] += 1.0
  y_changed = fused(changed, chunk=4)
  np.testing.assert_array_equal(y[:, :7], y_changed[:, :7])
  assert np.all(np.abs(np.asarray(y_changed[:, 7:] - y[:, 7:])) > 0)


def test_low_precision_inputs_accumulate_in_float32(x64):
  inputs = random_inputs(5)
  low = {k: None if v is None else jnp.asarray(v, jnp.bfloat16) for k, v in inputs.items()}
  y = fused(low)
  expected = reference.sequential_selective_scan(**{
      k: None if v is None else np.asarray(v.astype(jnp.float32), np.float64)
      for k, v in low.items()
  })
  assert y.dtype == jnp.float32
  assert relative_error(y, expected) < 1e-5


def test_jit_and_long_sequence(x64):
  inputs = random_inputs(6, batch=1, length=300, groups=2, channels=4, states=4)
  y = jax.jit(lambda i: fused(i))(inputs)
  assert relative_error(y, reference.sequential_selective_scan(**inputs)) < 1e-5


@pytest.mark.parametrize(
    "states,options,saved",
    [
        (6, dict(chunk=8), 8),  # N 6 -> 8 <= 2T: one state per chunk
        (6, dict(chunk=8, checkpoint_every=2), 4),
        (64, dict(chunk=8), 2),  # default E = ceil(64 / 16) = 4
    ])
def test_saved_states_one_per_segment(states, options, saved):
  """The backward's residuals hold one state per E chunks: (B, G, L / (T E), H, N)."""
  inputs = random_inputs(9, length=64, states=states)
  _, vjp_fn = jax.vjp(lambda u: fused(dict(inputs, u=u), **options), inputs["u"])
  [entries] = [x for x in jax.tree.leaves(vjp_fn) if getattr(x, "ndim", 0) == 5]
  assert entries.shape[:3] == (2, 3, saved)


@pytest.mark.parametrize("bad,message", [
    (dict(a=np.zeros((3, 5, 6), np.complex64)), "real states only"),
    (dict(delta=np.zeros((2, 13, 3, 4))), "delta must have the shape of u"),
    (dict(a=np.zeros((3, 4, 6))), "a must have shape"),
    (dict(b=np.zeros((2, 13, 3, 5))), "b must have shape"),
    (dict(c_channel=np.zeros((3, 5, 7))), "c_channel must have the shape of a"),
])
def test_bad_inputs_raise_clear_errors(bad, message):
  inputs = random_inputs(7)
  inputs.update(bad)
  with pytest.raises(ValueError, match=message):
    fused(inputs)


@pytest.mark.parametrize("options", [
    dict(block_channels=3),
    dict(block_states=3),
    dict(block_states=16),
    dict(chunk=-1),
    dict(checkpoint_every=-1)
])
def test_bad_kernel_options_raise_clear_errors(options):
  with pytest.raises(ValueError, match="power of 2|chunk must be"):
    fused(random_inputs(8), **options)


def test_default_blocks():
  assert pallas_scan.default_block(128, 16, "gpu") == (8, 32, 16)
  assert pallas_scan.default_block(128, 128, "gpu") == (8, 32, 16)
  assert pallas_scan.default_block(5, 6, "gpu") == (8, 8, 8)
  assert pallas_scan.default_block(5, 6, "tpu") == (8, 128, 8)


@pytest.mark.parametrize("states,block_states,has_delta", [(16, None, True), (256, None, True),
                                                           (256, None, False)])
def test_kernels_lower_for_tpu(monkeypatch, states, block_states, has_delta):
  """Both kernels pass the Mosaic (TPU) lowering with the TPU default blocks (all states in one
  block), and with no delta; not run on a TPU."""
  monkeypatch.setattr(pallas_scan.jax, "default_backend", lambda: "tpu")  # TPU defaults
  shapes = [(2, 64, 2, 128)] * 2 + [(2, 128, states)] + [(2, 64, 2, states)] * 2
  args = [jax.ShapeDtypeStruct(shape, jnp.float32) for shape in shapes]

  def forward(u, delta, a, b, c):
    return pallas_scan.selective_scan(u, delta if has_delta else None, a, b=b, c=c, interpret=False,
                                      block_states=block_states)

  backward = jax.grad(lambda *x: forward(*x).sum(), argnums=tuple(range(5)))
  for fn in (forward, backward):
    lowered = jax.jit(fn).trace(*args).lower(lowering_platforms=("tpu",))
    assert "tpu_custom_call" in lowered.as_text()


def test_split_states_need_gpu_atomics(monkeypatch):
  monkeypatch.setattr(pallas_scan.jax, "default_backend", lambda: "tpu")
  u = jnp.zeros((1, 8, 1, 128))
  with pytest.raises(
      ValueError, match="block_states=8 splits the 16 states over programs, which "
      r"add their parts with GPU atomics; on a TPU use all of them \(the default\)"):
    pallas_scan.selective_scan(u, u, -jnp.ones((1, 128, 16)), block_states=8, interpret=False)


@pytest.mark.parametrize("block_states,has_delta", [(16, True), (8, True), (4, False)])
def test_kernels_lower_to_triton(monkeypatch, block_states, has_delta):
  """Both kernels pass the Pallas-to-Triton lowering (what a GPU compiles) on any machine."""
  monkeypatch.setattr(pallas_scan.jax, "default_backend", lambda: "gpu")  # Triton params
  shapes = [(2, 64, 2, 32)] * 2 + [(2, 32, 16)] + [(2, 64, 2, 16)] * 2
  args = [jax.ShapeDtypeStruct(shape, jnp.float32) for shape in shapes]

  def forward(u, delta, a, b, c):
    return pallas_scan.selective_scan(u, delta if has_delta else None, a, b=b, c=c, interpret=False,
                                      block_states=block_states)

  backward = jax.grad(lambda *x: forward(*x).sum(), argnums=tuple(range(5)))
  for fn in (forward, backward):
    lowered = jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",))
    assert "__gpu$xla.gpu.triton" in lowered.as_text()
