"""The base config (docs/DESIGN.md's schema), the models, shared layer recipes, the arg parser.

A task config file reads top-down, fields set as code (big_vision's style):

    def get_config(arg=None):
      args = common.parse_arg(arg, source="generated")      # "s5,source=release"
      config = common.task_config("listops", args.model)    # locked: a misspelt field fails
      config.model.num_layers = 8
      config.optimizer.lr = 3e-3
      if args.model in common.BASELINES:
        common.baseline_layer(config, args.model, s5_state=16, s5_blocks=8, bidirectional=True)
      else:
        common.ms_ssm_layer(config, args.model, num_levels=3, kernel_size=4, ...)
      return config

and is used as `--config=configs/listops.py:s5,source=release`. `arg` names the model first:
one of `MODELS`, then optional `key=value` options that the file declares. The model's preset
(layer, block scaffold; `_PRESETS`) is set by `task_config` before the file's settings, and the
layer's fields come from its dataclass (`layers.default_layer_config`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import ml_collections
from ml_collections import config_dict

from ms_ssm_jax import data
from ms_ssm_jax import layers
from ms_ssm_jax import model as model_lib

MODELS: tuple[str, ...] = ("ms_ssm", "ms_ssm_s6", "ms_ssm_s5", "s5", "lru", "s4d", "s6")
BASELINES: tuple[str, ...] = ("s5", "lru", "s4d", "s6")
# The models a task config offers unless it names others: `ms_ssm_s5` needs sizes that only
# some task configs set.
TASK_MODELS: tuple[str, ...] = ("ms_ssm", "ms_ssm_s6", *BASELINES)


def _use_layer(model: ml_collections.ConfigDict, layer: str) -> None:
  """Sets `model.layer` and its fields at their dataclass defaults, locked."""
  model.layer = layer
  model.layer_config = layers.default_layer_config(layer)
  model.layer_config.lock()


def _ms_ssm(model: ml_collections.ConfigDict) -> None:
  """MS-SSM (S4 variant, paper): real diagonal streams, `multires` post-norm block with
  BatchNorm and GLU (MultiresConv's block, which the paper follows)."""
  _use_layer(model, "ms_ssm")
  model.layer_config.state_per_stream = 16  # task configs set N per stream
  model.block = "multires"
  model.norm = "batch"
  model.prenorm = False
  model.activation = "glu"


def _ms_ssm_s6(model: ml_collections.ConfigDict) -> None:
  """MS-SSM (S6 variant, paper): selective streams in a `mamba` block whose conv is replaced
  by the decomposition (no conv; SiLU on the bands inside the layer), pre-norm LayerNorm."""
  _use_layer(model, "ms_ssm")
  model.layer_config.backbone = "s6"
  model.layer_config.state_per_stream = 16  # Mamba's N, until the task config sets it
  model.layer_config.band_activation = "silu"
  model.block = "mamba"
  model.norm = "layer"
  model.prenorm = True
  model.mamba_conv_kernel = 0


def _ms_ssm_s5(model: ml_collections.ConfigDict) -> None:
  """MS-SSM with a per-stream S5 (ours, beyond the paper: S5 at equal state): S5's block and
  its bidirectional recipe."""
  _use_layer(model, "ms_ssm")
  model.layer_config.backbone = "s5"
  model.layer_config.state_per_stream = 16
  model.layer_config.bidirectional = True
  _s5_block(model)


def _s5_block(model: ml_collections.ConfigDict) -> None:
  """S5's block (reference `run_train.py` defaults): pre-norm, BatchNorm with momentum 0.95,
  half_glu1."""
  model.block = "s5"
  model.norm = "batch"
  model.prenorm = True
  model.activation = "half_glu1"
  model.batchnorm_momentum = 0.95


def _s5(model: ml_collections.ConfigDict) -> None:
  """S5 (Smith et al. 2023) in its block."""
  _use_layer(model, "s5")
  _s5_block(model)


def _lru(model: ml_collections.ConfigDict) -> None:
  """LRU (Orvieto et al. 2023, Fig. 1): pre-norm block with a GLU MLP; BatchNorm."""
  _use_layer(model, "lru")
  model.block = "s5"
  model.norm = "batch"
  model.prenorm = True
  model.activation = "glu"


def _s4d(model: ml_collections.ConfigDict) -> None:
  """S4D (Gu et al. 2022) in S4's post-norm block (GELU, then Dense+GLU): `multires`."""
  _use_layer(model, "s4d")
  model.block = "multires"
  model.norm = "batch"
  model.prenorm = False
  model.activation = "glu"


def _s6(model: ml_collections.ConfigDict) -> None:
  """Mamba (Gu and Dao 2023): `mamba` block with its causal conv of kernel 4."""
  _use_layer(model, "s6")
  model.block = "mamba"
  model.norm = "layer"
  model.prenorm = True
  model.mamba_conv_kernel = 4


# Per model: sets the sequence layer (dataclass defaults and preset changes) and the block
# scaffold on `config.model`. Fields a preset leaves alone keep their values.
_PRESETS: dict[str, Callable[[ml_collections.ConfigDict], None]] = {
    "ms_ssm": _ms_ssm,
    "ms_ssm_s6": _ms_ssm_s6,
    "ms_ssm_s5": _ms_ssm_s5,
    "s5": _s5,
    "lru": _lru,
    "s4d": _s4d,
    "s6": _s6,
}

# Data config fields that may be None: optional paths, overridable as strings.
_OPTIONAL_PATH_SUFFIXES = ("_dir", "_path", "_file")


def _data_config(task: str) -> ml_collections.ConfigDict:
  """The task's data config, with None paths turned into str placeholders.

  A None field cannot be set from the command line (ml-collections cannot tell its type);
  data configs use None for unset paths such as `data_dir`.
  """
  config = data.default_data_config(task)
  for key, value in config.items():
    if value is None:
      if not key.endswith(_OPTIONAL_PATH_SUFFIXES):
        raise TypeError(f"data config of {task!r}: field {key!r} is None and not a path; "
                        f"use ml_collections.config_dict.placeholder(<type>) for it")
      config[key] = config_dict.placeholder(str)
  return config


def base_config(task: str, model: str = "ms_ssm") -> ml_collections.ConfigDict:
  """Every field of the schema with its default, for `task` (a data task name) and `model`."""
  config = ml_collections.ConfigDict()
  config.data = _data_config(task)

  # The model's keys and defaults are the model's fields (model.default_model_config).
  config.model = model_lib.default_model_config("ms_ssm")

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.lr = 1e-3
  config.optimizer.ssm_lr = 1e-3
  config.optimizer.mixer_lr = 0.0  # MS-SSM's input-dependent mixer kernel W_E; 0 = lr
  config.optimizer.weight_decay = 0.01
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999
  config.optimizer.eps = 1e-8
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 0
  config.optimizer.warmup_epochs = 0.0  # > 0 wins over warmup_steps
  config.optimizer.warmup_max_fraction = 0.0  # > 0 caps the warmup at this share of the run
  config.optimizer.end_lr_factor = 0.0
  config.optimizer.grad_clip_norm = 0.0  # 0 = off
  config.optimizer.grad_accum_steps = 1  # 1 = off

  config.train = ml_collections.ConfigDict()
  config.train.seed = 0
  config.train.global_batch_size = 32
  config.train.eval_batch_size = 64
  config.train.num_steps = 10_000
  config.train.num_epochs = 0.0  # > 0 wins over num_steps
  config.train.log_every = 100
  config.train.eval_every = 1000
  config.train.checkpoint_every = 1000
  config.train.keep_checkpoints = 3
  config.train.eval_splits = ("validation", "test")
  config.train.precision = "float32"
  config.train.remat = False  # recompute block activations in the backward pass (less memory)
  config.train.profile_steps = 0  # > 0: a jax.profiler trace of this many steps, <workdir>/profile

  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = -1  # all devices not used by the model axis
  config.mesh.model = 1

  config.init_from = config_dict.placeholder(str)  # checkpoint dir or zoo name
  config.init_head = "keep"  # "reinit" (new head) or a regex of arrays, e.g. "encoder/.*|head/.*"
  config.freeze = config_dict.placeholder(str)  # regex over '/'-joined parameter paths
  return with_model(config, model)


def with_model(config: ml_collections.ConfigDict, model: str) -> ml_collections.ConfigDict:
  """Sets `config.model` to `model`'s layer (default hyperparameters) and block scaffold.

  Task settings (sizes, state, learning rates) are set afterwards.
  """
  if model not in _PRESETS:
    raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
  _PRESETS[model](config.model)
  return config


def _set(config: ml_collections.ConfigDict, key: str, value: Any, dotted: str) -> None:
  if key not in config:
    raise KeyError(f"unknown config key {dotted!r}; known keys here: {', '.join(config)}")
  config[key] = value


def override(config: ml_collections.ConfigDict, updates: Mapping[str,
                                                                 Any]) -> ml_collections.ConfigDict:
  """Sets dotted keys (`"model.layer_config.state_size": 64`), as scripts and tests change a
  built config; unknown keys are an error naming them."""
  for dotted, value in updates.items():
    *parents, key = dotted.split(".")
    node = config
    for depth, parent in enumerate(parents):
      if parent not in node or not isinstance(node[parent], ml_collections.ConfigDict):
        raise KeyError(f"unknown config key {'.'.join(parents[:depth + 1])!r} (in {dotted!r})")
      node = node[parent]
    _set(node, key, value, dotted)
  return config


def task_config(task: str, model: str) -> ml_collections.ConfigDict:
  """`base_config(task, model)`, locked: the task file then sets fields, and a misspelt field
  (`config.model.num_layer = 8`) is an error naming it, as on the command line."""
  return lock(base_config(task, model))


def baseline_layer(config: ml_collections.ConfigDict, model: str, *, s5_state: int, s5_blocks: int,
                   bidirectional: bool, chunked_siso: bool = False, **s5_fields: Any) -> None:
  """Sets the layer of baseline `model` on a task whose S5 recipe has P states in J blocks.

  s5: S5's P, J and fields (`c_init`, `clip_eigs`). lru: P/2 complex states, the state S5
  carries under conjugate symmetry (ours: equal state), on the ring r in [0.9, 0.999], phase
  <= pi/10 of the widely used bidirectional LRU variant (docs/BASELINES.md; the LRU paper's
  per-task rings are not verified). s4d: N=64, S4D-Lin (the S4D paper's defaults). s6: N=16
  (Mamba's), causal by design. All but s6 take `bidirectional`. `chunked_siso` runs the
  per-channel layers (s4d, s6), whose B L H N states are the largest, as a chunked scan
  (`impl="chunked"`: same outputs, less memory).
  """
  layer = config.model.layer_config
  if model == "s5":
    layer.state_size = s5_state
    layer.blocks = s5_blocks
    layer.bidirectional = bidirectional
    for key, value in s5_fields.items():
      layer[key] = value
  elif model == "lru":
    layer.state_size = s5_state // 2
    layer.r_min = 0.9
    layer.r_max = 0.999
    layer.max_phase = math.pi / 10
    layer.bidirectional = bidirectional
  elif model == "s4d":
    layer.state_size = 64
    layer.a_init = "lin"
    layer.bidirectional = bidirectional
    layer.impl = "chunked" if chunked_siso else "scan"
  elif model == "s6":
    layer.state_size = 16
    layer.impl = "chunked" if chunked_siso else "scan"
  else:
    raise ValueError(f"{model!r} is not a baseline; baselines are {', '.join(BASELINES)}")


def ms_ssm_layer(config: ml_collections.ConfigDict, model: str, *, num_levels: int,
                 kernel_size: int, state_per_stream: int, bidirectional: bool) -> None:
  """Sets the layer of an MS-SSM variant of the paper (`ms_ssm`, `ms_ssm_s6`) on a task.

  The S4 variant (`ms_ssm`, time-invariant s4d_real streams) runs as an FFT convolution
  (`impl="conv"`): the same outputs as the scan, and much faster (docs/PAPER.md, "Memory": 5.8 ms
  vs 334 ms for the chunked scan at the paper's ListOps size; 9x on the CPU at the UEA sizes).
  The S6 variant has no convolution form: `impl="auto"`, the fused Pallas kernel on a GPU
  (12-14x faster than the chunked scan at the paper's ListOps size on an H100, with less memory;
  README, "Fast paths") and on TPU, elsewhere the chunked associative scan.
  """
  if model not in ("ms_ssm", "ms_ssm_s6"):
    raise ValueError(f"{model!r} is not one of the paper's MS-SSM variants (ms_ssm, ms_ssm_s6)")
  layer = config.model.layer_config
  layer.num_levels = num_levels
  layer.kernel_size = kernel_size
  layer.state_per_stream = state_per_stream
  layer.bidirectional = bidirectional
  layer.impl = "conv" if model == "ms_ssm" else "auto"


def lock(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Locks the config: overriding a key that does not exist is then an error."""
  config.lock()
  return config


def _parse_value(key: str, text: str, default: Any) -> Any:
  if isinstance(default, bool):
    if text.lower() not in ("true", "false"):
      raise ValueError(f"option {key!r} takes true or false, got {text!r}")
    return text.lower() == "true"
  try:
    return type(default)(text)
  except ValueError:
    raise ValueError(f"option {key!r} takes a {type(default).__name__}, got {text!r}") from None


def parse_arg(arg: str | None, *, models: tuple[str, ...] = TASK_MODELS,
              **options: Any) -> ml_collections.ConfigDict:
  """Parses `get_config`'s arg: `"<model>"` or `"<model>,key=value,..."` (or None/"").

  Args:
    arg: the string after ':' in `--config=configs/<task>.py:<arg>`. The model defaults to
      `ms_ssm`.
    models: the models this config file offers (a subset of `MODELS`).
    **options: the keys this config file accepts, with their defaults (which set the type).

  Returns:
    A locked ConfigDict with `model` and every option.
  """
  parsed = ml_collections.ConfigDict({"model": "ms_ssm", **options})
  parts = [part.strip() for part in (arg or "").split(",") if part.strip()]
  if parts and "=" not in parts[0]:
    parsed.model = parts.pop(0)
  if parsed.model not in MODELS:
    raise ValueError(f"unknown model {parsed.model!r} in config arg {arg!r}; choose one of "
                     f"{', '.join(MODELS)}")
  for part in parts:
    key, sep, text = part.partition("=")
    key = key.strip()
    if not sep:
      raise ValueError(f"config arg {arg!r}: expected key=value after the model, got {part!r}")
    if key not in options:
      raise ValueError(f"unknown config arg option {key!r} in {arg!r}; this config accepts "
                       f"{', '.join(sorted(options)) or 'no options'}")
    parsed[key] = _parse_value(key, text.strip(), options[key])
  if parsed.model not in models:
    raise ValueError(f"this config has no settings for model {parsed.model!r}; it has "
                     f"{', '.join(models)}")
  return lock(parsed)
