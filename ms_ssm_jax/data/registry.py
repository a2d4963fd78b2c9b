"""The task registry: task names to `TaskDef`s, collected from the family modules.

Family modules are imported on the first lookup, and the pipeline (grain, which imports JAX)
on the first `make_iterator`, not when `ms_ssm_jax.data` is imported: importing the package
stays cheap.
"""

from __future__ import annotations

import functools
import importlib
from typing import Iterator

import ml_collections
import numpy as np

from ms_ssm_jax.data.task import SubsetSource, TaskDef, TaskSpec

# Each module defines `TASKS: dict[str, TaskDef]`.
FAMILY_MODULES = ("uea", "listops", "synthetic", "pathfinder", "lra_release", "images", "digits",
                  "text", "ptbxl")


@functools.cache
def _all_tasks() -> dict[str, TaskDef]:
  tasks: dict[str, TaskDef] = {}
  origin: dict[str, str] = {}
  for family in FAMILY_MODULES:
    module_name = f"{__package__}.{family}"
    try:
      module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
      if e.name == module_name:  # a family not written yet; errors inside a module propagate
        continue
      raise
    if not isinstance(getattr(module, "TASKS", None), dict):
      raise TypeError(f"{module_name} must define TASKS: dict[str, TaskDef]")
    for name, task in module.TASKS.items():
      if name in tasks:
        raise ValueError(f"task {name!r} is defined by both {origin[name]} and {module_name}")
      tasks[name], origin[name] = task, module_name
  return tasks


def list_tasks() -> list[str]:
  """The names of all registered tasks, sorted."""
  return sorted(_all_tasks())


def get_task_def(name: str) -> TaskDef:
  """The registered definition of task `name` (its config, spec, sources and splits)."""
  tasks = _all_tasks()
  if name not in tasks:
    raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(tasks))}")
  return tasks[name]


def default_data_config(name: str) -> ml_collections.ConfigDict:
  """The default data config of task `name` (its `name` field is `name`)."""
  config = get_task_def(name).default_config()
  if config.name != name:
    raise ValueError(f"the default config of task {name!r} has name {config.name!r}")
  return config


def get_task(data_config: ml_collections.ConfigDict) -> TaskSpec:
  """The spec of the task `data_config.name` (may build its dataset on first use)."""
  return get_task_def(data_config.name).spec(data_config)


def get_source(data_config: ml_collections.ConfigDict, split: str):
  """The random-access example source of one split."""
  task = get_task_def(data_config.name)
  if split not in task.splits:
    raise ValueError(f"task {data_config.name!r} has no split {split!r}; its splits: "
                     f"{list(task.splits)}")
  return task.source(data_config, split)


def num_examples(data_config: ml_collections.ConfigDict, split: str) -> int:
  """The number of examples of one split (before padding or repetition)."""
  return len(get_source(data_config, split))


def make_iterator(data_config: ml_collections.ConfigDict, split: str, *, global_batch_size: int,
                  seed: int, shuffle: bool, drop_remainder: bool, start_step: int = 0,
                  process_index: int | None = None, process_count: int | None = None,
                  max_examples: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """Yields this process's share of each global batch of `split`.

  `drop_remainder=True` gives a training stream that repeats forever; `False` one evaluation
  pass whose last batch is padded with weight-0 examples. See `pipeline.py` for the batch
  format and for how processes share a global batch. `process_index` and `process_count`
  default to JAX's. `max_examples` keeps only the split's first examples (in stored order,
  before any shuffling), e.g. a fixed evaluation slice.
  """
  # pylint: disable=g-import-not-at-top  # deferred: see the module docstring
  import jax
  from ms_ssm_jax.data import pipeline
  # pylint: enable=g-import-not-at-top

  if process_index is None:
    process_index = jax.process_index()
  if process_count is None:
    process_count = jax.process_count()
  source = get_source(data_config, split)
  if max_examples is not None:
    if max_examples < 1:
      raise ValueError(f"max_examples must be >= 1, got {max_examples}")
    source = SubsetSource(source, range(min(max_examples, len(source))))
  return pipeline.make_batch_iterator(source, get_task(data_config),
                                      global_batch_size=global_batch_size, seed=seed,
                                      shuffle=shuffle, drop_remainder=drop_remainder,
                                      start_step=start_step, process_index=process_index,
                                      process_count=process_count)
