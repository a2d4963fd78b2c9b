"""Registry of sequence layers: names to classes, default configs, construction, counts.

    cfg = default_layer_config("s5")        # ConfigDict from the S5 dataclass fields
    cfg.state_size = 256
    layer = make_layer("s5", d_model=128, cfg=cfg)
    state_size(layer)                        # StateCounts(per_channel=256, total=256, ...)

The defaults live only in the layer dataclasses; configs are built from their fields.
Every layer class implements `__call__(u (B, L, H), lengths (B,) | None) -> (B, L, H)` and
`state_counts() -> StateCounts` (docs/DESIGN.md, "Sequence layers").
"""

from __future__ import annotations

import collections.abc
import dataclasses
import importlib
import math
import types
import typing
from typing import Any, Iterator, Mapping

import flax.linen as nn
import jax
import ml_collections
from ml_collections import config_dict

from ms_ssm_jax.ssm.common import StateCounts

__all__ = [
    "LAYERS", "StateCounts", "count_parameters", "default_layer_config", "layer_class",
    "make_layer", "state_size"
]

# Fields every layer has that are not hyperparameters: set by make_layer or by flax.
_NON_CONFIG_FIELDS = frozenset({"d_model", "parent", "name"})

# Fields removed from a layer, with the one value the layer still implements. Released models
# store every field they were trained with (ms_ssm_jax/released/manifest.json); a stored retired
# field at this value is dropped when the layer is rebuilt, any other value is an error.
RETIRED_FIELDS: Mapping[str, Mapping[str, Any]] = {
    "ms_ssm": {
        "share_filters": False, "filter_init": "random", "decomposition_impl": "cascade",
        "raw_stream": "fastest", "s6_dt_rank": None, "lru_r_min": 0.9, "lru_r_max": 0.999,
        "lru_max_phase": math.pi / 10, "d_skip": True, "streams": "details+approx+raw",
        "total_state": None
    },
    "s5": {
        "bidirectional_mode": "concat", "conj_sym": True, "discretization": "zoh",
        "step_rescale": 1.0
    },
    "lru": {"train_gamma": True},
    "s6": {"dt_rank": None, "dt_init_floor": 1e-4},
}

# The three fields that chose how a recurrence runs before `impl` and `chunk_size`
# (`ms_ssm_jax.ssm.diagonal`): released models store them, and `_translate_evaluation` maps
# them onto the new fields (the same outputs).
RETIRED_EVALUATION_FIELDS: tuple[str, ...] = ("mode", "scan_impl", "scan_chunk_size")


def _translate_evaluation(name: str, values: dict[str, Any]) -> None:
  """Replaces the retired `mode`, `scan_impl`, `scan_chunk_size` in `values` by `impl` (and
  `chunk_size`): `conv` for mode='conv', `pallas` and `auto` as they were, otherwise `chunked`
  with a chunk size > 0 and `scan` without."""
  retired = {key: values.pop(key) for key in RETIRED_EVALUATION_FIELDS if key in values}
  if not retired:
    return
  mode = retired.get("mode", "scan")
  scan_impl = retired.get("scan_impl", "associative")
  chunk_size = retired.get("scan_chunk_size", 0)
  usage = (f"layer {name!r}: the retired fields {retired} have no translation; set impl "
           f"(auto, scan, chunked, pallas, conv) and chunk_size instead")
  if ("impl" in values or mode not in ("scan", "conv") or
      scan_impl not in ("associative", "pallas", "auto") or chunk_size < 0 or
      (mode == "conv" and (scan_impl == "pallas" or chunk_size))):
    raise ValueError(usage)
  if mode == "conv":
    values["impl"] = "conv"
  elif scan_impl != "associative":
    values["impl"] = scan_impl
  else:
    values["impl"] = "chunked" if chunk_size else "scan"
  if chunk_size:
    values["chunk_size"] = chunk_size


class _LazyLayerRegistry(collections.abc.Mapping):
  """Maps layer names to classes, importing each module on first access.

  Lazy so that importing the registry does not import every layer (and so that a layer
  module can be developed without breaking the others).
  """

  def __init__(self, paths: Mapping[str, str]):
    self._paths = dict(paths)

  def __getitem__(self, name: str) -> type[nn.Module]:
    if name not in self._paths:
      raise KeyError(f"unknown layer {name!r}; known layers: {', '.join(self._paths)}")
    module_path, class_name = self._paths[name].split(":")
    return getattr(importlib.import_module(module_path), class_name)

  def __iter__(self) -> Iterator[str]:
    return iter(self._paths)

  def __len__(self) -> int:
    return len(self._paths)


LAYERS: Mapping[str, type[nn.Module]] = _LazyLayerRegistry({
    "ms_ssm": "ms_ssm_jax.ms_ssm.layer:MSSSMLayer",
    "s5": "ms_ssm_jax.ssm.s5:S5",
    "lru": "ms_ssm_jax.ssm.lru:LRU",
    "s4d": "ms_ssm_jax.ssm.s4d:S4D",
    "s6": "ms_ssm_jax.ssm.s6:S6",
})


def layer_class(name: str) -> type[nn.Module]:
  """The layer class registered under `name`; a ValueError lists the known names."""
  if name not in LAYERS:
    raise ValueError(f"unknown layer {name!r}; known layers: {', '.join(LAYERS)}")
  return LAYERS[name]


def _hyperparameter_fields(cls: type[nn.Module]) -> list[dataclasses.Field]:
  return [
      f for f in dataclasses.fields(cls)
      if f.init and f.name not in _NON_CONFIG_FIELDS and not f.name.startswith("_")
  ]


def _placeholder_type(cls: type[nn.Module], field: dataclasses.Field) -> type:
  """The non-None type of an `X | None` field, for `config_dict.placeholder`."""
  hint = typing.get_type_hints(cls)[field.name]
  if typing.get_origin(hint) in (typing.Union, types.UnionType):
    options = [t for t in typing.get_args(hint) if t is not type(None)]
    if len(options) == 1:
      return options[0]
  raise TypeError(f"{cls.__name__}.{field.name} defaults to None, so its annotation must be "
                  f"'X | None' with one type X; got {hint}")


def default_layer_config(name: str) -> ml_collections.ConfigDict:
  """The layer's hyperparameters with their defaults, from the dataclass fields.

  Fields whose default is None become typed placeholders, so that they can be set from the
  command line (`--config.model.layer_config.state_per_stream=8`).
  """
  cls = layer_class(name)
  config = ml_collections.ConfigDict()
  for field in _hyperparameter_fields(cls):
    if field.default is not dataclasses.MISSING:
      default = field.default
    elif field.default_factory is not dataclasses.MISSING:
      default = field.default_factory()
    else:
      raise TypeError(f"{cls.__name__}.{field.name} has no default; every layer field other "
                      f"than d_model needs one")
    if default is None:
      config[field.name] = config_dict.placeholder(_placeholder_type(cls, field))
    else:
      config[field.name] = default
  return config


def make_layer(name: str, d_model: int, cfg: Mapping[str, Any] | None = None, *,
               module_name: str | None = None) -> nn.Module:
  """Instantiates layer `name` with width `d_model` and the hyperparameters in `cfg`.

  Args:
    name: a key of `LAYERS`.
    d_model: H.
    cfg: a ConfigDict or mapping of hyperparameters (usually `default_layer_config(name)`
      with overrides); missing keys keep the dataclass defaults; None uses all defaults.
    module_name: the flax name of the module (its parameter path in the parent).

  Raises:
    ValueError: for an unknown layer name (listing the known ones), unknown config keys
      (naming them), or a retired field (`RETIRED_FIELDS`) at a value no longer implemented.
      Retired evaluation fields (`RETIRED_EVALUATION_FIELDS`) are translated.
  """
  cls = layer_class(name)
  if cfg is None:
    values = {}
  elif isinstance(cfg, ml_collections.ConfigDict):
    values = cfg.to_dict()
  else:
    values = dict(cfg)
  _translate_evaluation(name, values)
  for key, value in RETIRED_FIELDS.get(name, {}).items():
    if key in values:
      if values[key] != value:
        raise ValueError(f"layer {name!r} no longer has the field {key!r}; only {key}={value!r} "
                         f"is implemented (got {values[key]!r}): drop the field")
      del values[key]
  known = [f.name for f in _hyperparameter_fields(cls)]
  unknown = sorted(set(values) - set(known))
  if unknown:
    raise ValueError(f"unknown config keys for layer {name!r}: {', '.join(unknown)}; "
                     f"known keys: {', '.join(known)}")
  return cls(d_model=d_model, name=module_name, **values)


def count_parameters(params: Any) -> int:
  """Total number of scalars in a parameter pytree (a complex scalar counts once)."""
  return sum(int(leaf.size) for leaf in jax.tree.leaves(params))


def state_size(layer: nn.Module) -> StateCounts:
  """States carried by `layer` (per channel, in total, and as floats per step)."""
  counts = getattr(layer, "state_counts", None)
  if counts is None:
    raise TypeError(f"{type(layer).__name__} does not implement state_counts(); every "
                    f"registered layer must (see ms_ssm_jax.layers)")
  return counts()
