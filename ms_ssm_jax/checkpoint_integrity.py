"""What a checkpoint's arrays must satisfy: the model's paths and shapes, finite values, and
the checksums saved with them (`checksums.py`).

Checks only; `checkpointing.py` (which owns orbax) saves and restores, and calls them before
every save and after every restore. Arrays are named by their '/'-joined pytree paths
(`tree_paths`), the names every message uses.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
from absl import logging

from ms_ssm_jax import checksums


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
  return ", ".join(
      paths[:limit]) + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


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
  mismatched = [
      f"{path}: checkpoint {tuple(found[path].shape)} vs model "
      f"{tuple(expected[path].shape)}"
      for path in sorted(set(expected) & set(found))
      if tuple(found[path].shape) != tuple(expected[path].shape)
  ]
  problems = ([f"shape mismatch at {m}" for m in mismatched] +
              [f"missing in checkpoint: {p}" for p in missing] +
              [f"not in model: {p}" for p in unexpected])
  if problems:
    raise CheckpointMismatchError(
        f"checkpoint {where} does not match the model:\n  " + "\n  ".join(problems[:20]) +
        (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "") + f"\n{hint}")


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
    raise NonFiniteStateError(f"{what} has NaN or infinite values in {_describe_paths(bad)}", bad)
  result: dict[str, dict[str, str]] = {name: {} for name in items}
  for (name, path), value in zip(paths, sums):
    result[name][path] = value
  return result


def verify(items: Mapping[str, Any], saved: Mapping[str, Any] | None, where: str) -> None:
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
  bad = [
      f"{name}/{path}" for name in items for path, value in found[name].items()
      if saved.get(name, {}).get(path) != value
  ]
  if bad:
    raise CorruptCheckpointError(f"checkpoint {where}: checksum mismatch in "
                                 f"{_describe_paths(bad)}")
