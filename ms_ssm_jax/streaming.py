"""Streaming inference: a whole model fed one sample at a time, a prediction after every sample.

    saved = evaluation.SavedModel.from_zoo("ms_ssm_japanese_vowels")
    model = saved.model
    prepared = streaming.prepare(model, saved.variables)      # once: decode-ready arrays
    state = streaming.init_stream(model, saved.variables, batch_size=1)
    step = streaming.jit_step(model)                          # jitted once, the state donated
    for t in range(length):
      state, logits = step(prepared, state, inputs[:, t])     # (B, num_classes)

`prepare` turns the variables into what a step reads (`Prepared`, a pytree of arrays): every
time-invariant sequence layer discretized (A_bar, B_bar, C, D; MS-SSM's filters broadcast,
its streams discretized, its mixer's weights), BatchNorm's inference-mode affine map folded
into one scale and shift per channel, the other weights as they are. S6 layers and streams
keep their projections: their Delta, B and C depend on each step's input.

Each step costs the same whatever t is, and the state has a fixed size: per block the sequence
layer's state (`init_state` of the layer: SSM states, and MS-SSM's wavelet ring buffers), the
`mamba` block's conv window, and for `mean` pooling a running sum. `jit_step` donates the state,
so XLA updates its buffers in place instead of copying them (a donated state is consumed: keep
only the returned one). Per step, as the parallel pass in eval mode (`model.apply(variables,
batch, train=False)`): the encoder, every block (BatchNorm from its running averages, dropout
off, the residual and channel mixing of `blocks.py`), the final norm, the pooling and the head.
The logits after step t equal the parallel pass's on the first t+1 samples: `last` (and
`none`) pooling reads step t's features, `mean` the running mean of steps 0..t.

`stream_step(model, variables, state, inputs_t)` is the same step from the raw variables; it
prepares them at every call, which costs a discretization of every layer per sample.

Bidirectional layers see the future and dual-sequence tasks compare two whole sequences; both
raise `check_streamable`'s error.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from ms_ssm_jax import model as model_lib
from ms_ssm_jax.ms_ssm import layer as ms_ssm_layer
from ms_ssm_jax.ms_ssm import recurrent as ms_ssm_recurrent
from ms_ssm_jax.ssm import lru
from ms_ssm_jax.ssm import recurrent as ssm_recurrent
from ms_ssm_jax.ssm import s4d
from ms_ssm_jax.ssm import s5
from ms_ssm_jax.ssm import s6

Array = jax.Array
Variables = Mapping[str, Any]
StreamState = dict[str, Any]
Prepared = dict[str, Any]

# Layer class -> its `prepare(layer, params)`, whose result has `step(state, u_t)`.
_LAYER_PREPARE: Mapping[type, Callable[[Any, Any], Any]] = {
    s4d.S4D: ssm_recurrent.s4d_prepare,
    s5.S5: functools.partial(ssm_recurrent.s5_prepare, clip_eigs_max_real=s5.CLIP_EIGS_MAX_REAL),
    lru.LRU: ssm_recurrent.lru_prepare,
    s6.S6: ssm_recurrent.s6_prepare,
    ms_ssm_layer.MSSSMLayer: ms_ssm_recurrent.prepare,
}


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


def prepare_layer(layer: nn.Module, params: Mapping[str, Any]) -> Any:
  """A causal sequence layer's parameters (`variables["params"]`) ready to step: an object
  with `step(state, u_t `(B, H)`) -> (state, y_t)` on the states of the layer's `init_state`."""
  if type(layer) not in _LAYER_PREPARE:
    known = ", ".join(cls.__name__ for cls in _LAYER_PREPARE)
    raise ValueError(f"{type(layer).__name__} has no recurrent form to stream; streamable "
                     f"layers: {known}")
  return _LAYER_PREPARE[type(layer)](layer, params)


def _subtree(variables: Variables, name: str) -> dict[str, Any]:
  """The variables of submodule `name`: every collection that has it."""
  return {collection: tree[name] for collection, tree in variables.items() if name in tree}


def _prepare_norm(model: model_lib.SequenceModel, variables: Variables) -> dict[str, Array]:
  """A block's `Norm` for inference: BatchNorm's running-average affine map folded into
  `scale`, `shift` `(H,)` (float32); LayerNorm's parameters (it normalizes each step)."""
  if model.norm == "layer":
    return dict(variables["params"]["layer_norm"])
  stats, params = variables["batch_stats"]["batch_norm"], variables["params"]["batch_norm"]
  scale = params["scale"] * jax.lax.rsqrt(stats["var"] + nn.BatchNorm.epsilon)
  return {"scale": scale, "shift": params["bias"] - stats["mean"] * scale}


def _norm(model: model_lib.SequenceModel, prepared: Mapping[str, Array], x: Array) -> Array:
  """The prepared `Norm` on one step x `(B, H)`, in the model's dtype."""
  if model.norm == "layer":
    layer_norm = nn.LayerNorm(dtype=model.dtype, param_dtype=jnp.float32, parent=None)
    return layer_norm.apply({"params": prepared}, x)
  y = x.astype(jnp.float32) * prepared["scale"] + prepared["shift"]
  return y.astype(model.dtype)


def _dense(model: model_lib.SequenceModel, params: Mapping[str, Any], features: int, x: Array,
           use_bias: bool = True) -> Array:
  layer = nn.Dense(features, use_bias=use_bias, dtype=model.dtype, param_dtype=jnp.float32,
                   parent=None)
  return layer.apply({"params": params}, x)


def _prepare_block(model: model_lib.SequenceModel, variables: Variables) -> dict[str, Any]:
  """One block's norm and sequence layer prepared; its dense and conv weights as stored."""
  params = variables["params"]
  block = {
      "norm": _prepare_norm(model, _subtree(variables, "norm")),
      "layer": prepare_layer(model.seq_layer, params["seq_layer"])
  }
  block.update(
      {name: params[name] for name in ("glu", "gate", "in_proj", "out_proj") if name in params})
  if model.block == "mamba" and model.mamba_conv_kernel > 0:
    block["conv"] = {"kernel": params["conv"]["kernel"][:, 0], "bias": params["conv"]["bias"]}
  return block


def prepare(model: model_lib.SequenceModel, variables: Variables) -> Prepared:
  """The model's variables ready for `step` (module docstring); compute it once per model."""
  check_streamable(model)
  prepared = {
      "encoder":
          _subtree(variables, "encoder"),
      "blocks":
          tuple(
              _prepare_block(model, _subtree(variables, f"blocks_{index}"))
              for index in range(model.num_layers)),
      "head":
          _subtree(variables, "head"),
  }
  if model.prenorm:
    prepared["final_norm"] = _prepare_norm(model, _subtree(variables, "final_norm"))
  return prepared


def _layer_step(model: model_lib.SequenceModel, prepared: Any, state: Any,
                u_t: Array) -> tuple[Any, Array]:
  state, y = prepared.step(state, u_t)
  return state, y.astype(model.dtype)


def _sequence_block_step(model: model_lib.SequenceModel, block: Mapping[str, Any],
                         state: dict[str, Any], x: Array) -> tuple[dict[str, Any], Array]:
  """`blocks.SequenceBlock` (multires, s5) on one step x `(B, H)`, in eval mode."""
  width = x.shape[-1]
  skip = x
  if model.prenorm:
    x = _norm(model, block["norm"], x)
  layer_state, y = _layer_step(model, block["layer"], state["layer"], x)
  g = nn.gelu(y)
  if model.activation == "glu":
    value, gate = jnp.split(_dense(model, block["glu"], 2 * width, g), 2, axis=-1)
    y = value * jax.nn.sigmoid(gate)
  elif model.activation == "half_glu1":
    y = g * jax.nn.sigmoid(_dense(model, block["gate"], width, g))
  elif model.activation == "half_glu2":
    y = y * jax.nn.sigmoid(_dense(model, block["gate"], width, g))
  else:
    y = g
  x = skip + y
  if not model.prenorm:
    x = _norm(model, block["norm"], x)
  return {"layer": layer_state}, x


def _mamba_block_step(model: model_lib.SequenceModel, block: Mapping[str, Any],
                      state: dict[str, Any], x: Array) -> tuple[dict[str, Any], Array]:
  """`blocks.MambaBlock` on one step x `(B, H)`; the conv reads a window of its last K inputs."""
  width = x.shape[-1]
  inner = model.mamba_expand * width
  h = _norm(model, block["norm"], x)
  u, z = jnp.split(_dense(model, block["in_proj"], 2 * inner, h, use_bias=False), 2, axis=-1)
  new_state = {}
  if model.mamba_conv_kernel > 0:
    window = jnp.concatenate([state["conv_window"], u[:, None].astype(model.dtype)], axis=1)
    # The causal conv's output at the window's last sample: tap k reads window[:, k].
    conv = jnp.einsum("bkc,kc->bc", window, block["conv"]["kernel"].astype(model.dtype))
    u = nn.silu(conv + block["conv"]["bias"].astype(model.dtype))
    new_state["conv_window"] = window[:, 1:]
  new_state["layer"], y = _layer_step(model, block["layer"], state["layer"], u)
  y = _dense(model, block["out_proj"], width, y * nn.silu(z), use_bias=False)
  return new_state, x + y


def init_stream(model: model_lib.SequenceModel, variables: Variables,
                batch_size: int) -> StreamState:
  """The state before the first sample: zero layer states, conv windows and pooled sum."""
  check_streamable(model)
  block_states = []
  for index in range(model.num_layers):
    block_variables = _subtree(variables, f"blocks_{index}")
    state = {
        "layer":
            model.seq_layer.apply(_subtree(block_variables, "seq_layer"), batch_size, model.dtype,
                                  method="init_state")
    }
    if model.block == "mamba" and model.mamba_conv_kernel > 0:
      inner = model.mamba_expand * model.d_model
      state["conv_window"] = jnp.zeros((batch_size, model.mamba_conv_kernel - 1, inner),
                                       model.dtype)
    block_states.append(state)
  return {
      "blocks": tuple(block_states), "steps": jnp.zeros((), jnp.int32), "pooled_sum": jnp.zeros(
          (batch_size, model.d_model), jnp.float32)
  }


def step(model: model_lib.SequenceModel, prepared: Prepared, state: StreamState,
         inputs_t: Array) -> tuple[StreamState, Array]:
  """One sample of every sequence: inputs_t `(B,)` tokens or `(B, C)` features -> (state,
  float32 logits `(B, num_classes)`, the prediction from all samples so far)."""
  check_streamable(model)
  encoder = model_lib.Encoder(model.input_type, model.vocab_size, model.d_model, model.dtype,
                              parent=None)
  x = encoder.apply(prepared["encoder"], inputs_t[:, None])[:, 0]
  block_step = _mamba_block_step if model.block == "mamba" else _sequence_block_step
  block_states = []
  for block, block_state in zip(prepared["blocks"], state["blocks"], strict=True):
    block_state, x = block_step(model, block, block_state, x)
    block_states.append(block_state)
  if model.prenorm:
    x = _norm(model, prepared["final_norm"], x)
  x = x.astype(jnp.float32)
  steps = state["steps"] + 1
  pooled_sum = state["pooled_sum"] + x
  features = pooled_sum / steps.astype(jnp.float32) if model.pooling == "mean" else x
  head = nn.Dense(model.num_classes, dtype=jnp.float32, param_dtype=jnp.float32, parent=None)
  logits = head.apply(prepared["head"], features)
  return {"blocks": tuple(block_states), "steps": steps, "pooled_sum": pooled_sum}, logits


def jit_step(
    model: model_lib.SequenceModel
) -> Callable[[Prepared, StreamState, Array], tuple[StreamState, Array]]:
  """`step` for `model`, jitted once, with the state (argument 1) donated: a step updates the
  state's buffers in place instead of copying them. `(prepared, state, inputs_t) -> (state,
  logits)`; pass only the latest returned state (a donated one is deleted)."""
  return jax.jit(functools.partial(step, model), donate_argnums=1)


def stream_step(model: model_lib.SequenceModel, variables: Variables, state: StreamState,
                inputs_t: Array) -> tuple[StreamState, Array]:
  """`step` from the raw variables: prepares them at every call (for serving, `prepare` once)."""
  return step(model, prepare(model, variables), state, inputs_t)


def stream_logits(model: model_lib.SequenceModel, variables: Variables, inputs: Array) -> Array:
  """The logits after every sample of `inputs` `(B, L)` or `(B, L, C)`: `(B, L, num_classes)`.

  `prepare` once, then `step` over the whole sequence in one `jax.lax.scan` (jit it for speed).
  """
  prepared = prepare(model, variables)

  def one_step(state, inputs_t):
    return step(model, prepared, state, inputs_t)

  state = init_stream(model, variables, inputs.shape[0])
  _, logits = jax.lax.scan(one_step, state, jnp.swapaxes(inputs, 0, 1))
  return jnp.swapaxes(logits, 0, 1)
