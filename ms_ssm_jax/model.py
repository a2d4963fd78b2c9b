"""The sequence model for every task and layer: encoder, residual blocks, pooling, head.

    model = build_model(config.model, task_spec, precision=config.train.precision)
    variables = model.init(rng, dummy_batch(task_spec, 2), train=False)
    logits, updates = model.apply(variables, batch, train=True, rngs={"dropout": key},
                                  mutable=["batch_stats"])

`batch` is the data contract's dict (docs/DESIGN.md): `inputs` (B, L) int32 tokens or
(B, L, C) float32, `lengths` (B,) int32; dual tasks add `inputs2`, `lengths2`. Logits are
(B, num_classes), or (B, L, num_classes) with pooling "none"; always float32.

Pipeline: encoder (`Embed` for tokens, id 0 is padding; `Dense` for continuous inputs) ->
`num_layers` blocks (`blocks.py`) -> a final norm when the blocks are pre-norm -> pooling
(`mean` over valid steps, `last` valid step, or `none`) -> `Dense(num_classes)`. Dual tasks
(LRA Retrieval) run both sequences through the same encoder and blocks (one pass over the two
batches stacked), pool each, and classify `[u, v, u*v, u-v]` with a GELU MLP.

Precision (ours): the train loop passes `precision=config.train.precision` to `build_model`
(the model config stays free of run settings). "bfloat16" runs encoder, blocks and norms in
bf16 with float32 parameters; the sequence layers keep float32 states (`scan.py` promotes),
norm statistics are reduced in float32, and pooling and the head run in float32.

Parameter paths (a public checkpoint format): `encoder/{embedding,projection}`,
`blocks_{i}/{norm,seq_layer,glu,gate,in_proj,conv,out_proj}`, `final_norm`, `head_hidden`
(dual only), `head`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ms_ssm_jax import blocks
from ms_ssm_jax import layers
from ms_ssm_jax.data.task import TaskSpec

Array = jax.Array

BLOCKS: tuple[str, ...] = ("multires", "s5", "mamba")
POOLINGS: tuple[str, ...] = ("mean", "last", "none")
DUAL_COMBINES: tuple[str, ...] = ("concat_mul_sub",)
PRECISIONS: dict[str, Any] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# `config.model` keys that are not `SequenceModel` fields: the sequence layer by name, and its
# fields (`layers.default_layer_config`).
LAYER_CONFIG_KEYS: tuple[str, ...] = ("layer", "layer_config")
# `SequenceModel` fields that are not `config.model` keys: set from the task's `TaskSpec`, the
# run settings (`config.train`) and flax.
_NON_CONFIG_FIELDS = frozenset({
    "seq_layer", "input_type", "vocab_size", "num_classes", "dual", "dtype", "remat", "parent",
    "name"
})


class Encoder(nn.Module):
  """Token embedding or linear projection of continuous features to d_model."""
  input_type: str
  vocab_size: int | None
  d_model: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    """inputs (B, L) int tokens or (B, L, C) float -> (B, L, H)."""
    if self.input_type == "tokens":
      if inputs.ndim != 2 or not jnp.issubdtype(inputs.dtype, jnp.integer):
        raise ValueError(f"token inputs must be (B, L) integers; got {inputs.dtype}{inputs.shape}")
      return nn.Embed(self.vocab_size, self.d_model, dtype=self.dtype, param_dtype=jnp.float32,
                      name="embedding")(inputs)
    if inputs.ndim != 3:
      raise ValueError(f"continuous inputs must be (B, L, C); got shape {inputs.shape}")
    return nn.Dense(self.d_model, dtype=self.dtype, param_dtype=jnp.float32,
                    name="projection")(inputs)


def valid_mask(lengths: Array, length: int) -> Array:
  """(B, L) bool: True at steps t < lengths[b]."""
  return jnp.arange(length)[None, :] < lengths[:, None]


def pool(x: Array, valid: Array, lengths: Array, pooling: str) -> Array:
  """x (B, L, H) -> (B, H) (`mean` over valid steps, `last` valid step) or (B, L, H) (`none`)."""
  x = x.astype(jnp.float32)
  if pooling == "mean":
    total = jnp.sum(jnp.where(valid[..., None], x, 0.0), axis=1)
    return total / jnp.maximum(lengths, 1)[:, None].astype(jnp.float32)
  if pooling == "last":
    last = jnp.clip(lengths - 1, 0, x.shape[1] - 1)
    return jnp.take_along_axis(x, last[:, None, None], axis=1)[:, 0]
  if pooling == "none":
    return x
  raise ValueError(f"pooling={pooling!r} is not supported; choose one of {', '.join(POOLINGS)}")


class SequenceModel(nn.Module):
  """Encoder, residual blocks, pooling and head; build it with `build_model`.

  The fields from `d_model` to `mamba_conv_kernel` are the keys of `config.model` (with
  `layer` and `layer_config`; `MODEL_CONFIG_KEYS`), and their defaults are the schema's
  (`default_model_config`): a new model hyperparameter is a new field here.

  Attributes:
    seq_layer: unbound prototype of the sequence layer; every block holds its own copy.
    input_type, vocab_size, num_classes, dual: from the task's `TaskSpec`.
    d_model, num_layers: width H and number of blocks.
    block, norm, prenorm, batchnorm_momentum, activation, dropout: the residual block
      (`BLOCKS`, `blocks.NORMS`, `blocks.ACTIVATIONS`).
    pooling: `POOLINGS`.
    dual_combine: how dual tasks combine the two pooled features (`DUAL_COMBINES`).
    mamba_expand, mamba_conv_kernel: the mamba block's expansion and causal conv (0 = none).
    dtype: compute dtype of encoder, blocks and norms (parameters are float32).
    remat: recompute each block's activations in the backward pass instead of storing them
      (`config.train.remat`; less memory at the paper's sizes, about one more forward pass).
  """
  seq_layer: nn.Module
  input_type: str
  vocab_size: int | None
  num_classes: int
  dual: bool
  d_model: int = 128
  num_layers: int = 4
  block: str = "multires"
  norm: str = "batch"
  prenorm: bool = False
  batchnorm_momentum: float = 0.9
  activation: str = "glu"
  dropout: float = 0.0
  pooling: str = "mean"
  dual_combine: str = "concat_mul_sub"
  mamba_expand: int = 2
  mamba_conv_kernel: int = 4
  dtype: Any = jnp.float32
  remat: bool = False

  def _make_block(self, index: int) -> nn.Module:
    name = f"blocks_{index}"
    # The blocks' __call__(self, x, valid, lengths, train): `train` (argnum 4) is static.
    wrap = (lambda cls: nn.remat(cls, static_argnums=(4,))) if self.remat else (lambda cls: cls)
    if self.block == "mamba":
      return wrap(blocks.MambaBlock)(self.seq_layer, self.norm, self.batchnorm_momentum,
                                     self.mamba_expand, self.mamba_conv_kernel, self.dropout,
                                     self.dtype, name=name)
    return wrap(blocks.SequenceBlock)(self.seq_layer, self.norm, self.prenorm,
                                      self.batchnorm_momentum, self.activation, self.dropout,
                                      dropout_shared_over_time=self.block == "s5", dtype=self.dtype,
                                      name=name)

  def _encode(self, inputs: Array, lengths: Array, train: bool) -> Array:
    """inputs, lengths (B,) -> pooled features (B, H) or per-step features (B, L, H)."""
    valid = valid_mask(lengths, inputs.shape[1])
    x = Encoder(self.input_type, self.vocab_size, self.d_model, self.dtype, name="encoder")(inputs)
    for index in range(self.num_layers):
      x = self._make_block(index)(x, valid, lengths, train)
    if self.prenorm:
      x = blocks.Norm(self.norm, self.batchnorm_momentum, self.dtype, name="final_norm")(x, valid,
                                                                                         train)
    return pool(x, valid, lengths, self.pooling)

  @nn.compact
  def __call__(self, batch: Mapping[str, Array], train: bool = False) -> Array:
    """The batch dict -> float32 logits (B, num_classes) or (B, L, num_classes)."""
    inputs, lengths = _get(batch, "inputs"), _get(batch, "lengths")
    head = nn.Dense(self.num_classes, dtype=jnp.float32, param_dtype=jnp.float32, name="head")
    if not self.dual:
      return head(self._encode(inputs, lengths, train))
    inputs2, lengths2 = _get(batch, "inputs2"), _get(batch, "lengths2")
    if inputs2.shape != inputs.shape:
      raise ValueError(f"dual inputs must have the same shape; got {inputs.shape} and "
                       f"{inputs2.shape}")
    # One pass over both batches: shared weights, and BatchNorm statistics over both.
    features = self._encode(jnp.concatenate([inputs, inputs2]), jnp.concatenate([lengths,
                                                                                 lengths2]), train)
    u, v = jnp.split(features, 2)
    # dual_combine: "concat_mul_sub", the one combination (checked by build_model).
    combined = jnp.concatenate([u, v, u * v, u - v], axis=-1)
    hidden = nn.Dense(self.d_model, dtype=jnp.float32, param_dtype=jnp.float32,
                      name="head_hidden")(combined)
    return head(nn.gelu(hidden))


def _get(batch: Mapping[str, Array], key: str) -> Array:
  if key not in batch:
    raise KeyError(f"the batch has no {key!r}; it has {sorted(batch)} (see docs/DESIGN.md, "
                   "'Tasks and data')")
  return batch[key]


def _config_fields() -> list[dataclasses.Field]:
  return [
      f for f in dataclasses.fields(SequenceModel) if f.init and f.name not in _NON_CONFIG_FIELDS
  ]


MODEL_CONFIG_KEYS: frozenset[str] = frozenset(
    {*LAYER_CONFIG_KEYS, *(f.name for f in _config_fields())})


def default_model_config(layer: str) -> ml_collections.ConfigDict:
  """`config.model` at its defaults: `layer`, the layer's fields (`layer_config`) and the
  `SequenceModel` fields."""
  config = ml_collections.ConfigDict()
  config.layer = layer
  config.layer_config = layers.default_layer_config(layer)
  for field in _config_fields():
    if field.default is dataclasses.MISSING:
      raise TypeError(f"SequenceModel.{field.name} has no default; every config.model field "
                      f"needs one")
    config[field.name] = field.default
  return config


def _model_fields(model_cfg: ml_collections.ConfigDict) -> dict[str, Any]:
  """The `SequenceModel` fields of `model_cfg`; missing keys keep their defaults (a config
  saved before a field was added lacks it), unknown keys are an error naming them."""
  unknown = sorted(set(model_cfg.keys()) - MODEL_CONFIG_KEYS)
  if unknown:
    raise ValueError(f"config.model has unknown keys {unknown}; the known keys are "
                     f"{sorted(MODEL_CONFIG_KEYS)} (model.MODEL_CONFIG_KEYS)")
  if "layer" not in model_cfg:
    raise ValueError("config.model has no 'layer'; build it with configs.common.base_config")
  return {f.name: model_cfg[f.name] if f.name in model_cfg else f.default for f in _config_fields()}


def _check_choice(field: str, value: Any, choices: tuple[Any, ...]) -> None:
  if value not in choices:
    raise ValueError(f"model.{field}={value!r} is not supported; choose one of "
                     f"{', '.join(map(str, choices))}")


def _check_model_fields(fields: Mapping[str, Any], task_spec: TaskSpec) -> None:
  _check_choice("block", fields["block"], BLOCKS)
  _check_choice("norm", fields["norm"], blocks.NORMS)
  _check_choice("activation", fields["activation"], blocks.ACTIVATIONS)
  _check_choice("pooling", fields["pooling"], POOLINGS)
  _check_choice("dual_combine", fields["dual_combine"], DUAL_COMBINES)
  for field in ("d_model", "num_layers", "mamba_expand"):
    if fields[field] < 1:
      raise ValueError(f"model.{field} must be >= 1, got {fields[field]}")
  if fields["mamba_conv_kernel"] < 0:
    raise ValueError(f"model.mamba_conv_kernel must be >= 0 (0 = no conv), got "
                     f"{fields['mamba_conv_kernel']}")
  if not 0.0 <= fields["dropout"] < 1.0:
    raise ValueError(f"model.dropout must be in [0, 1), got {fields['dropout']}")
  if fields["block"] == "mamba" and not fields["prenorm"]:
    raise ValueError("the mamba block is pre-norm: set model.prenorm=True")
  if task_spec.dual and fields["pooling"] == "none":
    raise ValueError(f"task {task_spec.name!r} compares two sequences: model.pooling must be "
                     "'mean' or 'last'")


def _layer_width(fields: Mapping[str, Any]) -> int:
  """The width of the sequence layer: d_model, or mamba_expand * d_model in a mamba block."""
  if fields["block"] == "mamba":
    return fields["mamba_expand"] * fields["d_model"]
  return fields["d_model"]


def build_model(model_cfg: ml_collections.ConfigDict, task_spec: TaskSpec, *,
                precision: str = "float32", remat: bool = False) -> SequenceModel:
  """The model of `config.model` for `task_spec`; `precision` and `remat` are
  `config.train.precision` and `config.train.remat` (same parameters either way)."""
  fields = _model_fields(model_cfg)
  _check_model_fields(fields, task_spec)
  if precision not in PRECISIONS:
    raise ValueError(f"train.precision={precision!r} is not supported; choose one of "
                     f"{', '.join(PRECISIONS)}")
  layer_config = model_cfg.layer_config if "layer_config" in model_cfg else None
  prototype = layers.make_layer(model_cfg.layer, _layer_width(fields), layer_config)
  return SequenceModel(seq_layer=prototype, input_type=task_spec.input_type,
                       vocab_size=task_spec.vocab_size, num_classes=task_spec.num_classes,
                       dual=task_spec.dual, **fields, dtype=PRECISIONS[precision], remat=remat)


def dummy_batch(task_spec: TaskSpec, batch_size: int,
                length: int | None = None) -> dict[str, np.ndarray]:
  """A batch of zeros in the data contract's format (full lengths), e.g. to initialize."""
  length = task_spec.max_length if length is None else length
  if task_spec.input_type == "tokens":
    inputs = np.zeros((batch_size, length), np.int32)
  else:
    inputs = np.zeros((batch_size, length, task_spec.num_channels), np.float32)
  batch = {"inputs": inputs, "lengths": np.full((batch_size,), length, np.int32)}
  if task_spec.dual:
    batch.update(inputs2=inputs.copy(), lengths2=batch["lengths"].copy())
  return batch


def init_variables(model: nn.Module, spec: TaskSpec, key: jax.Array) -> dict[str, Any]:
  """Fresh model variables: {"params", "batch_stats"} ({} when the model has no BatchNorm)."""
  params_key, dropout_key = jax.random.split(key)
  variables = model.init({"params": params_key, "dropout": dropout_key}, dummy_batch(spec, 1),
                         train=False)
  return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


@dataclasses.dataclass(frozen=True)
class ModelSummary:
  """Parameter and state counts of a model, for printing.

  Attributes:
    params_by_module: parameters per part: encoder, blocks (all of them), final_norm,
      head_hidden, head (the parts the model has).
    num_params: all parameters.
    layer_states: total SSM states of one sequence layer (one direction; complex counts once).
    states_per_channel: states each channel reads from (N for SISO layers, P for S5).
    carried_floats_per_layer: real numbers one layer carries per sequence and step (all
      directions; complex counts 2).
    num_layers: number of sequence layers.
  """
  params_by_module: dict[str, int]
  num_params: int
  layer_states: int
  states_per_channel: int
  carried_floats_per_layer: int
  num_layers: int

  def __str__(self) -> str:
    modules = ", ".join(f"{name} {count:,}" for name, count in self.params_by_module.items())
    return (f"parameters: {self.num_params:,} ({modules})\n"
            f"SSM states per layer: {self.layer_states:,} ({self.states_per_channel:,} per "
            f"channel; {self.carried_floats_per_layer:,} floats carried per step), "
            f"{self.num_layers} layers: {self.layer_states * self.num_layers:,} in total")


def summarize(model_cfg: ml_collections.ConfigDict, task_spec: TaskSpec) -> ModelSummary:
  """Parameter and state counts of the model of `model_cfg` for `task_spec` (no compute)."""
  model = build_model(model_cfg, task_spec)
  variables = jax.eval_shape(
      lambda: model.init(jax.random.key(0), dummy_batch(task_spec, 1), train=False))
  params = variables["params"]
  params_by_module: dict[str, int] = {}
  for name in ("encoder", "blocks", "final_norm", "head_hidden", "head"):
    parts = [
        tree for key, tree in params.items()
        if key == name or (name == "blocks" and re.fullmatch(r"blocks_\d+", key))
    ]
    if parts:
      params_by_module[name] = layers.count_parameters(parts)
  states = layers.state_size(model.seq_layer)
  return ModelSummary(params_by_module=params_by_module, num_params=layers.count_parameters(params),
                      layer_states=states.total, states_per_channel=states.per_channel,
                      carried_floats_per_layer=states.carried_floats, num_layers=model.num_layers)
