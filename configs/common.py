"""The base config (every field of docs/DESIGN.md's schema), model presets and the arg parser.

A task config file does

    SETTINGS = {"all": {"train.global_batch_size": 50, ...},   # dotted keys, checked
                "ms_ssm": {"model.d_model": 128, ...}, "s5": {...}, ...}

    def get_config(arg=None):
      args = common.parse_arg(arg, source="generated")        # "s5,source=release"
      return common.make_config("listops", args.model, SETTINGS)

and is used as `--config=configs/listops.py:s5,source=release`. `arg` names the model first:
one of `MODELS`, then optional `key=value` options that the file declares.

Models (`with_model`) and the scaffold each one gets before task settings:
  ms_ssm     MS-SSM (S4 variant, paper): real diagonal streams, `multires` post-norm block
             with BatchNorm and GLU (MultiresConv's block, which the paper follows).
  ms_ssm_s6  MS-SSM (S6 variant, paper): selective streams in a `mamba` block whose conv is
             replaced by the decomposition (mamba_conv_kernel = 0; SiLU on the bands inside
             the layer), pre-norm LayerNorm.
Task configs set the state size (N per stream for MS-SSM; 16, Mamba's N, until they do).
  ms_ssm_s5  MS-SSM with a per-stream S5 (ours, beyond the paper: S5 at equal state): S5's
             block and its bidirectional recipe. Only the task configs that set its sizes
             (listops) offer it.
  s5         S5's block (Smith et al. 2023; reference `run_train.py` defaults): pre-norm,
             BatchNorm with momentum 0.95, half_glu1.
  lru        LRU (Orvieto et al. 2023, Fig. 1): pre-norm block with a GLU MLP; BatchNorm.
  s4d        S4D (Gu et al. 2022): S4's post-norm block (GELU, then Dense+GLU): `multires`.
  s6         Mamba (Gu and Dao 2023): `mamba` block with its causal conv of kernel 4.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import ml_collections
from ml_collections import config_dict

from ms_ssm_jax import data
from ms_ssm_jax import layers

MODELS: tuple[str, ...] = ("ms_ssm", "ms_ssm_s6", "ms_ssm_s5", "s5", "lru", "s4d", "s6")

# Per model: the sequence layer, overrides of its defaults, and the block scaffold.
_MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "ms_ssm": dict(layer="ms_ssm", layer_config={"state_per_stream": 16}, block="multires",
                   norm="batch", prenorm=False, activation="glu"),
    "ms_ssm_s6": dict(layer="ms_ssm", layer_config={"backbone": "s6", "state_per_stream": 16,
                                                    "band_activation": "silu"},
                      block="mamba", norm="layer", prenorm=True, mamba_conv_kernel=0),
    "ms_ssm_s5": dict(layer="ms_ssm", layer_config={"backbone": "s5", "state_per_stream": 16,
                                                    "bidirectional": True},
                      block="s5", norm="batch", prenorm=True, activation="half_glu1",
                      batchnorm_momentum=0.95),
    "s5": dict(layer="s5", layer_config={}, block="s5", norm="batch", prenorm=True,
               activation="half_glu1", batchnorm_momentum=0.95),
    "lru": dict(layer="lru", layer_config={}, block="s5", norm="batch", prenorm=True,
                activation="glu"),
    "s4d": dict(layer="s4d", layer_config={}, block="multires", norm="batch", prenorm=False,
                activation="glu"),
    "s6": dict(layer="s6", layer_config={}, block="mamba", norm="layer", prenorm=True,
               mamba_conv_kernel=4),
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

  config.model = ml_collections.ConfigDict()
  config.model.layer = "ms_ssm"
  config.model.layer_config = ml_collections.ConfigDict()
  config.model.d_model = 128
  config.model.num_layers = 4
  config.model.block = "multires"
  config.model.norm = "batch"
  config.model.prenorm = False
  config.model.batchnorm_momentum = 0.9
  config.model.activation = "glu"
  config.model.dropout = 0.0
  config.model.pooling = "mean"
  config.model.dual_combine = "concat_mul_sub"
  config.model.mamba_expand = 2
  config.model.mamba_conv_kernel = 4

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

  Task settings (sizes, state, learning rates) are applied afterwards with `override`.
  """
  if model not in _MODEL_PRESETS:
    raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
  preset = dict(_MODEL_PRESETS[model])
  config.model.layer = preset.pop("layer")
  config.model.layer_config = layers.default_layer_config(config.model.layer)
  for key, value in preset.pop("layer_config").items():
    _set(config.model.layer_config, key, value, f"model.layer_config.{key}")
  for key, value in preset.items():
    _set(config.model, key, value, f"model.{key}")
  return config


def _set(config: ml_collections.ConfigDict, key: str, value: Any, dotted: str) -> None:
  if key not in config:
    raise KeyError(f"unknown config key {dotted!r}; known keys here: {', '.join(config)}")
  config[key] = value


def override(config: ml_collections.ConfigDict,
             updates: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """Sets dotted keys (`"model.layer_config.state_size": 64`); unknown keys are an error."""
  for dotted, value in updates.items():
    *parents, key = dotted.split(".")
    node = config
    for depth, parent in enumerate(parents):
      if parent not in node or not isinstance(node[parent], ml_collections.ConfigDict):
        raise KeyError(f"unknown config key {'.'.join(parents[:depth + 1])!r} (in {dotted!r})")
      node = node[parent]
    _set(node, key, value, dotted)
  return config


def settings_for(model: str, settings: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
  """`settings["all"]` updated with `settings[model]`; every model must have an entry."""
  if model not in settings:
    raise ValueError(f"this config has no settings for model {model!r}; it has "
                     f"{', '.join(k for k in settings if k != 'all')}")
  return {**settings.get("all", {}), **settings[model]}


def baseline_layers(*, s5_state: int, s5_blocks: int, bidirectional: bool,
                    siso_chunk_size: int = 0, **s5_options: Any) -> dict[str, dict[str, Any]]:
  """Layer settings of the baselines on a task whose S5 recipe has P states in J blocks.

  s5: S5's P, J and options (`c_init`, `dt_min`, `clip_eigs`). lru: P/2 complex states, the
  state S5 carries under conjugate symmetry (ours: equal state), on the ring r in
  [0.9, 0.999], phase <= pi/10 of the widely used bidirectional LRU variant
  (docs/BASELINES.md; the LRU paper's per-task rings are not verified). s4d: N=64, S4D-Lin
  (the S4D paper's defaults). s6: N=16 (Mamba's), causal by design. All but s6 take `bidirectional`.
  `siso_chunk_size` > 0 runs the per-channel layers (s4d, s6), whose B L H N states are the
  largest, as a chunked scan (same outputs, less memory).
  """
  return {
      "s5": {"model.layer_config.state_size": s5_state, "model.layer_config.blocks": s5_blocks,
             "model.layer_config.bidirectional": bidirectional,
             **{f"model.layer_config.{k}": v for k, v in s5_options.items()}},
      "lru": {"model.layer_config.state_size": s5_state // 2, "model.layer_config.r_min": 0.9,
              "model.layer_config.r_max": 0.999, "model.layer_config.max_phase": math.pi / 10,
              "model.layer_config.bidirectional": bidirectional},
      "s4d": {"model.layer_config.state_size": 64, "model.layer_config.a_init": "lin",
              "model.layer_config.bidirectional": bidirectional,
              "model.layer_config.scan_chunk_size": siso_chunk_size},
      "s6": {"model.layer_config.state_size": 16,
             "model.layer_config.scan_chunk_size": siso_chunk_size},
  }


def ms_ssm_layers(*, num_levels: int, kernel_size: int, state_per_stream: int,
                  bidirectional: bool, scan_chunk_size: int) -> dict[str, dict[str, Any]]:
  """Layer settings of both MS-SSM variants (`ms_ssm`, `ms_ssm_s6`) on a task.

  The S4 variant (`ms_ssm`, time-invariant s4d_real streams) runs as an FFT convolution
  (`mode="conv"`): the same outputs as the scan, and much faster (docs/PAPER.md, "Memory": 5.8 ms
  vs 334 ms for the chunked scan at the paper's ListOps size; 9x on the CPU at the UEA sizes).
  The S6 variant has no convolution form: `scan_impl="auto"`, the fused Pallas kernel on a GPU
  (12-14x faster than the chunked scan at the paper's ListOps size on an H100, with less memory;
  README, "Fast paths") and on TPU, elsewhere an associative scan chunked by `scan_chunk_size`
  (0 = one full scan).
  """
  layer = {"model.layer_config.num_levels": num_levels,
           "model.layer_config.kernel_size": kernel_size,
           "model.layer_config.state_per_stream": state_per_stream,
           "model.layer_config.bidirectional": bidirectional}
  return {"ms_ssm": {**layer, "model.layer_config.mode": "conv",
                     "model.layer_config.scan_chunk_size": 0},
          "ms_ssm_s6": {**layer, "model.layer_config.scan_chunk_size": scan_chunk_size,
                        "model.layer_config.scan_impl": "auto"}}


def make_config(task: str, model: str, settings: Mapping[str, Mapping[str, Any]]
                ) -> ml_collections.ConfigDict:
  """`base_config(task, model)` with `settings_for(model, settings)` applied, locked."""
  config = base_config(task, model)
  override(config, settings_for(model, settings))
  return lock(config)


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


def parse_arg(arg: str | None, **options: Any) -> ml_collections.ConfigDict:
  """Parses `get_config`'s arg: `"<model>"` or `"<model>,key=value,..."` (or None/"").

  Args:
    arg: the string after ':' in `--config=configs/<task>.py:<arg>`. The model defaults to
      `ms_ssm`.
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
  return lock(parsed)
