"""Residual blocks around a sequence layer, and the norms they use.

Every block maps `x (B, L, H)` to `(B, L, H)` given `valid (B, L)` (True at steps
`t < lengths[b]`) and `lengths (B,)`. Blocks feed the sequence layer zeros at padded steps, so a
layer sees the same input whatever the padding holds, and BatchNorm takes its batch statistics
over valid steps only: with a causal layer, outputs at valid steps do not depend on padding.

Blocks (`BLOCKS`):
  `multires`  MultiresConv's block, which MS-SSM follows (docs/PAPER.md, "Block"):
              post-norm `x -> layer -> GELU -> dropout -> Dense(H->2H) -> GLU -> dropout
              -> + x -> norm`; pre-norm moves the norm before the layer.
  `s5`        S5's block (Smith et al. 2023): the same residual scaffold with S5's channel
              mixing choices, and dropout with one mask per (example, channel) shared over all
              time steps, as S5's reference draws it.
  `mamba`     Mamba's block (Gu and Dao 2023), always pre-norm:
              `x + out_proj(layer(SiLU(conv(x'))) * SiLU(z))`, `[x', z] = in_proj(norm(x))`.
              With `conv_kernel = 0` the conv and its SiLU both go: the layer gets x'. This is
              MS-SSM (S6)'s block (docs/PAPER.md, "Block"): its decomposition replaces the conv,
              and the layer applies the SiLU to its bands (`band_activation="silu"`) while its
              S6 projections read x' itself.

Channel mixing of `multires` and `s5` (`activation`), with `g = dropout(GELU(y))` for the
layer output y:
  `glu`        `W1 g * sigmoid(W2 g)` (S5's full_glu; with multires, MultiresConv's Dense+GLU);
  `half_glu1`  `g * sigmoid(W g)`;   `half_glu2`  `y * sigmoid(W g)`;   `gelu`  `g`;
followed by a second dropout.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

NORMS: tuple[str, ...] = ("batch", "layer")
ACTIVATIONS: tuple[str, ...] = ("glu", "half_glu1", "half_glu2", "gelu")


class Norm(nn.Module):
  """BatchNorm over valid steps (stats in `batch_stats`) or LayerNorm over channels.

  Attributes:
    kind: "batch" or "layer".
    momentum: decay of BatchNorm's running averages (flax convention: new = m old + (1-m) batch).
    dtype: compute dtype of the output; statistics are reduced in float32.
  """
  kind: str
  momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, valid: Array, train: bool) -> Array:
    """x (B, L, H), valid (B, L) -> (B, L, H)."""
    if self.kind == "layer":
      return nn.LayerNorm(dtype=self.dtype, param_dtype=jnp.float32, name="layer_norm")(x)
    if self.kind == "batch":
      return nn.BatchNorm(use_running_average=not train, momentum=self.momentum, dtype=self.dtype,
                          param_dtype=jnp.float32, name="batch_norm")(x, mask=valid[..., None])
    raise ValueError(f"norm={self.kind!r} is not supported; choose one of {', '.join(NORMS)}")


def zero_padding(x: Array, valid: Array) -> Array:
  """`x` (B, L, H) with zeros at the steps where `valid` (B, L) is False."""
  return jnp.where(valid[..., None], x, jnp.zeros((), x.dtype))


class SequenceBlock(nn.Module):
  """The `multires` and `s5` blocks (module docstring); the two differ in the dropout mask.

  Attributes:
    seq_layer: the sequence layer (an unbound prototype; the block names its copy "seq_layer").
    norm: "batch" or "layer".
    prenorm: normalize the block input instead of the residual sum.
    batchnorm_momentum: see `Norm`.
    activation: one of `ACTIVATIONS`.
    dropout: dropout rate.
    dropout_shared_over_time: one dropout mask per (example, channel) for all steps (S5).
    dtype: compute dtype.
  """
  seq_layer: nn.Module
  norm: str
  prenorm: bool
  batchnorm_momentum: float
  activation: str
  dropout: float
  dropout_shared_over_time: bool
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, valid: Array, lengths: Array, train: bool) -> Array:
    """x (B, L, H), valid (B, L), lengths (B,) -> (B, L, H)."""
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"activation={self.activation!r} is not supported; choose one of "
                       f"{', '.join(ACTIVATIONS)}")
    width = x.shape[-1]
    norm = Norm(self.norm, self.batchnorm_momentum, self.dtype, name="norm")
    drop = nn.Dropout(self.dropout, broadcast_dims=(1,) if self.dropout_shared_over_time else (),
                      deterministic=not train)
    dense: Callable[..., nn.Dense] = lambda features, name: nn.Dense(
        features, dtype=self.dtype, param_dtype=jnp.float32, name=name)

    skip = x
    if self.prenorm:
      x = norm(x, valid, train)
    y = self.seq_layer.copy(name="seq_layer")(zero_padding(x, valid), lengths).astype(self.dtype)
    g = drop(nn.gelu(y))
    if self.activation == "glu":
      value, gate = jnp.split(dense(2 * width, "glu")(g), 2, axis=-1)
      y = value * jax.nn.sigmoid(gate)
    elif self.activation == "half_glu1":
      y = g * jax.nn.sigmoid(dense(width, "gate")(g))
    elif self.activation == "half_glu2":
      y = y * jax.nn.sigmoid(dense(width, "gate")(g))
    else:
      y = g
    x = skip + drop(y)
    if not self.prenorm:
      x = norm(x, valid, train)
    return x


class MambaBlock(nn.Module):
  """The `mamba` block (module docstring): pre-norm residual around in_proj, conv, layer, gate.

  Attributes:
    seq_layer: the sequence layer, of width `expand * H` (unbound prototype).
    norm: "batch" or "layer".
    batchnorm_momentum: see `Norm`.
    expand: inner width over H.
    conv_kernel: causal depthwise conv kernel size; 0 means no conv and no SiLU (MS-SSM,
      whose decomposition takes the conv's place).
    dropout: dropout rate on the block output (Mamba has none; 0 reproduces it).
    dtype: compute dtype.
  """
  seq_layer: nn.Module
  norm: str
  batchnorm_momentum: float
  expand: int
  conv_kernel: int
  dropout: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, valid: Array, lengths: Array, train: bool) -> Array:
    """x (B, L, H), valid (B, L), lengths (B,) -> (B, L, H)."""
    width = x.shape[-1]
    inner = self.expand * width
    h = Norm(self.norm, self.batchnorm_momentum, self.dtype, name="norm")(x, valid, train)
    xz = nn.Dense(2 * inner, use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
                  name="in_proj")(h)
    u, z = jnp.split(xz, 2, axis=-1)
    if self.conv_kernel > 0:
      u = nn.silu(
          nn.Conv(inner, kernel_size=(self.conv_kernel,), padding=((self.conv_kernel - 1, 0),),
                  feature_group_count=inner, dtype=self.dtype, param_dtype=jnp.float32,
                  name="conv")(u))
    y = self.seq_layer.copy(name="seq_layer")(zero_padding(u, valid), lengths).astype(self.dtype)
    y = y * nn.silu(z)
    y = nn.Dense(width, use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
                 name="out_proj")(y)
    return x + nn.Dropout(self.dropout, deterministic=not train)(y)
