"""The associative recurrence against sequential float64 references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ms_ssm_jax import scan
from tests.reference import loop_recurrence, sequential_recurrence


def jitted(fn, **static):
  """`fn` with `static` keyword arguments bound, compiled (associative scans are slow op by op)."""
  return jax.jit(lambda *args, **kwargs: fn(*args, **static, **kwargs))


def rel_err(x, ref):
  x, ref = np.asarray(x), np.asarray(ref)
  return float(np.linalg.norm((x - ref).ravel()) / np.linalg.norm(ref.ravel()))


def random_coeffs(rng, shape_a, shape_b, complex_, max_abs=0.9999, dtype=np.float64):
  """Random decays with |a| uniform in [0.5, max_abs] and phases anywhere; normal b."""
  radius = rng.uniform(0.5, max_abs, shape_a)
  if complex_:
    a = radius * np.exp(1j * rng.uniform(-np.pi, np.pi, shape_a))
    b = rng.normal(size=shape_b) + 1j * rng.normal(size=shape_b)
    cdtype = np.complex128 if dtype == np.float64 else np.complex64
    return a.astype(cdtype), b.astype(cdtype)
  a = radius * rng.choice([-1.0, 1.0], shape_a)
  return a.astype(dtype), rng.normal(size=shape_b).astype(dtype)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("time_varying", [False, True])
@pytest.mark.parametrize("length", [1, 37, 4096])
def test_matches_sequential_float64(x64, reverse, complex_, time_varying, length):
  rng = np.random.default_rng(length + 2 * reverse + 4 * complex_)
  shape_b = (2, length, 6)
  shape_a = shape_b if time_varying else (6,)
  a, b = random_coeffs(rng, shape_a, shape_b, complex_)
  x0 = random_coeffs(rng, (6,), (2, 6), complex_)[1]
  got = jitted(scan.linear_recurrence, reverse=reverse)(jnp.asarray(a), jnp.asarray(b),
                                                        initial_state=x0)
  ref = sequential_recurrence(jnp.asarray(a), jnp.asarray(b), reverse=reverse, initial_state=x0)
  assert got.dtype == ref.dtype
  assert rel_err(got, ref) < 1e-5


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("complex_", [False, True])
def test_float32_matches_float64_reference(x64, reverse, complex_):
  rng = np.random.default_rng(7)
  a, b = random_coeffs(rng, (3, 4096, 5), (3, 4096, 5), complex_)
  ref = loop_recurrence(a, b, reverse=reverse)
  a32 = a.astype(np.complex64 if complex_ else np.float32)
  b32 = b.astype(a32.dtype)
  got = jitted(scan.linear_recurrence, reverse=reverse)(jnp.asarray(a32), jnp.asarray(b32))
  assert got.dtype == a32.dtype
  assert rel_err(got, ref) < 1e-4


def test_two_references_agree(x64):
  rng = np.random.default_rng(0)
  a, b = random_coeffs(rng, (2, 50, 3), (2, 50, 3), True)
  for reverse in (False, True):
    seq = sequential_recurrence(jnp.asarray(a), jnp.asarray(b), reverse=reverse)
    assert rel_err(seq, loop_recurrence(a, b, reverse=reverse)) < 1e-12


def test_operator_is_associative_and_ordered(x64):
  """With time-varying elements the operator's order matters; a swapped operator fails here."""
  rng = np.random.default_rng(1)
  e1, e2, e3 = [
      tuple(jnp.asarray(v) for v in random_coeffs(rng, (4,), (4,), True)) for _ in range(3)
  ]
  left = scan._combine(scan._combine(e1, e2), e3)
  right = scan._combine(e1, scan._combine(e2, e3))
  for u, v in zip(left, right):
    np.testing.assert_allclose(u, v, rtol=1e-12)
  # Composing step 1 then step 2 equals applying them in sequence to a state.
  x = jnp.asarray(rng.normal(size=4))
  a12, b12 = scan._combine(e1, e2)
  np.testing.assert_allclose(a12 * x + b12, e2[0] * (e1[0] * x + e1[1]) + e2[1], rtol=1e-12)


def test_time_invariant_equals_broadcast_time_varying(x64):
  rng = np.random.default_rng(2)
  a, b = random_coeffs(rng, (5,), (2, 64, 5), False)
  recurrence = jax.jit(scan.linear_recurrence)
  got = recurrence(jnp.asarray(a), jnp.asarray(b))
  ref = recurrence(jnp.broadcast_to(jnp.asarray(a), b.shape), jnp.asarray(b))
  np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_bf16_inputs_accumulate_in_float32():
  b = jnp.ones((1, 300, 2), jnp.bfloat16)
  a = jnp.full((2,), 0.98, jnp.bfloat16)
  x = scan.linear_recurrence(a, b)
  assert x.dtype == jnp.float32
  a32 = float(jnp.asarray(0.98, jnp.bfloat16).astype(jnp.float32))
  expected = (1 - a32**300) / (1 - a32)
  np.testing.assert_allclose(x[0, -1], expected, rtol=1e-5)


def test_gradients_match_finite_differences(x64):
  rng = np.random.default_rng(3)
  a, b = random_coeffs(rng, (1, 9, 3), (1, 9, 3), False, max_abs=0.9)
  x0 = rng.normal(size=(1, 3))
  for reverse in (False, True):
    fn = lambda a, b, x0: scan.linear_recurrence(a, b, reverse=reverse, initial_state=x0)
    check_grads(fn, (jnp.asarray(a), jnp.asarray(b), jnp.asarray(x0)), order=1, modes=["rev"])


def test_causality_exact():
  rng = np.random.default_rng(4)
  a, b = random_coeffs(rng, (1, 40, 3), (1, 40, 3), False, dtype=np.float32)
  x = scan.linear_recurrence(jnp.asarray(a), jnp.asarray(b))
  b2 = b.copy()
  b2[:, 25:] = rng.normal(size=b2[:, 25:].shape)
  x2 = scan.linear_recurrence(jnp.asarray(a), jnp.asarray(b2))
  np.testing.assert_array_equal(x[:, :25], x2[:, :25])
  assert not np.allclose(x[:, 25:], x2[:, 25:])


def test_shape_errors():
  with pytest.raises(ValueError, match="states"):
    scan.linear_recurrence(jnp.ones(3), jnp.ones((2, 4, 5)))
  with pytest.raises(ValueError, match="does not broadcast"):
    scan.linear_recurrence(jnp.ones((1, 3, 5)), jnp.ones((2, 4, 5)))
  with pytest.raises(ValueError, match="length"):
    scan.linear_recurrence(jnp.ones((1, 5)), jnp.ones((2, 4, 5)))
  with pytest.raises(ValueError, match=r"\(\.\.\., L, P\)"):
    scan.linear_recurrence(jnp.ones(3), jnp.ones(3))


def _chunk_problem(rng, time_varying, complex_):
  """A SISO-style layer: inputs u (B, L, H) -> states (B, L, H*N) -> y (B, L, H)."""
  batch, length, h, n = 2, 45, 3, 4
  a, _ = random_coeffs(rng, (h * n,), (1,), complex_, max_abs=0.99)
  bmat = rng.normal(size=(h * n,))
  cmat = rng.normal(size=(h, n))
  u = rng.normal(size=(batch, length, h))
  gate = rng.uniform(0.1, 1.0, size=(batch, length, h * n))

  def coeffs(xs):
    u_c, g_c = xs
    b = jnp.repeat(u_c, n, axis=-1) * bmat
    return (g_c * a if time_varying else jnp.asarray(a)), b

  def readout(states, xs):
    states = states.reshape(states.shape[:-1] + (h, n))
    return jnp.einsum("btkn,kn->btk", states, cmat).real

  return (jnp.asarray(u), jnp.asarray(gate)), coeffs, readout


@pytest.mark.parametrize("time_varying", [False, True])
@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_chunked_equals_full(x64, time_varying, complex_, reverse):
  rng = np.random.default_rng(5)
  xs, coeffs, readout = _chunk_problem(rng, time_varying, complex_)
  x0 = jnp.asarray(rng.normal(size=(2, 12)))

  def full(xs):
    a, b = coeffs(xs)
    states = scan.linear_recurrence(a, b, reverse=reverse, initial_state=x0)
    return readout(states, xs)

  def chunked(xs):
    ys, _ = scan.chunked_linear_recurrence(coeffs, readout, xs, chunk_size=8, reverse=reverse,
                                           initial_state=x0)
    return ys

  np.testing.assert_allclose(jax.jit(chunked)(xs), jax.jit(full)(xs), rtol=1e-10, atol=1e-12)
  g_full = jax.jit(jax.grad(lambda xs: jnp.sum(full(xs)**2)))(xs)
  g_chunk = jax.jit(jax.grad(lambda xs: jnp.sum(chunked(xs)**2)))(xs)
  for u, v in zip(g_chunk, g_full):
    np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12)


def test_chunked_final_state(x64):
  rng = np.random.default_rng(6)
  xs, coeffs, readout = _chunk_problem(rng, True, False)
  a, b = coeffs(xs)
  for reverse in (False, True):
    _, final = scan.chunked_linear_recurrence(coeffs, readout, xs, chunk_size=7, reverse=reverse)
    states = scan.linear_recurrence(a, b, reverse=reverse)
    np.testing.assert_allclose(final, states[:, 0] if reverse else states[:, -1], rtol=1e-10)


def test_chunk_longer_than_the_sequence_is_one_unpadded_chunk(x64):
  rng = np.random.default_rng(7)
  xs, coeffs, readout = _chunk_problem(rng, True, False)
  seen_lengths = []

  def recording_coeffs(xs_chunk):
    seen_lengths.append(xs_chunk[0].shape[1])
    return coeffs(xs_chunk)

  ys, _ = scan.chunked_linear_recurrence(recording_coeffs, readout, xs, chunk_size=128)
  a, b = coeffs(xs)
  np.testing.assert_allclose(ys, readout(scan.linear_recurrence(a, b), xs), rtol=1e-10)
  assert set(seen_lengths) == {45}


def test_chunked_rejects_bad_chunk_size():
  with pytest.raises(ValueError, match="chunk_size"):
    scan.chunked_linear_recurrence(lambda x: x, lambda s, x: s, jnp.ones((1, 4, 2)), chunk_size=0)
