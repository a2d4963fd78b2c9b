"""The scale mixer of MS-SSM: merges the S' stream outputs of each channel.

Karami et al., MS-SSM (COLM 2025, arXiv 2512.23824), eq. 4: `z_t = E_t y_t` with
`E_t = Linear_E(x_t) in R^{1 x S'}`, a linear, input-dependent weighted sum with no softmax.
The paper defines the layer on a one-dimensional sequence (sec. 2.2, App. A.1: `x_t in R`), so
E is per channel: an affine map of that channel's own input value. Per channel h:

    linear_input        E_t[h, j] = w[h, j] u_t[h] + b[h, j]                (paper, eq. 4)
    static              E[h, j] = b[h, j]                                   (paper's ablation)
    softmax_input       E_t[h] = softmax_j(reshape(W_E u_t + b_E, (H, S'))[h])  (paper's ablation)
    linear_input_dense  E_t = reshape(W_E u_t + b_E, (H, S'))               (ours, earlier reading)
    none                E[h, j] = 1
    z_t[h] = sum_j E_t[h, j] y_t[h, j]

Shapes: stream outputs `y` `(B, L, H, S')`, layer input `u` `(B, L, H)`; `w`, `b` `(H, S')`;
`W_E` `(H, H S')` with output index `h S' + j`.

Ours: `b = 1/S'` and a small input-dependent part (`w ~ N(0, 0.01^2)`, `W_E ~ N(0, 0.01^2/H)`),
so that the layer starts as the average of its streams; the softmax logits start at zero.
`linear_input_dense` (H x H S' weights, 82.6k a layer at H=128) was this project's first
reading of eq. 4; the released models of that time use it. docs/RESULTS.md ("The scale mixer")
has the stability measurements of both forms.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

MIXERS: tuple[str, ...] = ("linear_input", "static", "softmax_input", "linear_input_dense",
                           "none")
# Mixers with a linear input-dependent term `sum_j E^u_t[h, j] y_t[h, j]`, where the weights
# E^u depend linearly on u (the part whose size `input_ratio` tracks).
LINEAR_INPUT_MIXERS: tuple[str, ...] = ("linear_input", "linear_input_dense")

# Relative size of the input-dependent part of the weights at init (see module doc).
_INPUT_WEIGHT_INIT_SCALE = 0.01


def check_mixer(mixer: str) -> None:
  if mixer not in MIXERS:
    raise ValueError(f"unknown mixer {mixer!r}; known: {', '.join(MIXERS)}")


class ScaleMixer(nn.Module):
  """`(B, L, H, S')` stream outputs -> `(B, L, H)`, weighted as `mixer` says.

  Attributes:
    mixer: one of `MIXERS`.
  """

  mixer: str = "linear_input"

  def __call__(self, y: Array, u: Array) -> Array:
    """Mixes `y` `(B, L, H, S')` with weights from the layer input `u` `(B, L, H)`."""
    input_term, constant_term = self.terms(y, u)
    return constant_term if input_term is None else input_term + constant_term

  @nn.compact
  def terms(self, y: Array, u: Array) -> tuple[Array | None, Array]:
    """The mixed output split as `(input_term, constant_term)`, each `(B, L, H)`.

    For the `LINEAR_INPUT_MIXERS`, `input_term` is the part whose weights depend on u and
    `constant_term` the bias part; for the others `input_term` is None and `constant_term`
    is the whole output.
    """
    check_mixer(self.mixer)
    width, streams = y.shape[-2], y.shape[-1]
    if self.mixer == "none":
      return None, jnp.sum(y, axis=-1)
    if self.mixer in ("static", "linear_input"):
      name = "weights" if self.mixer == "static" else "bias"
      bias = self.param(name, nn.initializers.constant(1.0 / streams), (width, streams),
                        jnp.float32)
      constant_term = jnp.einsum("...hj,hj->...h", y, bias.astype(y.dtype))
      if self.mixer == "static":
        return None, constant_term
      weight = self.param("weight", nn.initializers.normal(_INPUT_WEIGHT_INIT_SCALE),
                          (width, streams), jnp.float32)
      input_term = u.astype(y.dtype) * jnp.einsum("...hj,hj->...h", y, weight.astype(y.dtype))
      return input_term, constant_term
    kernel = self.param("kernel",
                        nn.initializers.normal(_INPUT_WEIGHT_INIT_SCALE / width**0.5),
                        (width, width * streams), jnp.float32)
    bias_value = 1.0 / streams if self.mixer == "linear_input_dense" else 0.0
    bias = self.param("bias", nn.initializers.constant(bias_value), (width * streams,),
                      jnp.float32)
    input_weights = jnp.dot(u, kernel.astype(u.dtype)).reshape(u.shape[:-1] + (width, streams))
    bias = bias.reshape(width, streams)
    if self.mixer == "softmax_input":
      # Normalize in at least float32: bf16 exponentials of near-equal logits are coarse.
      softmax_dtype = jnp.promote_types(u.dtype, jnp.float32)
      weights = jax.nn.softmax((input_weights + bias).astype(softmax_dtype), axis=-1)
      return None, jnp.einsum("...hj,...hj->...h", y, weights.astype(y.dtype))
    input_term = jnp.einsum("...hj,...hj->...h", y, input_weights.astype(y.dtype))
    constant_term = jnp.einsum("...hj,hj->...h", y, bias.astype(y.dtype))
    return input_term, constant_term


def input_ratio(input_term: Array, rest: Array, lengths: Array | None = None) -> Array:
  """`mean |input_term| / mean |rest|` over the batch's valid steps, a float32 scalar.

  The size of a linear-input mixer's input-dependent term against the layer's linear paths
  (`rest` = the bias part plus the D skip). Above ~1 it warned of the gradient explosion of
  the paper-size ListOps model about 25 steps ahead (docs/RESULTS.md).
  """
  num = jnp.abs(input_term.astype(jnp.float32))
  den = jnp.abs(rest.astype(jnp.float32))
  if lengths is not None:
    valid = (jnp.arange(num.shape[1])[None, :] < lengths[:, None])[..., None]
    num, den = num * valid, den * valid
  return jnp.sum(num) / jnp.maximum(jnp.sum(den), jnp.finfo(jnp.float32).tiny)
