r"""Mean mixing distance of a sequence layer (MS-SSM paper, sec. 3.1).

For output position m and channel h, with J the Jacobian of the layer map,

    d(m) = sum_n |J_{m,n}| (m - n) / sum_n |J_{m,n}|,   |J_{m,n}| = sum_h' |d y[m, h] / d u[n, h']|

(the paper prints `|sum J|` in the denominator; we normalize by `sum |J|` so that the weights
form a distribution over input positions). The script reports d(L), at the last position,
averaged over channels and random input sequences, for an MS-SSM layer at init and for the
same layer without the decomposition (`num_levels=0`, one stream with all the state).

Usage:
  python scripts/mixing_distance.py --d_model=32 --length=512 --state_per_stream=16 \
      --num_levels=3 --kernel_size=4 --backbone=s4d_real
"""

from __future__ import annotations

from typing import Callable

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from ms_ssm_jax.ms_ssm import MSSSMLayer

Array = jax.Array

_D_MODEL = flags.DEFINE_integer("d_model", 32, "H, channels.")
_LENGTH = flags.DEFINE_integer("length", 512, "L, sequence length.")
_BATCH = flags.DEFINE_integer("batch", 4, "Random input sequences to average over.")
_NUM_LEVELS = flags.DEFINE_integer("num_levels", 3, "S, wavelet levels.")
_KERNEL_SIZE = flags.DEFINE_integer("kernel_size", 4, "K, wavelet filter taps.")
_STATE = flags.DEFINE_integer("state_per_stream", 16, "N, states per stream.")
_BACKBONE = flags.DEFINE_string("backbone", "s4d_real", "Stream SSM backbone.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the init and the inputs.")


def mixing_distances(apply_fn: Callable[[Array], Array], u: Array, position: int = -1) -> Array:
  """d(m) per sequence and output channel: `(B, H)`.

  Args:
    apply_fn: the layer map `(B, L, H) -> (B, L, H)`, sequences independent of each other
      (evaluation mode: no batch statistics).
    u: `(B, L, H)` inputs at which the Jacobian is taken.
    position: m, the output position (default: the last).
  """
  length = u.shape[1]
  m = position % length

  def input_gradient(channel: Array) -> Array:
    # Sequences are independent, so the gradient of the batch sum holds every sequence's row.
    return jax.grad(lambda x: jnp.sum(apply_fn(x)[:, m, channel]))(u)  # (B, L, H)

  jacobian = jax.lax.map(input_gradient, jnp.arange(u.shape[2]))  # (H_out, B, L, H_in)
  weights = jnp.sum(jnp.abs(jacobian), axis=-1)  # (H_out, B, L)
  lag = m - jnp.arange(length)
  return (jnp.sum(weights * lag, axis=-1) / jnp.sum(weights, axis=-1)).T


def _layer_distance(layer: MSSSMLayer, u: Array, key: Array) -> float:
  params = layer.init(key, u)
  apply_fn = jax.jit(lambda x: layer.apply(params, x))
  return float(jnp.mean(mixing_distances(apply_fn, u)))


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  key_init, key_input = jax.random.split(jax.random.key(_SEED.value))
  u = jax.random.normal(key_input, (_BATCH.value, _LENGTH.value, _D_MODEL.value))
  multiscale = MSSSMLayer(d_model=_D_MODEL.value, num_levels=_NUM_LEVELS.value,
                          kernel_size=_KERNEL_SIZE.value, state_per_stream=_STATE.value,
                          backbone=_BACKBONE.value)
  plain = multiscale.clone(num_levels=0, state_per_stream=multiscale.num_streams * _STATE.value)
  print(f"mean mixing distance d(L), L={_LENGTH.value}, at init, "
        f"averaged over {_D_MODEL.value} channels x {_BATCH.value} sequences")
  for name, layer in [(f"MS-SSM, S={_NUM_LEVELS.value}", multiscale),
                      ("backbone only, S=0", plain)]:
    counts = layer.state_counts()
    print(f"  {name:<22} ({counts.per_channel} states per channel): "
          f"{_layer_distance(layer, u, key_init):8.2f}")


if __name__ == "__main__":
  app.run(main)
