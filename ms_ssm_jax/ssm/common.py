"""Pieces shared by the layers: input checks, padding masks, state counts, choice checks.

How a layer's recurrence is evaluated lives in `ms_ssm_jax.ssm.diagonal`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class StateCounts:
  """How much state a layer carries, for the parameter/state report of a model.

  Attributes:
    per_channel: states that each channel's output is read from (N for SISO layers, P for
      S5 whose states are shared by all channels), as counted in the layer's paper.
    total: distinct states in the layer (H N for SISO layers, P for S5), one direction.
    carried_floats: real numbers carried per sequence and step, over both directions of a
      bidirectional layer (a complex state counts 2).
  """
  per_channel: int
  total: int
  carried_floats: int


def check_inputs(u: Array, lengths: Array | None, d_model: int) -> None:
  """Raises a ValueError unless `u` is `(B, L, d_model)` and `lengths` is `(B,)` or None."""
  if u.ndim != 3 or u.shape[-1] != d_model:
    raise ValueError(f"expected inputs of shape (B, L, H={d_model}); got {u.shape}")
  if lengths is not None and lengths.shape != u.shape[:1]:
    raise ValueError(f"lengths must have shape (B,) = {u.shape[:1]}; got {lengths.shape}")


def zero_beyond_lengths(u: Array, lengths: Array | None) -> Array:
  """Zeroes the steps `t >= lengths[b]` of `u` `(B, L, ...)`.

  Before a reverse scan this makes the state at every valid step depend on valid inputs only:
  the recurrence is linear, so zero inputs after the end leave a zero state there.
  """
  if lengths is None:
    return u
  valid = jnp.arange(u.shape[1])[None, :] < lengths[:, None]
  return jnp.where(valid.reshape(valid.shape + (1,) * (u.ndim - 2)), u, jnp.zeros((), u.dtype))


def check_choice(field: str, value: str, choices: tuple[str, ...]) -> None:
  """Raises a ValueError naming the field and the valid choices when `value` is not one."""
  if value not in choices:
    raise ValueError(f"{field}={value!r} is not supported; choose one of {', '.join(choices)}")
