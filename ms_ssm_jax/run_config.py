"""A run's config across resumes: which fields may change, and the history in the workdir.

  <workdir>/config.json                  the config of the latest training session;
  <workdir>/config_history/<step>.json   the config in effect from step <step> on (the first
                                         session's, then one file per resume that changed it).

A resume compares the config with the one saved in the checkpoint it restores. Fields that
define what is trained (`FIXED`) cannot change mid-run: changing them is an error naming
them. Run settings (learning rates, steps, evaluation, logging, ...) may change, and so may
how a layer evaluates its recurrence (`model.layer_config.impl`, `chunk_size`: the same
parameters and outputs, so a run may move to a faster path); the changes are reported and
recorded in the history.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Mapping

CONFIG_FILE = "config.json"
HISTORY_DIR = "config_history"
# Dotted prefixes of the fields that fix the model, the data stream and the initialization.
FIXED = ("model.", "data.", "train.seed", "train.global_batch_size", "init_from", "init_head",
         "freeze")
# Data fields that locate files on a machine: a run may move to another machine.
_MACHINE_SUFFIXES = ("_dir", "_path", "_file")
# Model fields that choose an evaluation path of the same function (`ssm.diagonal.IMPLS`).
_EVALUATION_PATH = ("model.layer_config.impl", "model.layer_config.chunk_size")


class ConfigChangedError(ValueError):
  """A resume changed fields that must stay fixed for the whole run."""


def flatten(config_json: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """{"a.b": value} for every leaf of a nested config dict."""
  flat = {}
  for key, value in config_json.items():
    if isinstance(value, Mapping):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _is_fixed(key: str) -> bool:
  if (key.startswith("data.") and key.endswith(_MACHINE_SUFFIXES)) or key in _EVALUATION_PATH:
    return False
  return any(key == fixed or (fixed.endswith(".") and key.startswith(fixed)) for fixed in FIXED)


def changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
  """{dotted key: (saved value, current value)} of the fields that differ (None if absent)."""
  old, new = flatten(saved), flatten(current)
  return {
      key: (old.get(key), new.get(key))
      for key in sorted(set(old) | set(new))
      if old.get(key) != new.get(key)
  }


def check_resume(saved: Mapping[str, Any], current: Mapping[str, Any],
                 where: str) -> dict[str, tuple[Any, Any]]:
  """The run-setting changes of a resume; raises `ConfigChangedError` for fixed fields.

  Args:
    saved: the config saved with the checkpoint being resumed (JSON dict).
    current: the config of this session (JSON dict).
    where: the checkpoint, for the error.
  """
  changed = changes(saved, current)
  fixed = {key: change for key, change in changed.items() if _is_fixed(key)}
  if fixed:
    listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in fixed.items())
    raise ConfigChangedError(
        f"cannot resume {where} with a different {', '.join(fixed)} ({listed}): these fields "
        f"fix the model, data and initialization of a run. Rerun with the checkpoint's values "
        f"(see its config.json) or start a new run in a fresh --workdir")
  return changed


def describe(changed: Mapping[str, tuple[Any, Any]]) -> str:
  """One line listing run-setting changes, e.g. "optimizer.lr 0.01 -> 0.001"."""
  return ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changed.items())


def record(workdir: str | pathlib.Path, config_json: Mapping[str, Any], start_step: int) -> None:
  """Writes config.json, and `config_history/<start_step>.json` when the config differs from
  the latest one in the history (call on process 0 only)."""
  workdir = pathlib.Path(workdir)
  text = json.dumps(config_json, indent=2) + "\n"
  history = workdir / HISTORY_DIR
  history.mkdir(parents=True, exist_ok=True)
  entries = sorted((int(p.stem), p) for p in history.glob("*.json") if p.stem.isdigit())
  if not entries or entries[-1][1].read_text() != text:
    (history / f"{int(start_step)}.json").write_text(text)
  (workdir / CONFIG_FILE).write_text(text)
