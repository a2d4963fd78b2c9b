"""Fine-tuning loads: a checkpoint's or zoo entry's arrays merged into fresh model variables,
and host arrays placed on the devices with a model's shardings.

Kept apart from checkpointing.py (which owns orbax and the run's checkpoint files): these
functions only compare and place arrays that `checkpointing` or `zoo` have loaded.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

import jax
import numpy as np

from ms_ssm_jax import checkpointing
from ms_ssm_jax import zoo

INIT_HEAD_MODES = ("keep", "reinit")
# Parameters under this top-level module form the classifier head (model.py names it).
HEAD_MODULE = "head"


def fine_tune_variables(variables: dict[str, Any], init_from: str,
                        init_head: str) -> dict[str, Any]:
  """Model variables loaded from a checkpoint or a zoo entry, merged into fresh `variables`.

  Args:
    variables: the fresh {"params", "batch_stats"} of the model to fine-tune (sharded).
    init_from: a run workdir or checkpoint directory (`checkpointing.find_checkpoint`), or
      the name of a zoo entry (`ms_ssm_jax.zoo`).
    init_head: which arrays keep their fresh initialization: "keep" none, "reinit" the head
      (parameters under `HEAD_MODULE`, e.g. when the number of classes changes), or a regex
      that fully matches the '/'-joined paths below the collection to re-initialize, e.g.
      'head/.*|encoder/.*' when the number of input channels changes too. Every other array
      must match the source's shape.
  """
  target = checkpointing.tree_paths(variables)
  reinit = _reinit_pattern(init_head, target)

  def is_reinit(path: str) -> bool:
    return reinit is not None and reinit.fullmatch(path.split("/", 1)[-1]) is not None

  source, where = _fine_tune_source(init_from)
  kept_target = {p: v for p, v in target.items() if not is_reinit(p)}
  kept_source = {p: v for p, v in source.items() if not is_reinit(p)}
  differing = sorted({
      p.split("/")[1]
      for p in set(kept_target) & set(kept_source)
      if tuple(kept_target[p].shape) != tuple(kept_source[p].shape)
  })
  suggestion = "|".join([f"{module}/.*" for module in differing] +
                        ([reinit.pattern] if reinit is not None else []))
  checkpointing.check_shapes(
      kept_target, kept_source, where,
      "Fine-tuning loads every array that config.init_head does not re-initialize: use the "
      "source's model config (a zoo entry's is its manifest `config`)" +
      (f", or re-initialize the modules whose shapes differ with "
       f"--config.init_head='{suggestion}'" if differing else "") + ".")

  def merge(path, leaf):
    name = checkpointing.path_name(path)
    return leaf if is_reinit(name) else _put_like(source[name], leaf)

  return jax.tree_util.tree_map_with_path(merge, variables)


def _reinit_pattern(init_head: str, target: dict[str, Any]) -> re.Pattern[str] | None:
  """`config.init_head` as a regex over paths below the collection (None: keep everything)."""
  if init_head == "keep":
    return None
  pattern = f"{HEAD_MODULE}/.*" if init_head == "reinit" else init_head
  try:
    compiled = re.compile(pattern)
  except re.error as e:
    raise ValueError(f"config.init_head={init_head!r} is not {INIT_HEAD_MODES} nor a valid "
                     f"regex: {e}") from None
  if not any(compiled.fullmatch(path.split("/", 1)[-1]) for path in target):
    raise ValueError(f"config.init_head={init_head!r} re-initializes nothing: no parameter path "
                     f"fully matches {pattern!r}. Use one of {INIT_HEAD_MODES} or a regex over "
                     "paths such as 'head/.*|encoder/.*'")
  return compiled


def _fine_tune_source(init_from: str) -> tuple[dict[str, Any], str]:
  """The '/'-path -> host array map of `config.init_from`, and a name for messages."""
  path = pathlib.Path(init_from).expanduser()
  if zoo.is_zoo_name(init_from):
    if path.exists():
      raise ValueError(f"config.init_from={init_from!r} names both a zoo entry and the path "
                       f"{path.absolute()}; pass ./{init_from} for the path")
    return checkpointing.tree_paths(zoo.load_variables(init_from)), f"zoo entry {init_from!r}"
  if not path.exists():
    names = ", ".join(entry.name for entry in zoo.list_entries()) or "none"
    raise FileNotFoundError(f"config.init_from={init_from!r}: the path {path.absolute()} does "
                            f"not exist and it is not a zoo name (zoo entries: {names})")
  ref = checkpointing.find_checkpoint(init_from, prefer="best")
  return checkpointing.tree_paths(checkpointing.load_variables(ref)), str(ref)


def place_variables(host: Any, target: Any, where: str) -> Any:
  """Host arrays `host` put on devices with `target`'s dtypes and shardings.

  Args:
    host: a pytree of numpy arrays (e.g. a zoo entry's variables).
    target: the matching pytree of `ShapeDtypeStruct`s with shardings.
    where: the source, for the error when the arrays do not match the model.
  """
  found = checkpointing.tree_paths(host)
  checkpointing.check_shapes(checkpointing.tree_paths(target), found, where,
                             "Use the config that the variables were saved with.")
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: _put_like(found[checkpointing.path_name(path)], leaf), target)


def _put_like(value: Any, leaf: Any) -> jax.Array:
  """`value` on devices with the dtype and sharding of `leaf` (an array or ShapeDtypeStruct)."""
  return jax.device_put(np.asarray(value, dtype=leaf.dtype), leaf.sharding)
