"""The scale mixer of MS-SSM: merges the num_streams stream outputs of each channel.

Karami et al., MS-SSM (COLM 2025, arXiv 2512.23824), sec. 3: `z_t = E_t . y_t` with
`E_t = Linear_E(x_t)`, a linear, input-dependent weighted sum with no softmax. Per channel h:

    linear_input    E_t = reshape(W_E u_t + b_E, (H, S'))   z_t[h] = sum_j E_t[h, j] y_t[h, j]
    static          z_t[h] = sum_j E[h, j] y_t[h, j]                        (paper's ablation)
    softmax_input   E_t[h] = softmax_j(reshape(W_E u_t + b_E, (H, S'))[h])  (paper's ablation)
    none            z_t[h] = sum_j y_t[h, j]

Shapes: stream outputs `y` `(B, L, H, S')`, layer input `u` `(B, L, H)`, `S'` streams;
`W_E` is `(H, H S')` with output index `h S' + j`.

Ours: `b_E = 1/S'` (the static weights likewise) and `W_E ~ N(0, (0.01)^2 / H)`, so that the
layer starts as the average of its streams; the softmax logits start at zero for the same
reason.

Stability (measured, README "ListOps"): `linear_input` makes the layer quadratic in its input.
In the paper's 20-layer post-norm ListOps model its gradient norm exploded within 25 steps of
the end of warmup on an H100 while the norm of `W_E` grew from 0.25 to 16.6; `static` and
`softmax_input` trained, so `configs/listops.py:ms_ssm` uses `static`. In a CPU-sized copy of
that model a 3x or 10x smaller learning rate for `W_E` alone (`config.optimizer.mixer_lr`, the
optimizer's `mixer` group) kept `linear_input` stable, but not at the paper's size: there the
gradient norm still reached 10^4-10^8 with it (H200, one epoch).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

MIXERS: tuple[str, ...] = ("linear_input", "static", "softmax_input", "none")

# Relative size of the input-dependent part of the weights at init (see module doc).
_KERNEL_INIT_SCALE = 0.01


def check_mixer(mixer: str) -> None:
  if mixer not in MIXERS:
    raise ValueError(f"unknown mixer {mixer!r}; known: {', '.join(MIXERS)}")


class ScaleMixer(nn.Module):
  """`(B, L, H, S')` stream outputs -> `(B, L, H)`, weighted as `mixer` says.

  Attributes:
    mixer: one of `MIXERS`.
  """

  mixer: str = "linear_input"

  @nn.compact
  def __call__(self, y: Array, u: Array) -> Array:
    """Mixes `y` `(B, L, H, S')` with weights from the layer input `u` `(B, L, H)`."""
    check_mixer(self.mixer)
    width, streams = y.shape[-2], y.shape[-1]
    if self.mixer == "none":
      return jnp.sum(y, axis=-1)
    if self.mixer == "static":
      weights = self.param("weights", nn.initializers.constant(1.0 / streams),
                           (width, streams), jnp.float32)
      return jnp.einsum("...hj,hj->...h", y, weights.astype(y.dtype))
    kernel = self.param("kernel", nn.initializers.normal(_KERNEL_INIT_SCALE / width**0.5),
                        (width, width * streams), jnp.float32)
    bias_value = 1.0 / streams if self.mixer == "linear_input" else 0.0
    bias = self.param("bias", nn.initializers.constant(bias_value), (width * streams,),
                      jnp.float32)
    weights = jnp.dot(u, kernel.astype(u.dtype)) + bias.astype(u.dtype)
    weights = weights.reshape(u.shape[:-1] + (width, streams))
    if self.mixer == "softmax_input":
      # Normalize in at least float32: bf16 exponentials of near-equal logits are coarse.
      softmax_dtype = jnp.promote_types(weights.dtype, jnp.float32)
      weights = jax.nn.softmax(weights.astype(softmax_dtype), axis=-1).astype(u.dtype)
    return jnp.einsum("...hj,...hj->...h", y, weights.astype(y.dtype))
