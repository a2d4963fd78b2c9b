"""The contract between task definitions, the input pipeline and the train loop.

Every benchmark task is a `TaskDef`: a default data config, a function that turns a data
config into a `TaskSpec` (what the model needs to know), and a function that returns a
random-access source of examples for a split. Family modules (`uea.py`, `listops.py`, ...)
export a `TASKS: dict[str, TaskDef]`; `registry.py` collects them.

An example from a source is a dict of numpy arrays:
  "inputs": (l,) int32 token ids (0 is padding) or (l, C) float32 features;
  "label": int32 scalar, or (num_classes,) float32 multi-hot for multilabel tasks;
  dual tasks (LRA Retrieval) add "inputs2".

Small source helpers every family shares: `SubsetSource` (a split drawn from a larger
source), `MappedSource` (a per-example transform) and `ChannelStandardizer` (per-channel
normalization of continuous inputs, fitted on the train split: a task concern, not the
pipeline's).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol, Sequence

import ml_collections
import numpy as np


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

  def __len__(self) -> int:
    ...

  def __getitem__(self, index: int) -> dict[str, Any]:
    ...


@dataclasses.dataclass(frozen=True)
class TaskDef:
  """A registered task: its default data config, its spec and its example sources."""

  default_config: Callable[[], ml_collections.ConfigDict]
  spec: Callable[[ml_collections.ConfigDict], TaskSpec]
  source: Callable[[ml_collections.ConfigDict, str], ExampleSource]
  splits: tuple[str, ...] = ("train", "validation", "test")


class SubsetSource:
  """The examples of `source` at `indices`, in that order: a split drawn from a larger source."""

  def __init__(self, source: ExampleSource, indices: Sequence[int]):
    self._source = source
    self._indices = np.asarray(indices, dtype=np.int64)
    if self._indices.ndim != 1:
      raise ValueError(f"indices must be 1-D, got shape {self._indices.shape}")
    if len(self._indices) and not 0 <= self._indices.min() <= self._indices.max() < len(source):
      raise ValueError(f"indices must lie in [0, {len(source)}), got "
                       f"[{self._indices.min()}, {self._indices.max()}]")

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index: int) -> dict[str, Any]:
    return self._source[int(self._indices[index])]


class MappedSource:
  """`source` with `fn` applied to each example it returns (fn must be pure: reads use threads)."""

  def __init__(self, source: ExampleSource, fn: Callable[[dict[str, Any]], dict[str, Any]]):
    self._source = source
    self._fn = fn

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, Any]:
    return self._fn(self._source[index])


@dataclasses.dataclass(frozen=True)
class ChannelStandardizer:
  """Per-channel standardization of continuous `inputs` (l, C): `(x - mean) / std`.

  Fit it on the train split only and apply it to every split. Missing values (NaN) become 0
  after standardization, i.e. the channel's train mean. A channel that is constant on the
  train split keeps std 1 (it is only centred).
  """

  mean: np.ndarray  # (C,) float64
  std: np.ndarray  # (C,) float64

  @classmethod
  def fit(cls, source: ExampleSource) -> ChannelStandardizer:
    """Fits mean and std over every observed (non-NaN) time step of every example."""
    count = total_mean = total_m2 = None
    for index in range(len(source)):
      x = np.asarray(source[index]["inputs"], dtype=np.float64)
      if x.ndim != 2:
        raise ValueError(f"ChannelStandardizer needs continuous inputs (l, C), got shape "
                         f"{x.shape} in example {index}")
      n = np.sum(~np.isnan(x), axis=0)
      with np.errstate(invalid="ignore"):
        mean = np.where(n > 0, np.nansum(x, axis=0) / np.maximum(n, 1), 0.0)
        m2 = np.nansum((x - mean)**2, axis=0)
      if count is None:
        count, total_mean, total_m2 = n, mean, m2
        continue
      # Chan et al.'s pairwise update keeps the variance exact for data far from zero.
      combined = count + n
      delta = mean - total_mean
      weight = np.divide(n, combined, out=np.zeros_like(delta), where=combined > 0)
      total_mean = total_mean + delta * weight
      total_m2 = total_m2 + m2 + delta**2 * count * weight
      count = combined
    if count is None:
      raise ValueError("cannot fit a ChannelStandardizer on an empty source")
    if np.any(count == 0):
      raise ValueError(f"channels {np.flatnonzero(count == 0).tolist()} have no observed "
                       "values in the fitting split")
    std = np.sqrt(total_m2 / count)
    return cls(mean=total_mean, std=np.where(std > 1e-12 * (1 + np.abs(total_mean)), std, 1.0))

  def __call__(self, example: dict[str, Any]) -> dict[str, Any]:
    inputs = (np.asarray(example["inputs"], dtype=np.float64) - self.mean) / self.std
    return {**example, "inputs": np.nan_to_num(inputs, nan=0.0).astype(np.float32)}
