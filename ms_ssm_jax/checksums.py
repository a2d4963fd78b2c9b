"""Checksums and finiteness of array pytrees, in one jitted pass on the devices.

`checkpointing.py` records the checksums of the arrays it saves and recomputes them on the
arrays it restores, so a flipped bit or a damaged file in a checkpoint is an error and not a
silently different model. The arrays never leave the devices: only one bool and two words
per array come back to the host.

The checksum of an array is two 32-bit sums over its bit patterns w[i] (one or two uint32
words per element): sum((2i + 1) w[i]) and sum(m_i mix(w[i])) with odd weights m_i. A
single flipped bit changes w[i] by +-2^k, which an odd weight keeps nonzero modulo 2^32, so
the first sum always sees it; the second makes a collision of larger damage unlikely (2^-64).
Integer sums wrap and are associative, so the result does not depend on the sharding.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_GOLDEN = 0x9E3779B1  # odd; spreads consecutive positions over the 32-bit range


def _words(x: jax.Array) -> jax.Array:
  """The bit patterns of `x` as a flat uint32 vector (itemsize 1, 2, 4 or 8)."""
  x = jnp.asarray(x)
  if x.dtype == jnp.bool_:
    return x.reshape(-1).astype(jnp.uint32)
  narrow = {1: jnp.uint8, 2: jnp.uint16}
  if x.dtype.itemsize in narrow:
    return jax.lax.bitcast_convert_type(x, narrow[x.dtype.itemsize]).reshape(-1).astype(jnp.uint32)
  if x.dtype.itemsize in (4, 8):  # 8-byte elements become (..., 2) words
    return jax.lax.bitcast_convert_type(x, jnp.uint32).reshape(-1)
  raise TypeError(f"cannot checksum arrays of dtype {x.dtype}")


def _checksum(x: jax.Array) -> jax.Array:
  """(2,) uint32: the two sums of the module docstring."""
  words = _words(x)
  position = jnp.arange(words.shape[0], dtype=jnp.uint32)
  first = jnp.sum(words * (position * jnp.uint32(2) + jnp.uint32(1)), dtype=jnp.uint32)
  mixed = words ^ (words >> jnp.uint32(15)) ^ (words << jnp.uint32(11))
  second = jnp.sum(mixed * (position * jnp.uint32(_GOLDEN) | jnp.uint32(1)), dtype=jnp.uint32)
  return jnp.stack([first, second])


@jax.jit
def _summarize(leaves: list[jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
  finite = [
      jnp.all(jnp.isfinite(x)) if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.bool_(True)
      for x in leaves
  ]
  if not leaves:
    return jnp.bool_(True), jnp.zeros((0,), jnp.bool_), jnp.zeros((0, 2), jnp.uint32)
  finite = jnp.stack(finite)
  return jnp.all(finite), finite, jnp.stack([_checksum(x) for x in leaves])


def summarize(leaves: list[Any]) -> tuple[bool, list[bool], list[str]]:
  """Whether every array is finite, which ones are, and their checksums (16 hex digits).

  Args:
    leaves: arrays (sharded `jax.Array`s or host numpy arrays), e.g. `jax.tree.leaves`.
  """
  all_finite, finite, sums = jax.device_get(_summarize(list(leaves)))
  return (bool(all_finite), [bool(f) for f in np.asarray(finite)],
          [f"{int(a):08x}{int(b):08x}" for a, b in np.asarray(sums)])
