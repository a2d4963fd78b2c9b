"""Checkpoints with orbax (the only module importing it), resume, fine-tuning loads, SIGTERM.

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

Integrity: a state with a NaN or infinite array is never saved (`NonFiniteStateError`); the
checksums are saved in the same commit as the arrays and verified on every restore. Resume
takes the latest intact checkpoint: a corrupt or unreadable one is moved to
`<workdir>/corrupt_checkpoints/<step>` with a warning that names it.
"""

from __future__ import annotations

import dataclasses
import pathlib
import signal
import threading
from typing import Any, Callable, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from ms_ssm_jax import checksums

CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
CORRUPT_DIR = "corrupt_checkpoints"
VARIABLES, TRAIN, CONFIG, META, CHECKSUMS = "variables", "train", "config", "meta", "checksums"


class CheckpointMismatchError(ValueError):
  """A checkpoint's arrays do not fit the model or train state they are loaded into."""


class CorruptCheckpointError(ValueError):
  """A checkpoint's arrays differ from the checksums saved with them, or are not finite."""


class NonFiniteStateError(FloatingPointError):
  """A state to be saved holds NaN or infinite values; it was not saved.

  Attributes:
    paths: the '/'-paths of the arrays that are not finite.
  """

  def __init__(self, message: str, paths: list[str]):
    super().__init__(message)
    self.paths = paths


def _describe_paths(paths: list[str], limit: int = 5) -> str:
  return ", ".join(paths[:limit]) + (f" and {len(paths) - limit} more" if len(paths) > limit
                                     else "")


def array_checksums(items: Mapping[str, Any], what: str) -> dict[str, dict[str, str]]:
  """{item: {path: checksum}} of `items`' arrays; raises `NonFiniteStateError` if any is not
  finite (one pass on the devices).

  Args:
    items: item name -> pytree of arrays (e.g. {"variables": ..., "train": ...}).
    what: the state, for the error (e.g. "the state at step 120").
  """
  paths = [(name, path) for name, tree in items.items() for path in tree_paths(tree)]
  leaves = [leaf for tree in items.values() for leaf in tree_paths(tree).values()]
  all_finite, finite, sums = checksums.summarize(leaves)
  if not all_finite:
    bad = [f"{name}/{path}" for (name, path), ok in zip(paths, finite) if not ok]
    raise NonFiniteStateError(f"{what} has NaN or infinite values in {_describe_paths(bad)}",
                              bad)
  result: dict[str, dict[str, str]] = {name: {} for name in items}
  for (name, path), value in zip(paths, sums):
    result[name][path] = value
  return result


def _item_handlers() -> dict[str, Any]:
  # PyTree handlers (not Standard) so that one manager can restore both into sharded abstract
  # targets and, for fine-tuning, into host numpy arrays.
  return {VARIABLES: ocp.PyTreeCheckpointHandler(), TRAIN: ocp.PyTreeCheckpointHandler(),
          CONFIG: ocp.JsonCheckpointHandler(), META: ocp.JsonCheckpointHandler(),
          CHECKSUMS: ocp.JsonCheckpointHandler()}


def _manager(directory: pathlib.Path, *, max_to_keep: int | None = None,
             read_only: bool = False, async_save: bool = True) -> ocp.CheckpointManager:
  # checkpoints/ and best/ save the same step concurrently; without a per-directory prefix
  # their multi-process barriers share names and the processes fail or hang.
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, read_only=read_only, create=not read_only,
      save_interval_steps=0 if read_only else 1,  # orbax warns when it has to reset it
      enable_async_checkpointing=async_save, cleanup_tmp_directories=not read_only,
      multiprocessing_options=ocp.options.MultiprocessingOptions(
          barrier_sync_key_prefix=pathlib.Path(directory).name))
  return ocp.CheckpointManager(directory, item_handlers=_item_handlers(), options=options)


def path_name(path: tuple[Any, ...]) -> str:
  """The '/'-joined name of a pytree key path (e.g. 'params/encoder/kernel')."""
  return "/".join(_key_name(key) for key in path)


def tree_paths(tree: Any) -> dict[str, Any]:
  """Leaves of a pytree keyed by `path_name`."""
  return {path_name(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _key_name(key: Any) -> str:
  for attribute in ("key", "name", "idx"):
    if hasattr(key, attribute):
      return str(getattr(key, attribute))
  return str(key)


def check_shapes(expected: Mapping[str, Any], found: Mapping[str, Any], where: str,
                 hint: str) -> None:
  """Raises `CheckpointMismatchError` unless `found` has exactly the arrays of `expected`.

  Args:
    expected: '/'-path -> array or `ShapeDtypeStruct` (what the model needs; `tree_paths`).
    found: '/'-path -> array or metadata with `.shape` (what the checkpoint holds).
    where: the checkpoint, for the message.
    hint: what the user can do about a mismatch, appended to the message.
  """
  missing = sorted(set(expected) - set(found))
  unexpected = sorted(set(found) - set(expected))
  mismatched = [f"{path}: checkpoint {tuple(found[path].shape)} vs model "
                f"{tuple(expected[path].shape)}"
                for path in sorted(set(expected) & set(found))
                if tuple(found[path].shape) != tuple(expected[path].shape)]
  problems = ([f"shape mismatch at {m}" for m in mismatched]
              + [f"missing in checkpoint: {p}" for p in missing]
              + [f"not in model: {p}" for p in unexpected])
  if problems:
    raise CheckpointMismatchError(
        f"checkpoint {where} does not match the model:\n  " + "\n  ".join(problems[:20])
        + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        + f"\n{hint}")


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
    self._latest.save(step, args=ocp.args.Composite(
        **{VARIABLES: ocp.args.PyTreeSave(items[VARIABLES]),
           TRAIN: ocp.args.PyTreeSave(items[TRAIN]),
           CONFIG: ocp.args.JsonSave(config_json),
           META: ocp.args.JsonSave({"step": int(step)}),
           CHECKSUMS: ocp.args.JsonSave(sums)}), force=True)

  def restore(self, step: int, abstract_items: Mapping[str, Any]) -> dict[str, Any]:
    """Restores `abstract_items` ({"variables": ..., "train": ...}) of `step`, sharded, and
    verifies their checksums (`CorruptCheckpointError`)."""
    return _restore_arrays(self._latest, step, abstract_items)

  def restore_latest(self, abstract_items: Mapping[str, Any],
                     check_config: Callable[[dict[str, Any], str], None]
                     ) -> tuple[int, dict[str, Any]] | None:
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
        config_json = self._latest.restore(step, args=ocp.args.Composite(
            **{CONFIG: ocp.args.JsonRestore()}))[CONFIG]
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
    logging.warning("checkpoint %s/%d is corrupt or unreadable (%s); moved it to %s; trying "
                    "the previous checkpoint", self.directory, step, reason, target)

  def best_score(self) -> float | None:
    """The score of the best checkpoint so far (None before the first)."""
    step = self._best.latest_step()
    if step is None:
      return None
    return float(self._best.restore(step, args=ocp.args.Composite(
        **{META: ocp.args.JsonRestore()}))[META]["score"])

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
    self._best.save(step, args=ocp.args.Composite(
        **{VARIABLES: ocp.args.PyTreeSave(variables),
           CONFIG: ocp.args.JsonSave(config_json),
           META: ocp.args.JsonSave({"step": int(step), "score": float(score),
                                    "metrics": {k: float(v) for k, v in metrics.items()}}),
           CHECKSUMS: ocp.args.JsonSave(sums)}),
        force=True)

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
    check_shapes(tree_paths(abstract), tree_paths(metadata[name]), f"{where}/{name}",
                 "Use the config the checkpoint was saved with (it is stored with it), or a "
                 "fresh workdir.")
  args = {name: ocp.args.PyTreeRestore(abstract, restore_args=_restore_args(abstract))
          for name, abstract in abstract_items.items()}
  restored = manager.restore(step, args=ocp.args.Composite(**args, **_checksums_arg(manager, step)))
  items = {name: restored[name] for name in abstract_items}
  _verify(items, restored[CHECKSUMS] if CHECKSUMS in restored else None, where)
  return items


def _checksums_arg(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
  # Checkpoints saved before checksums were recorded have no such item (and orbax has no
  # metadata for JSON items to tell).
  if (pathlib.Path(manager.directory) / str(step) / CHECKSUMS).is_dir():
    return {CHECKSUMS: ocp.args.JsonRestore()}
  return {}


def _verify(items: Mapping[str, Any], saved: Mapping[str, Any] | None, where: str) -> None:
  """Raises `CorruptCheckpointError` unless `items` have the `saved` checksums and are
  finite."""
  try:
    found = array_checksums(items, f"checkpoint {where}")
  except NonFiniteStateError as e:
    raise CorruptCheckpointError(str(e)) from None
  if saved is None:
    logging.warning("checkpoint %s has no checksums (saved by an older version): not verified",
                    where)
    return
  bad = [f"{name}/{path}" for name in items for path, value in found[name].items()
         if saved.get(name, {}).get(path) != value]
  if bad:
    raise CorruptCheckpointError(f"checkpoint {where}: checksum mismatch in "
                                 f"{_describe_paths(bad)}")


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
  return [int(p.name) for p in directory.iterdir()
          if p.is_dir() and p.name.isdigit() and (p / META).is_dir()]


def load_config_json(ref: CheckpointRef) -> dict[str, Any]:
  """The config saved with a checkpoint (a JSON dict)."""
  return _load_json(ref, CONFIG)


def load_meta(ref: CheckpointRef) -> dict[str, Any]:
  """The meta item of a checkpoint: {"step"}, and for best/ also "score" and "metrics"."""
  return _load_json(ref, META)


def _load_json(ref: CheckpointRef, item: str) -> dict[str, Any]:
  manager = _manager(ref.directory, read_only=True)
  try:
    return manager.restore(ref.step, args=ocp.args.Composite(
        **{item: ocp.args.JsonRestore()}))[item]
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
    restored = manager.restore(ref.step, args=ocp.args.Composite(**{
        VARIABLES: ocp.args.PyTreeRestore(target, restore_args=restore_args)},
        **_checksums_arg(manager, ref.step)))
    variables = restored[VARIABLES]
    _verify({VARIABLES: variables}, restored[CHECKSUMS] if CHECKSUMS in restored else None,
            str(ref))
    return variables
  finally:
    manager.close()


class PreemptionWatcher:
  """Tells the train loop when to save and stop because the job is being preempted.

  Single process: a SIGTERM handler (installed while the context is active) sets a flag that
  the loop reads at the next step boundary. Several processes: JAX's preemption sync point,
  which makes all processes agree on the same step (a per-process flag would deadlock the
  collective save). Use as a context manager in the main thread.
  """

  def __init__(self):
    self._event = threading.Event()
    self._previous_handler = None

  def __enter__(self) -> PreemptionWatcher:
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
    return self

  def __exit__(self, *exc_info) -> None:
    if self._previous_handler is not None:
      signal.signal(signal.SIGTERM, self._previous_handler)
      self._previous_handler = None

  def _on_sigterm(self, signum, frame) -> None:
    del signum, frame
    logging.warning("SIGTERM received: saving a checkpoint at the next step boundary")
    self._event.set()

  def should_stop(self, step: int) -> bool:
    """True once the run should checkpoint `step` and exit (call at every step)."""
    if jax.process_count() > 1:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._event.is_set()
