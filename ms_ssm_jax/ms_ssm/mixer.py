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

MIXERS: tuple[str, ...] = ("linear_input", "static", "softmax_input", "linear_input_dense", "none")
# Mixers whose weights are per channel, `E_t[h, j] = w[h, j] u_t[h] + b[h, j]` (w = 0 for
# `static`; w = 0 and b = 1 for `none`): `ScaleMixer.channel_weights`.
PER_CHANNEL_MIXERS: tuple[str, ...] = ("linear_input", "static", "none")

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

  def terms(self, y: Array, u: Array) -> tuple[Array | None, Array]:
    """The mixed output split as `(input_term, constant_term)`, each `(B, L, H)`.

    For `linear_input` and `linear_input_dense`, `input_term` is the part whose weights depend
    on u and `constant_term` the bias part; for the others `input_term` is None and
    `constant_term` is the whole output.
    """
    width, streams = y.shape[-2], y.shape[-1]
    per_channel = self.channel_weights(width, streams)
    if per_channel is not None:
      weight, bias = per_channel
      constant_term = jnp.einsum("...hj,hj->...h", y, bias.astype(y.dtype))
      if weight is None:
        return None, constant_term
      input_term = u.astype(y.dtype) * jnp.einsum("...hj,hj->...h", y, weight.astype(y.dtype))
      return input_term, constant_term
    params = self.weights(width, streams)
    input_weights = jnp.dot(u, params["kernel"].astype(u.dtype))
    input_weights = input_weights.reshape(u.shape[:-1] + (width, streams))
    bias = params["bias"].reshape(width, streams)
    if self.mixer == "softmax_input":
      # Normalize in at least float32: bf16 exponentials of near-equal logits are coarse.
      softmax_dtype = jnp.promote_types(u.dtype, jnp.float32)
      weights = jax.nn.softmax((input_weights + bias).astype(softmax_dtype), axis=-1)
      return None, jnp.einsum("...hj,...hj->...h", y, weights.astype(y.dtype))
    input_term = jnp.einsum("...hj,...hj->...h", y, input_weights.astype(y.dtype))
    constant_term = jnp.einsum("...hj,hj->...h", y, bias.astype(y.dtype))
    return input_term, constant_term

  def channel_weights(self, width: int, streams: int) -> tuple[Array | None, Array] | None:
    """`(w, b)`, each `(H, S')`, of a `PER_CHANNEL_MIXERS` mixer, `E_t[h, j] = w[h, j] u_t[h] +
    b[h, j]` (w None where E does not depend on u); None for the mixers that mix channels."""
    if self.mixer not in PER_CHANNEL_MIXERS:
      return None
    params = self.weights(width, streams)
    if self.mixer == "none":
      return None, jnp.ones((width, streams), jnp.float32)
    if self.mixer == "static":
      return None, params["weights"]
    return params["weight"], params["bias"]

  @nn.compact
  def weights(self, width: int, streams: int) -> dict[str, Array]:
    """The mixer's parameters by name, float32 (none for `none`); callable without `y`, so
    that the layer's folded convolution (`folded_conv`) can fold them into its kernels."""
    check_mixer(self.mixer)
    if self.mixer == "none":
      return {}
    if self.mixer in ("static", "linear_input"):
      name = "weights" if self.mixer == "static" else "bias"
      params = {
          name:
              self.param(name, nn.initializers.constant(1.0 / streams), (width, streams),
                         jnp.float32)
      }
      if self.mixer == "linear_input":
        params["weight"] = self.param("weight", nn.initializers.normal(_INPUT_WEIGHT_INIT_SCALE),
                                      (width, streams), jnp.float32)
      return params
    kernel = self.param("kernel", nn.initializers.normal(_INPUT_WEIGHT_INIT_SCALE / width**0.5),
                        (width, width * streams), jnp.float32)
    bias_value = 1.0 / streams if self.mixer == "linear_input_dense" else 0.0
    bias = self.param("bias", nn.initializers.constant(bias_value), (width * streams,), jnp.float32)
    return {"kernel": kernel, "bias": bias}


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
