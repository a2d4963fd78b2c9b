"""The optimizer: AdamW with parameter groups, a warmup schedule, clipping and accumulation.

Every parameter leaf gets one label (`label_params`), checked in this order:
  `frozen`    its '/'-joined path fully matches `config.freeze`: the update is zero and it keeps
              no Adam state.
  `ssm`       its leaf name is in `ssm.SSM_PARAM_NAMES` (eigenvalues, timescales, input
              matrix): Adam at `ssm_lr` (same schedule shape), no weight decay, as in S5
              (Smith et al. 2023).
  `mixer`     only when `mixer_lr > 0`: the input weights of an MS-SSM scale mixer (path
              ending in `mixer/weight`, the per-channel `w`, or `mixer/kernel`, the dense
              `W_E`): AdamW at `mixer_lr` (same schedule shape) with `weight_decay`
              (docs/RESULTS.md, "The scale mixer"). With `mixer_lr = 0` they are `decay`
              leaves, and the optimizer state is as before the group existed (older
              checkpoints resume).
  `no_decay`  a norm parameter (a path component containing "norm") or a bias (leaf name
              `bias` or ending in `_bias`): Adam at `lr`, no weight decay. S5's reference
              intends to exempt norms but does not; we do.
  `decay`     everything else: AdamW at `lr` with `weight_decay` (decoupled, scaled by the
              learning rate as in optax.adamw).

The chain is: zero the frozen gradients, clip by global norm (so frozen gradients do not count
in the norm), the per-group Adam(W). With `grad_accum_steps = k > 1` it is wrapped in
`optax.MultiSteps`: one update every k calls, from the mean of k gradients.

Steps. `num_train_steps` and `steps_per_epoch` count the batches that the train loop feeds
(calls of the update). The schedules run over optimizer updates (`num_train_steps // k`); the
schedules this module returns map the loop's step to the learning rate of the update that
step contributes to, so the loop can log them directly.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import jax
import ml_collections
import optax

from ms_ssm_jax.ssm import SSM_PARAM_NAMES

PyTree = Any
Schedule = Callable[[Any], Any]

FROZEN, SSM, MIXER, NO_DECAY, DECAY = "frozen", "ssm", "mixer", "no_decay", "decay"
LABELS: tuple[str, ...] = (FROZEN, SSM, MIXER, NO_DECAY, DECAY)
_MIXER_INPUT_WEIGHTS = re.compile(r"(.*/)?mixer/(weight|kernel)")
SCHEDULES: tuple[str, ...] = ("cosine", "constant")


def param_path(path: tuple[Any, ...]) -> str:
  """The '/'-joined path of a leaf, e.g. 'blocks_0/seq_layer/Lambda_re'."""
  parts = []
  for key in path:
    if isinstance(key, jax.tree_util.DictKey):
      parts.append(str(key.key))
    elif isinstance(key, jax.tree_util.GetAttrKey):
      parts.append(key.name)
    elif isinstance(key, jax.tree_util.SequenceKey):
      parts.append(str(key.idx))
    else:
      parts.append(str(key))
  return "/".join(parts)


def _is_no_decay(path: str) -> bool:
  *modules, leaf = path.split("/")
  is_norm = any("norm" in module.lower() for module in modules)
  is_bias = leaf == "bias" or leaf.endswith("_bias")
  return is_norm or is_bias


def label_params(params: PyTree, freeze_regex: str | None = None,
                 separate_mixer: bool = False) -> PyTree:
  """The optimizer group of every leaf of `params` (same structure): one of `LABELS`.

  Args:
    params: the parameter tree (the `params` collection, without the collection name).
    freeze_regex: None or "" freezes nothing; otherwise leaves whose '/'-joined path
      `re.fullmatch`es it are frozen. A pattern that matches no leaf is an error (a typo
      would otherwise train everything).
    separate_mixer: label the input weights of MS-SSM mixers `mixer` (else `decay`).
  """
  freeze = re.compile(freeze_regex) if freeze_regex else None

  def label(path, _) -> str:
    name = param_path(path)
    if freeze is not None and freeze.fullmatch(name):
      return FROZEN
    if name.rsplit("/", 1)[-1] in SSM_PARAM_NAMES:
      return SSM
    if separate_mixer and _MIXER_INPUT_WEIGHTS.fullmatch(name):
      return MIXER
    if _is_no_decay(name):
      return NO_DECAY
    return DECAY

  labels = jax.tree_util.tree_map_with_path(label, params)
  if freeze is not None and FROZEN not in jax.tree_util.tree_leaves(labels):
    paths = [param_path(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    raise ValueError(f"freeze={freeze_regex!r} matches no parameter path (it must match a "
                     f"whole path); paths look like: {', '.join(paths[:5])}")
  return labels


def _warmup_steps(opt_cfg: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """Warmup length in loop steps: `warmup_epochs` (when > 0) wins over `warmup_steps`."""
  if opt_cfg.warmup_epochs > 0:
    if steps_per_epoch <= 0:
      raise ValueError(f"warmup_epochs={opt_cfg.warmup_epochs} needs steps_per_epoch > 0, got "
                       f"{steps_per_epoch}; set optimizer.warmup_steps instead")
    return int(round(opt_cfg.warmup_epochs * steps_per_epoch))
  if opt_cfg.warmup_steps < 0:
    raise ValueError(f"optimizer.warmup_steps must be >= 0, got {opt_cfg.warmup_steps}")
  return opt_cfg.warmup_steps


def make_schedule(peak_lr: float, opt_cfg: ml_collections.ConfigDict, num_updates: int,
                  warmup_updates: int) -> Schedule:
  """Linear warmup from 0 to `peak_lr`, then cosine decay to `peak_lr * end_lr_factor` at
  `num_updates` (or constant), as a function of the update count."""
  if opt_cfg.schedule not in SCHEDULES:
    raise ValueError(f"optimizer.schedule={opt_cfg.schedule!r} is not supported; choose one of "
                     f"{', '.join(SCHEDULES)}")
  if warmup_updates > num_updates or (warmup_updates == num_updates and
                                      opt_cfg.schedule == "cosine"):
    raise ValueError(f"warmup ({warmup_updates} updates) leaves no updates of training "
                     f"({num_updates} updates) to decay over; shorten "
                     f"optimizer.warmup_steps/warmup_epochs")
  if opt_cfg.schedule == "constant":
    if warmup_updates == 0:
      return optax.constant_schedule(peak_lr)
    return optax.warmup_constant_schedule(0.0, peak_lr, warmup_updates)
  return optax.warmup_cosine_decay_schedule(init_value=0.0, peak_value=peak_lr,
                                            warmup_steps=warmup_updates, decay_steps=num_updates,
                                            end_value=peak_lr * opt_cfg.end_lr_factor)


def make_optimizer(
    opt_cfg: ml_collections.ConfigDict,
    num_train_steps: int,
    steps_per_epoch: int,
    freeze_regex: str | None = None,
) -> tuple[optax.GradientTransformation, dict[str, Schedule]]:
  """Builds the optimizer of `config.optimizer` (see the module docstring).

  Args:
    opt_cfg: `config.optimizer`.
    num_train_steps: batches the loop trains on (calls of the update).
    steps_per_epoch: batches per epoch (used by `warmup_epochs`; 0 if unknown).
    freeze_regex: `config.freeze` (None or "" = nothing frozen).

  Returns:
    The transformation, and `{"lr": ..., "ssm_lr": ...}` schedules of the loop step (and
    `"mixer_lr"` when it is set).
  """
  accum = opt_cfg.grad_accum_steps
  if accum < 1:
    raise ValueError(f"optimizer.grad_accum_steps must be >= 1 (1 = off), got {accum}")
  if num_train_steps < accum:
    raise ValueError(f"num_train_steps={num_train_steps} is smaller than "
                     f"grad_accum_steps={accum}: no update would happen")
  if opt_cfg.mixer_lr < 0:
    raise ValueError(f"optimizer.mixer_lr must be >= 0 (0 = lr), got {opt_cfg.mixer_lr}")
  if opt_cfg.grad_clip_norm < 0:
    raise ValueError(f"optimizer.grad_clip_norm must be >= 0 (0 = off), got "
                     f"{opt_cfg.grad_clip_norm}")
  if not 0 <= opt_cfg.warmup_max_fraction < 1:
    raise ValueError(f"optimizer.warmup_max_fraction must be in [0, 1) (0 = no cap), got "
                     f"{opt_cfg.warmup_max_fraction}")
  num_updates = num_train_steps // accum
  warmup_updates = _warmup_steps(opt_cfg, steps_per_epoch) // accum
  if opt_cfg.warmup_max_fraction > 0:  # short runs (e.g. a quick try) keep a decay phase
    warmup_updates = min(warmup_updates, int(opt_cfg.warmup_max_fraction * num_updates))
  update_schedules = {
      "lr": make_schedule(opt_cfg.lr, opt_cfg, num_updates, warmup_updates),
      "ssm_lr": make_schedule(opt_cfg.ssm_lr, opt_cfg, num_updates, warmup_updates),
  }
  separate_mixer = opt_cfg.mixer_lr > 0
  if separate_mixer:
    update_schedules["mixer_lr"] = make_schedule(opt_cfg.mixer_lr, opt_cfg, num_updates,
                                                 warmup_updates)

  def adam(schedule: Schedule, weight_decay: float) -> optax.GradientTransformation:
    return optax.adamw(schedule, b1=opt_cfg.b1, b2=opt_cfg.b2, eps=opt_cfg.eps,
                       weight_decay=weight_decay)

  transforms = {
      FROZEN: optax.set_to_zero(),
      SSM: adam(update_schedules["ssm_lr"], 0.0),
      NO_DECAY: adam(update_schedules["lr"], 0.0),
      DECAY: adam(update_schedules["lr"], opt_cfg.weight_decay),
  }
  if separate_mixer:
    transforms[MIXER] = adam(update_schedules["mixer_lr"], opt_cfg.weight_decay)
  groups = optax.multi_transform(transforms,
                                 lambda params: label_params(params, freeze_regex, separate_mixer))

  def frozen_mask(params: PyTree) -> PyTree:
    return jax.tree_util.tree_map(lambda label: label == FROZEN,
                                  label_params(params, freeze_regex, separate_mixer))

  parts = [optax.masked(optax.set_to_zero(), frozen_mask)]
  if opt_cfg.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(opt_cfg.grad_clip_norm))
  parts.append(groups)
  tx = optax.chain(*parts)
  if accum > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=accum).gradient_transformation()

  loop_schedules = {
      name: (lambda step, schedule=schedule: schedule(step // accum))
      for name, schedule in update_schedules.items()
  }
  return tx, loop_schedules
