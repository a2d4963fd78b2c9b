"""Checkpoints with orbax (the only module importing it): save, resume, fine-tuning loads.

A run's workdir holds two orbax `CheckpointManager` directories:
  checkpoints/<step>/   the latest `keep` periodic checkpoints (async saves), for resume;
  best/<step>/          the one checkpoint with the best validation score so far.
Each step directory holds items:
  variables   {"params", "batch_stats"}: the model (what eval and fine-tuning load);
  train       {"step", "opt_state", "rng"}: the rest of the train state (checkpoints/ only);
  config      the run's config as JSON, so that eval can rebuild the model;
  meta        JSON: step, and the score for best/;
  checksums   JSON: {item: {path: checksum}} of every array (`checksums.py`).
Array items are restored into an abstract target (`jax.ShapeDtypeStruct`s with shardings),
after a shape check whose error names the parameter path and both shapes.

Integrity (`checkpoint_integrity.py`, whose errors and path helpers are part of this module's
API): a state with a NaN or infinite array is never saved (`NonFiniteStateError`); the
checksums are saved in the same commit as the arrays and verified on every restore. Resume
takes the latest intact checkpoint: a corrupt or unreadable one is moved to
`<workdir>/corrupt_checkpoints/<step>` with a warning that names it.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Callable, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from ms_ssm_jax.checkpoint_integrity import CheckpointMismatchError
from ms_ssm_jax.checkpoint_integrity import CorruptCheckpointError
from ms_ssm_jax.checkpoint_integrity import NonFiniteStateError
from ms_ssm_jax.checkpoint_integrity import array_checksums
from ms_ssm_jax.checkpoint_integrity import check_shapes
from ms_ssm_jax.checkpoint_integrity import path_name
from ms_ssm_jax.checkpoint_integrity import tree_paths
from ms_ssm_jax.checkpoint_integrity import verify

__all__ = [
    "BEST_DIR", "CHECKPOINTS_DIR", "CHECKSUMS", "CONFIG", "CORRUPT_DIR", "META", "TRAIN",
    "VARIABLES", "CheckpointMismatchError", "CheckpointRef", "CorruptCheckpointError",
    "NonFiniteStateError", "RunCheckpoints", "array_checksums", "check_shapes", "find_checkpoint",
    "load_config_json", "load_meta", "load_variables", "path_name", "tree_paths"
]

CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
CORRUPT_DIR = "corrupt_checkpoints"
VARIABLES, TRAIN, CONFIG, META, CHECKSUMS = "variables", "train", "config", "meta", "checksums"


def _item_handlers() -> dict[str, Any]:
  # PyTree handlers (not Standard) so that one manager can restore both into sharded abstract
  # targets and, for fine-tuning, into host numpy arrays.
  return {
      VARIABLES: ocp.PyTreeCheckpointHandler(), TRAIN: ocp.PyTreeCheckpointHandler(),
      CONFIG: ocp.JsonCheckpointHandler(), META: ocp.JsonCheckpointHandler(),
      CHECKSUMS: ocp.JsonCheckpointHandler()
  }


def _manager(directory: pathlib.Path, *, max_to_keep: int | None = None, read_only: bool = False,
             async_save: bool = True) -> ocp.CheckpointManager:
  # checkpoints/ and best/ save the same step concurrently; without a per-directory prefix
  # their multi-process barriers share names and the processes fail or hang.
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep,
      read_only=read_only,
      create=not read_only,
      save_interval_steps=0 if read_only else 1,  # orbax warns when it has to reset it
      enable_async_checkpointing=async_save,
      cleanup_tmp_directories=not read_only,
      multiprocessing_options=ocp.options.MultiprocessingOptions(
          barrier_sync_key_prefix=pathlib.Path(directory).name))
  return ocp.CheckpointManager(directory, item_handlers=_item_handlers(), options=options)


def _restore_args(abstract: Any) -> Any:
  return ocp.checkpoint_utils.construct_restore_args(abstract)


class RunCheckpoints:
  """The periodic and best checkpoints of one training run (see the module docstring)."""

  def __init__(self, workdir: str | pathlib.Path, *, keep: int, async_save: bool = True):
    if keep < 1:
      raise ValueError(f"config.train.keep_checkpoints must be >= 1, got {keep}")
    # orbax requires absolute paths; users pass relative workdirs.
    workdir = pathlib.Path(workdir).expanduser().absolute()
    self._workdir = workdir
    self._latest = _manager(workdir / CHECKPOINTS_DIR, max_to_keep=keep, async_save=async_save)
    self._best = _manager(workdir / BEST_DIR, max_to_keep=1, async_save=async_save)

  @property
  def directory(self) -> pathlib.Path:
    return pathlib.Path(self._latest.directory)

  def latest_step(self) -> int | None:
    return self._latest.latest_step()

  def save(self, step: int, items: Mapping[str, Any], config_json: Any) -> None:
    """Saves `items` ({"variables": ..., "train": ...}) at `step`, asynchronously.

    Raises `NonFiniteStateError` (and saves nothing) if an array is not finite. Returns once
    the arrays are copied off the devices, so the caller may donate them.
    """
    sums = array_checksums(items, f"the state at step {step}")
    self._latest.save(
        step, args=ocp.args.Composite(
            **{
                VARIABLES: ocp.args.PyTreeSave(items[VARIABLES]), TRAIN: ocp.args.PyTreeSave(
                    items[TRAIN]), CONFIG: ocp.args.JsonSave(config_json), META: ocp.args.JsonSave(
                        {"step": int(step)}), CHECKSUMS: ocp.args.JsonSave(sums)
            }), force=True)

  def restore(self, step: int, abstract_items: Mapping[str, Any]) -> dict[str, Any]:
    """Restores `abstract_items` ({"variables": ..., "train": ...}) of `step`, sharded, and
    verifies their checksums (`CorruptCheckpointError`)."""
    return _restore_arrays(self._latest, step, abstract_items)

  def restore_latest(
      self, abstract_items: Mapping[str, Any],
      check_config: Callable[[dict[str, Any], str], None]) -> tuple[int, dict[str, Any]] | None:
    """(step, items) of the latest intact checkpoint; None when there is none.

    A checkpoint that is corrupt (checksum mismatch, NaN) or unreadable (truncated or garbage
    files) is moved to `<workdir>/corrupt_checkpoints/` with a warning that names its step,
    and the one before it is tried. `check_config(saved_config_json, where)` sees each
    checkpoint's config before its arrays are read; its errors, and a checkpoint that does
    not fit `abstract_items` (`CheckpointMismatchError`), propagate: they are config changes,
    not damage.
    """
    steps = sorted(self._latest.all_steps(), reverse=True)
    for step in steps:
      where = f"{self.directory}/{step}"
      try:
        config_json = self._latest.restore(
            step, args=ocp.args.Composite(**{CONFIG: ocp.args.JsonRestore()}))[CONFIG]
      except Exception as e:  # pylint: disable=broad-except  # any damage means: fall back
        self._set_aside(step, e)
        continue
      check_config(config_json, where)
      try:
        return step, _restore_arrays(self._latest, step, abstract_items)
      except CheckpointMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        self._set_aside(step, e)
    if steps:
      raise CorruptCheckpointError(
          f"no intact checkpoint in {self.directory}: steps {sorted(steps)} are corrupt or "
          f"unreadable (moved to {self._workdir / CORRUPT_DIR}); rerun to start from step 0")
    return None

  def _set_aside(self, step: int, error: Exception) -> None:
    """Warns about a damaged step and moves it out of the manager's directory (so that the
    step can be saved again)."""
    reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
    target = self._workdir / CORRUPT_DIR / str(step)
    if jax.process_index() == 0:
      target.parent.mkdir(parents=True, exist_ok=True)
      suffix = 0
      while target.exists():
        suffix += 1
        target = self._workdir / CORRUPT_DIR / f"{step}.{suffix}"
      (self.directory / str(step)).rename(target)
    multihost_utils.sync_global_devices(f"set aside checkpoint {step}")
    self._latest.reload()
    logging.warning(
        "checkpoint %s/%d is corrupt or unreadable (%s); moved it to %s; trying "
        "the previous checkpoint", self.directory, step, reason, target)

  def best_score(self) -> float | None:
    """The score of the best checkpoint so far (None before the first)."""
    step = self._best.latest_step()
    if step is None:
      return None
    return float(
        self._best.restore(
            step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))[META]["score"])

  def save_best(self, step: int, variables: Any, config_json: Any, score: float,
                metrics: Mapping[str, float]) -> None:
    """Replaces the best checkpoint by the model at `step` with validation `score`.

    Raises `NonFiniteStateError` (and saves nothing) if an array is not finite.
    """
    sums = array_checksums({VARIABLES: variables}, f"the model at step {step}")
    if step in self._best.all_steps():
      # A resumed run re-evaluates steps after its last checkpoint; on hardware whose sums
      # are not bitwise reproducible the same step can score higher the second time.
      self._best.delete(step)
    self._best.save(
        step, args=ocp.args.Composite(
            **{
                VARIABLES:
                    ocp.args.PyTreeSave(variables), CONFIG:
                        ocp.args.JsonSave(config_json), META:
                            ocp.args.JsonSave({
                                "step": int(step), "score": float(score),
                                "metrics": {k: float(v) for k, v in metrics.items()}
                            }), CHECKSUMS:
                                ocp.args.JsonSave(sums)
            }), force=True)

  def wait_until_finished(self) -> None:
    """Blocks until every pending async save is on disk."""
    self._latest.wait_until_finished()
    self._best.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the managers."""
    self.wait_until_finished()
    self._latest.close()
    self._best.close()

  def __enter__(self) -> RunCheckpoints:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def _restore_arrays(manager: ocp.CheckpointManager, step: int,
                    abstract_items: Mapping[str, Any]) -> dict[str, Any]:
  where = f"{manager.directory}/{step}"
  metadata = manager.item_metadata(step)
  for name, abstract in abstract_items.items():
    if metadata[name] is None:
      raise CheckpointMismatchError(f"checkpoint {where} has no item {name!r}")
    check_shapes(
        tree_paths(abstract), tree_paths(metadata[name]), f"{where}/{name}",
        "Use the config the checkpoint was saved with (it is stored with it), or a "
        "fresh workdir.")
  args = {
      name: ocp.args.PyTreeRestore(abstract, restore_args=_restore_args(abstract))
      for name, abstract in abstract_items.items()
  }
  restored = manager.restore(step, args=ocp.args.Composite(**args, **_checksums_arg(manager, step)))
  items = {name: restored[name] for name in abstract_items}
  verify(items, restored[CHECKSUMS] if CHECKSUMS in restored else None, where)
  return items


def _checksums_arg(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
  # Checkpoints saved before checksums were recorded have no such item (and orbax has no
  # metadata for JSON items to tell).
  if (pathlib.Path(manager.directory) / str(step) / CHECKSUMS).is_dir():
    return {CHECKSUMS: ocp.args.JsonRestore()}
  return {}


@dataclasses.dataclass(frozen=True)
class CheckpointRef:
  """One step of one checkpoint directory (`checkpoints/` or `best/` of a run)."""

  directory: pathlib.Path
  step: int

  def __str__(self) -> str:
    return f"{self.directory}/{self.step}"


def find_checkpoint(path: str | pathlib.Path, prefer: str = "best") -> CheckpointRef:
  """Resolves a user-given checkpoint path.

  Args:
    path: a run workdir (uses `best/` or `checkpoints/` by `prefer`, falling back to the
      other one when it is empty), a checkpoint directory (its latest step) or a step
      directory inside one (`.../checkpoints/1000`).
    prefer: "best" or "latest", for run workdirs.
  """
  if prefer not in ("best", "latest"):
    raise ValueError(f"prefer must be 'best' or 'latest', got {prefer!r}")
  path = pathlib.Path(path).expanduser().absolute()
  if not path.is_dir():
    raise FileNotFoundError(f"checkpoint path {path} does not exist (expected a run workdir, a "
                            f"{CHECKPOINTS_DIR}/ or {BEST_DIR}/ directory, or a step directory)")
  if path.name.isdigit() and (path / META).is_dir():
    return CheckpointRef(path.parent, int(path.name))
  order = (BEST_DIR, CHECKPOINTS_DIR) if prefer == "best" else (CHECKPOINTS_DIR, BEST_DIR)
  candidates = [path / name for name in order if (path / name).is_dir()] or [path]
  for directory in candidates:
    steps = _steps(directory)
    if steps:
      return CheckpointRef(directory, max(steps))
  raise FileNotFoundError(f"no checkpoint found under {path}")


def _steps(directory: pathlib.Path) -> list[int]:
  # Only finished saves: orbax writes to a temporary name and renames when committed.
  return [
      int(p.name)
      for p in directory.iterdir()
      if p.is_dir() and p.name.isdigit() and (p / META).is_dir()
  ]


def load_config_json(ref: CheckpointRef) -> dict[str, Any]:
  """The config saved with a checkpoint (a JSON dict)."""
  return _load_json(ref, CONFIG)


def load_meta(ref: CheckpointRef) -> dict[str, Any]:
  """The meta item of a checkpoint: {"step"}, and for best/ also "score" and "metrics"."""
  return _load_json(ref, META)


def _load_json(ref: CheckpointRef, item: str) -> dict[str, Any]:
  manager = _manager(ref.directory, read_only=True)
  try:
    return manager.restore(ref.step,
                           args=ocp.args.Composite(**{item: ocp.args.JsonRestore()}))[item]
  finally:
    manager.close()


def load_variables(ref: CheckpointRef, abstract_variables: Any | None = None) -> Any:
  """The model variables ({"params", "batch_stats"}) of a checkpoint.

  Args:
    ref: the checkpoint.
    abstract_variables: a target of `ShapeDtypeStruct`s with shardings; the checkpoint must
      match it exactly. None restores host numpy arrays of the saved shapes (fine-tuning
      compares and merges them itself).
  """
  manager = _manager(ref.directory, read_only=True)
  try:
    if abstract_variables is not None:
      return _restore_arrays(manager, ref.step, {VARIABLES: abstract_variables})[VARIABLES]
    metadata = manager.item_metadata(ref.step)[VARIABLES]
    if metadata is None:
      raise CheckpointMismatchError(f"checkpoint {ref} has no model variables")
    target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), metadata)
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
    restored = manager.restore(
        ref.step, args=ocp.args.Composite(
            **{VARIABLES: ocp.args.PyTreeRestore(target, restore_args=restore_args)},
            **_checksums_arg(manager, ref.step)))
    variables = restored[VARIABLES]
    verify({VARIABLES: variables}, restored[CHECKSUMS] if CHECKSUMS in restored else None, str(ref))
    return variables
  finally:
    manager.close()
