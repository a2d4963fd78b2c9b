"""Synthetic memory tasks that need recall over the whole sequence, with the length as a parameter.

Both are per-example classification tasks (one label per sequence), generated on the fly: example
`i` of a split is a pure function of `np.random.default_rng([seed, split_id, i])`, so any example
can be read in any order, on any host, with no files. Splits are disjoint random streams;
with the default sizes a repeated example across splits is astronomically unlikely, but it is
not ruled out.

`associative_recall` (as in Ba et al., 2016, "Using fast weights to attend to the recent past",
and the associative-recall probes of Zoology, Arora et al., 2023): `n = (L - 2) / 2` key-value
pairs with distinct keys, then a query marker and one of the keys,

    k_1 v_1 k_2 v_2 ... k_n v_n QUERY k_q      label: the value bound to k_q.

Token ids: 0 padding, 1 QUERY, `2 + k` key k (k < num_keys), `2 + num_keys + v` value v
(v < num_values); the label is v (num_values classes).

`selective_copying`: the selective copying task of Mamba (Gu & Dao, 2023) asks for all data
tokens, scattered at random positions among noise tokens, in order. To fit one class label per
sequence we ask for one of them: the sequence holds `num_data_tokens` data tokens at random
(sorted, distinct) positions among noise in its first `L - 1` steps, and its last token names an
index j; the label is the j-th data token (from 0, in order of position). A causal model must
therefore keep every data token and its rank until the end, as in the original task.

Token ids: 0 padding, 1 noise, `2 + j` the query for index j (j < num_data_tokens),
`2 + num_data_tokens + v` data value v (v < num_values); the label is v.
"""

from __future__ import annotations

import functools
import operator
from typing import Callable

import ml_collections
import numpy as np

from ms_ssm_jax.data.task import TaskDef, TaskSpec

SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}
PAD_ID = 0
QUERY_ID = 1  # associative recall
NOISE_ID = 1  # selective copying
_FIRST_FREE_ID = 2


def associative_recall_vocab_size(num_keys: int, num_values: int) -> int:
  return _FIRST_FREE_ID + num_keys + num_values


def selective_copying_vocab_size(num_data_tokens: int, num_values: int) -> int:
  return _FIRST_FREE_ID + num_data_tokens + num_values


def associative_recall_example(rng: np.random.Generator, *, length: int, num_keys: int,
                               num_values: int) -> tuple[np.ndarray, int]:
  """One sequence `(length,)` int32 of key-value pairs, QUERY and a key; and its label."""
  num_pairs = (length - 2) // 2
  keys = rng.choice(num_keys, size=num_pairs, replace=False)
  values = rng.integers(0, num_values, size=num_pairs)
  query = rng.integers(0, num_pairs)
  inputs = np.empty(length, np.int32)
  inputs[0:-2:2] = _FIRST_FREE_ID + keys
  inputs[1:-2:2] = _FIRST_FREE_ID + num_keys + values
  inputs[-2] = QUERY_ID
  inputs[-1] = _FIRST_FREE_ID + keys[query]
  return inputs, int(values[query])


def selective_copying_example(rng: np.random.Generator, *, length: int, num_data_tokens: int,
                              num_values: int) -> tuple[np.ndarray, int]:
  """One sequence `(length,)` int32 of data tokens among noise, then a query index; its label."""
  positions = np.sort(rng.choice(length - 1, size=num_data_tokens, replace=False))
  values = rng.integers(0, num_values, size=num_data_tokens)
  query = rng.integers(0, num_data_tokens)
  inputs = np.full(length, NOISE_ID, np.int32)
  inputs[positions] = _FIRST_FREE_ID + num_data_tokens + values
  inputs[-1] = _FIRST_FREE_ID + query
  return inputs, int(values[query])


class SyntheticSource:
  """Random access to one split; example `i` comes from `default_rng([seed, split_id, i])`."""

  def __init__(
      self,
      make_example: Callable[[np.random.Generator], tuple[np.ndarray, int]],
      *,
      seed: int,
      split: str,
      size: int,
  ):
    self._make_example = make_example
    self._seed = seed
    self._split_id = SPLIT_IDS[split]
    self._size = size

  def __len__(self) -> int:
    return self._size

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    index = operator.index(index)
    if not 0 <= index < self._size:
      raise IndexError(f"example {index} out of range for a split of {self._size}")
    rng = np.random.default_rng([self._seed, self._split_id, index])
    inputs, label = self._make_example(rng)
    return {"inputs": inputs, "label": np.asarray(label, np.int32)}


def _base_config(name: str, length: int) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.name = name
  config.length = length  # every sequence has exactly this many tokens
  config.num_train = 100_000
  config.num_validation = 2_000
  config.num_test = 2_000
  config.seed = 0
  return config


def _check_common(config: ml_collections.ConfigDict) -> None:
  sizes = (config.num_train, config.num_validation, config.num_test)
  if min(sizes) < 1 or config.seed < 0:
    raise ValueError(
        f"{config.name}: split sizes must be >= 1 and seed >= 0, got sizes {sizes} and seed "
        f"{config.seed}")


def _make_source(config, split, make_example) -> SyntheticSource:
  if split not in SPLIT_IDS:
    raise ValueError(f"{config.name}: unknown split {split!r}; known: {', '.join(SPLIT_IDS)}")
  sizes = {"train": config.num_train, "validation": config.num_validation,
           "test": config.num_test}  # fmt: skip
  return SyntheticSource(make_example, seed=config.seed, split=split, size=sizes[split])


def associative_recall_config() -> ml_collections.ConfigDict:
  """255 key-value pairs (length 512) over 512 keys, 16 values (classes)."""
  config = _base_config("associative_recall", length=512)
  config.num_keys = 512  # at least the number of pairs, (length - 2) / 2: keys are distinct
  config.num_values = 16
  return config


def associative_recall_spec(config: ml_collections.ConfigDict) -> TaskSpec:
  _check_common(config)
  if config.length < 4 or config.length % 2:
    raise ValueError(f"associative_recall: length must be even and >= 4 (pairs, QUERY, key), got "
                     f"{config.length}")
  num_pairs = (config.length - 2) // 2
  if config.num_keys < num_pairs:
    raise ValueError(
        f"associative_recall: length {config.length} holds {num_pairs} pairs with distinct keys, "
        f"but num_keys is {config.num_keys}; set num_keys >= {num_pairs}")
  if config.num_values < 2:
    raise ValueError(f"associative_recall: num_values must be >= 2, got {config.num_values}")
  return TaskSpec(
      name="associative_recall",
      input_type="tokens",
      vocab_size=associative_recall_vocab_size(config.num_keys, config.num_values),
      num_classes=config.num_values,
      max_length=config.length,
  )


def associative_recall_source(config: ml_collections.ConfigDict, split: str) -> SyntheticSource:
  associative_recall_spec(config)
  make_example = functools.partial(
      associative_recall_example,
      length=config.length,
      num_keys=config.num_keys,
      num_values=config.num_values,
  )
  return _make_source(config, split, make_example)


def selective_copying_config() -> ml_collections.ConfigDict:
  """16 data tokens with 16 values (classes) among noise, 1024 tokens in all."""
  config = _base_config("selective_copying", length=1024)
  config.num_data_tokens = 16
  config.num_values = 16
  return config


def selective_copying_spec(config: ml_collections.ConfigDict) -> TaskSpec:
  _check_common(config)
  if config.num_data_tokens < 1 or config.length - 1 < config.num_data_tokens:
    raise ValueError(
        f"selective_copying: need 1 <= num_data_tokens <= length - 1, got num_data_tokens "
        f"{config.num_data_tokens} and length {config.length}")
  if config.num_values < 2:
    raise ValueError(f"selective_copying: num_values must be >= 2, got {config.num_values}")
  return TaskSpec(
      name="selective_copying",
      input_type="tokens",
      vocab_size=selective_copying_vocab_size(config.num_data_tokens, config.num_values),
      num_classes=config.num_values,
      max_length=config.length,
  )


def selective_copying_source(config: ml_collections.ConfigDict, split: str) -> SyntheticSource:
  selective_copying_spec(config)
  make_example = functools.partial(
      selective_copying_example,
      length=config.length,
      num_data_tokens=config.num_data_tokens,
      num_values=config.num_values,
  )
  return _make_source(config, split, make_example)


TASKS = {
    "associative_recall":
        TaskDef(
            default_config=associative_recall_config,
            spec=associative_recall_spec,
            source=associative_recall_source,
        ),
    "selective_copying":
        TaskDef(
            default_config=selective_copying_config,
            spec=selective_copying_spec,
            source=selective_copying_source,
        ),
}
