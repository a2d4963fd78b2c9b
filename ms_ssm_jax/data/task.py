"""The contract between task definitions, the input pipeline and the train loop.

Every benchmark task is a `TaskDef`: a default data config, a function that turns a data
config into a `TaskSpec` (what the model needs to know), and a function that returns a
random-access source of examples for a split. Family modules (`uea.py`, `listops.py`, ...)
export a `TASKS: dict[str, TaskDef]`; `registry.py` collects them.

An example from a source is a dict of numpy arrays:
  "inputs": (l,) int32 token ids (0 is padding) or (l, C) float32 features;
  "label": int32 scalar, or (num_classes,) float32 multi-hot for multilabel tasks;
  dual tasks (LRA Retrieval) add "inputs2".
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import ml_collections


class MissingDataError(FileNotFoundError):
  """User-provided data files are missing; the message says which, from where, and where to."""


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """What the model and the loss need to know about a task."""

  name: str
  input_type: str  # "tokens" or "continuous"
  num_classes: int
  max_length: int
  vocab_size: int | None = None  # tokens: ids in [0, vocab_size), 0 is padding
  num_channels: int | None = None  # continuous: features per step
  target: str = "class"  # "class" (int labels) or "multilabel" (multi-hot float labels)
  dual: bool = False  # two sequences per example (LRA Retrieval)
  metric: str = "accuracy"  # "accuracy" or "auroc"

  def __post_init__(self):
    if self.input_type not in ("tokens", "continuous"):
      raise ValueError(f"input_type must be 'tokens' or 'continuous', got {self.input_type!r}")
    if self.input_type == "tokens" and not self.vocab_size:
      raise ValueError(f"task {self.name!r}: token inputs need vocab_size")
    if self.input_type == "continuous" and not self.num_channels:
      raise ValueError(f"task {self.name!r}: continuous inputs need num_channels")
    if self.target not in ("class", "multilabel"):
      raise ValueError(f"target must be 'class' or 'multilabel', got {self.target!r}")


class ExampleSource(Protocol):
  """Random access to the examples of one split (e.g. what `tfds.data_source` returns)."""

  def __len__(self) -> int: ...

  def __getitem__(self, index: int) -> dict[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class TaskDef:
  """A registered task: its default data config, its spec and its example sources."""

  default_config: Callable[[], ml_collections.ConfigDict]
  spec: Callable[[ml_collections.ConfigDict], TaskSpec]
  source: Callable[[ml_collections.ConfigDict, str], ExampleSource]
  splits: tuple[str, ...] = ("train", "validation", "test")
