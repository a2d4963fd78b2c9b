"""Streaming inference: a whole model fed one sample at a time, a prediction after every sample.

    saved = evaluation.SavedModel.from_zoo("ms_ssm_japanese_vowels")
    model, variables = saved.model, saved.variables
    state = streaming.init_stream(model, variables, batch_size=1)
    step = jax.jit(functools.partial(streaming.stream_step, model))
    for t in range(length):
      state, logits = step(variables, state, inputs[:, t])     # (B, num_classes)

Each step costs the same whatever t is, and the state has a fixed size: per block the sequence
layer's state (`init_state`/`step` of the layer: SSM states, and MS-SSM's wavelet ring buffers),
the `mamba` block's conv window, and for `mean` pooling a running sum. Per step, as the parallel
pass in eval mode (`model.apply(variables, batch, train=False)`): the encoder, every block
(BatchNorm from its running averages, dropout off, the residual and channel mixing of
`blocks.py`), the final norm, the pooling and the head. The logits after step t equal the
parallel pass's on the first t+1 samples: `last` (and `none`) pooling reads step t's features,
`mean` the running mean of steps 0..t.

Bidirectional layers see the future and dual-sequence tasks compare two whole sequences; both
raise `check_streamable`'s error.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from ms_ssm_jax import blocks
from ms_ssm_jax import model as model_lib

Array = jax.Array
Variables = Mapping[str, Any]
StreamState = dict[str, Any]


def check_streamable(model: model_lib.SequenceModel) -> None:
  """Raises a ValueError when `model` cannot run one sample at a time, saying why."""
  if model.dual:
    raise ValueError("this model compares two whole sequences (a dual task such as LRA "
                     "Retrieval): it has no per-sample prediction to stream")
  if getattr(model.seq_layer, "bidirectional", False):
    raise ValueError(f"the model's {type(model.seq_layer).__name__} layers are bidirectional: "
                     "their outputs depend on future samples, so the model cannot stream one "
                     "sample at a time; stream a model trained with "
                     "layer_config.bidirectional=False")


def _subtree(variables: Variables, name: str) -> dict[str, Any]:
  """The variables of submodule `name`: every collection that has it."""
  return {collection: tree[name] for collection, tree in variables.items() if name in tree}


def _norm(model: model_lib.SequenceModel, variables: Variables, name: str, x: Array) -> Array:
  """The block's `Norm` in eval mode (BatchNorm from its running averages) on x `(B, H)`."""
  norm = blocks.Norm(model.norm, model.batchnorm_momentum, model.dtype, parent=None)
  valid = jnp.ones(x.shape[:1] + (1,), bool)
  return norm.apply(_subtree(variables, name), x[:, None], valid, False)[:, 0]


def _dense(model: model_lib.SequenceModel, params: Mapping[str, Any], features: int,
           x: Array, use_bias: bool = True) -> Array:
  layer = nn.Dense(features, use_bias=use_bias, dtype=model.dtype, param_dtype=jnp.float32,
                   parent=None)
  return layer.apply({"params": params}, x)


def _layer_step(model: model_lib.SequenceModel, variables: Variables, state: Any,
                u_t: Array) -> tuple[Any, Array]:
  state, y = model.seq_layer.apply(_subtree(variables, "seq_layer"), state, u_t, method="step")
  return state, y.astype(model.dtype)


def _sequence_block_step(model: model_lib.SequenceModel, variables: Variables,
                         state: dict[str, Any], x: Array) -> tuple[dict[str, Any], Array]:
  """`blocks.SequenceBlock` (multires, s5) on one step x `(B, H)`, in eval mode."""
  params, width = variables["params"], x.shape[-1]
  skip = x
  if model.prenorm:
    x = _norm(model, variables, "norm", x)
  layer_state, y = _layer_step(model, variables, state["layer"], x)
  g = nn.gelu(y)
  if model.activation == "glu":
    value, gate = jnp.split(_dense(model, params["glu"], 2 * width, g), 2, axis=-1)
    y = value * jax.nn.sigmoid(gate)
  elif model.activation == "half_glu1":
    y = g * jax.nn.sigmoid(_dense(model, params["gate"], width, g))
  elif model.activation == "half_glu2":
    y = y * jax.nn.sigmoid(_dense(model, params["gate"], width, g))
  else:
    y = g
  x = skip + y
  if not model.prenorm:
    x = _norm(model, variables, "norm", x)
  return {"layer": layer_state}, x


def _mamba_block_step(model: model_lib.SequenceModel, variables: Variables,
                      state: dict[str, Any], x: Array) -> tuple[dict[str, Any], Array]:
  """`blocks.MambaBlock` on one step x `(B, H)`; the conv reads a window of its last K inputs."""
  params, width = variables["params"], x.shape[-1]
  inner = model.mamba_expand * width
  h = _norm(model, variables, "norm", x)
  u, z = jnp.split(_dense(model, params["in_proj"], 2 * inner, h, use_bias=False), 2, axis=-1)
  new_state = {}
  if model.mamba_conv_kernel > 0:
    kernel = model.mamba_conv_kernel
    window = jnp.concatenate([state["conv_window"], u[:, None].astype(model.dtype)], axis=1)
    conv = nn.Conv(inner, kernel_size=(kernel,), padding=((kernel - 1, 0),),
                   feature_group_count=inner, dtype=model.dtype, param_dtype=jnp.float32,
                   parent=None)
    u = nn.silu(conv.apply({"params": params["conv"]}, window)[:, -1])
    new_state["conv_window"] = window[:, 1:]
  new_state["layer"], y = _layer_step(model, variables, state["layer"], u)
  y = _dense(model, params["out_proj"], width, y * nn.silu(z), use_bias=False)
  return new_state, x + y


def init_stream(model: model_lib.SequenceModel, variables: Variables,
                batch_size: int) -> StreamState:
  """The state before the first sample: zero layer states, conv windows and pooled sum."""
  check_streamable(model)
  block_states = []
  for index in range(model.num_layers):
    block_variables = _subtree(variables, f"blocks_{index}")
    state = {"layer": model.seq_layer.apply(_subtree(block_variables, "seq_layer"), batch_size,
                                            model.dtype, method="init_state")}
    if model.block == "mamba" and model.mamba_conv_kernel > 0:
      inner = model.mamba_expand * model.d_model
      state["conv_window"] = jnp.zeros((batch_size, model.mamba_conv_kernel - 1, inner),
                                       model.dtype)
    block_states.append(state)
  return {"blocks": tuple(block_states), "steps": jnp.zeros((), jnp.int32),
          "pooled_sum": jnp.zeros((batch_size, model.d_model), jnp.float32)}


def stream_step(model: model_lib.SequenceModel, variables: Variables, state: StreamState,
                inputs_t: Array) -> tuple[StreamState, Array]:
  """One sample of every sequence: inputs_t `(B,)` tokens or `(B, C)` features -> (state,
  float32 logits `(B, num_classes)`, the prediction from all samples so far)."""
  check_streamable(model)
  encoder = model_lib.Encoder(model.input_type, model.vocab_size, model.d_model, model.dtype,
                              parent=None)
  x = encoder.apply(_subtree(variables, "encoder"), inputs_t[:, None])[:, 0]
  block_step = _mamba_block_step if model.block == "mamba" else _sequence_block_step
  block_states = []
  for index, block_state in enumerate(state["blocks"]):
    block_state, x = block_step(model, _subtree(variables, f"blocks_{index}"), block_state, x)
    block_states.append(block_state)
  if model.prenorm:
    x = _norm(model, variables, "final_norm", x)
  x = x.astype(jnp.float32)
  steps = state["steps"] + 1
  pooled_sum = state["pooled_sum"] + x
  features = pooled_sum / steps.astype(jnp.float32) if model.pooling == "mean" else x
  head = nn.Dense(model.num_classes, dtype=jnp.float32, param_dtype=jnp.float32, parent=None)
  logits = head.apply(_subtree(variables, "head"), features)
  return {"blocks": tuple(block_states), "steps": steps, "pooled_sum": pooled_sum}, logits


def stream_logits(model: model_lib.SequenceModel, variables: Variables,
                  inputs: Array) -> Array:
  """The logits after every sample of `inputs` `(B, L)` or `(B, L, C)`: `(B, L, num_classes)`.

  `stream_step` over the whole sequence in one `jax.lax.scan` (jit it for speed).
  """
  def step(state, inputs_t):
    return stream_step(model, variables, state, inputs_t)

  state = init_stream(model, variables, inputs.shape[0])
  _, logits = jax.lax.scan(step, state, jnp.swapaxes(inputs, 0, 1))
  return jnp.swapaxes(logits, 0, 1)
