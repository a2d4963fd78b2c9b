"""`pallas_recurrence`: the complex recurrence kernel against a sequential float64 loop.

The kernels run in the Pallas interpreter, in float64, on sizes that pad the sequence to whole
segments (several segments: the carries between them) and the states to whole blocks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ms_ssm_jax import pallas_recurrence

B, L, P = 2, 23, 5
# (segment, chunk, block_states): one segment; several segments of several chunks; 3 state blocks
OPTIONS = [(256, 8, 8), (8, 4, 2), (6, 3, 4)]


def _system(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Decays `a` `(P,)` inside the unit circle and inputs `b` `(B, L, P)`, complex128."""
  rng = np.random.default_rng(seed)
  a = rng.uniform(0.3, 0.99, P) * np.exp(1j * rng.uniform(-np.pi, np.pi, P))
  return a, rng.normal(size=(B, L, P)) + 1j * rng.normal(size=(B, L, P))


def _sequential(a: np.ndarray, b: np.ndarray, reverse: bool) -> np.ndarray:
  x, states = np.zeros(b.shape[::2], complex), np.zeros_like(b)
  for t in (reversed(range(b.shape[1])) if reverse else range(b.shape[1])):
    x = a * x + b[:, t]
    states[:, t] = x
  return states


def _pairs(a: np.ndarray, b: np.ndarray) -> tuple[jax.Array, jax.Array]:
  return jnp.stack([a.real, a.imag]), jnp.stack([b.real, b.imag], axis=1)


def _complex(x: jax.Array) -> np.ndarray:
  return np.asarray(x[:, 0] + 1j * x[:, 1])


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("segment, chunk, block_states", OPTIONS)
def test_equals_the_sequential_recurrence(x64, reverse, segment, chunk, block_states):
  a, b = _system()
  x = pallas_recurrence.linear_recurrence(*_pairs(a, b), reverse=reverse, segment=segment,
                                          chunk=chunk, block_states=block_states)
  assert x.shape == (B, 2, L, P) and x.dtype == jnp.float64
  np.testing.assert_allclose(_complex(x), _sequential(a, b, reverse), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_gradients_equal_those_of_the_sequential_recurrence(x64, reverse):
  a, b = _system(1)
  weights = np.random.default_rng(2).normal(size=(B, L, P, 2))

  def loss(states: jax.Array) -> jax.Array:  # a real loss of the complex states (B, L, P)
    return jnp.sum(states.real * weights[..., 0] + states.imag * weights[..., 1])

  def sequential(a_pair, b_pair):
    x, states = jnp.zeros((B, P), jnp.complex128), []
    a_c, b_c = a_pair[0] + 1j * a_pair[1], b_pair[:, 0] + 1j * b_pair[:, 1]
    for t in (reversed(range(L)) if reverse else range(L)):
      x = a_c * x + b_c[:, t]
      states.append(x)
    return loss(jnp.stack(states[::-1] if reverse else states, axis=1))

  def kernel(a_pair, b_pair):
    x = pallas_recurrence.linear_recurrence(a_pair, b_pair, reverse=reverse, segment=8, chunk=4,
                                            block_states=2)
    return loss(x[:, 0] + 1j * x[:, 1])

  want = jax.grad(sequential, argnums=(0, 1))(*_pairs(a, b))
  got = jax.grad(kernel, argnums=(0, 1))(*_pairs(a, b))
  for name, g, w in zip(("a", "b"), got, want):
    np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10, err_msg=name)


def test_causality():
  a, b = _system()
  later = b.copy()
  later[:, 9:] += 3.0
  run = lambda inputs: np.asarray(
      pallas_recurrence.linear_recurrence(*_pairs(a.astype(np.complex64), inputs), segment=4, chunk=
                                          2))
  np.testing.assert_array_equal(run(b)[:, :, :9], run(later)[:, :, :9])


@pytest.mark.parametrize("a_shape, b_shape, kwargs, message", [
    ((P,), (B, 2, L, P), {}, r"a must have shape \(2, P\)"),
    ((2, P), (B, L, P), {}, r"b must have shape \(B, 2, L, P\) with P = 5"),
    ((2, P), (B, 2, L, P), {"block_states": 3}, "block_states a power of 2"),
])
def test_bad_inputs_raise_one_line_errors(a_shape, b_shape, kwargs, message):
  with pytest.raises(ValueError, match=message):
    pallas_recurrence.linear_recurrence(jnp.zeros(a_shape), jnp.zeros(b_shape), **kwargs)
  with pytest.raises(ValueError, match="not complex arrays"):
    pallas_recurrence.linear_recurrence(jnp.zeros((2, P), jnp.complex64), jnp.zeros((B, 2, L, P)))
