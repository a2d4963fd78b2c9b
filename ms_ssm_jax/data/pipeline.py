"""Batches of static shape from a random-access example source, with grain.

The stream is defined on global positions, so that it does not depend on how many processes
read it: global batch `g` holds positions `[g * B, (g + 1) * B)` of the (shuffled) example
stream, and process `p` of `n` reads the contiguous rows `[p * b, (p + 1) * b)` of it, with
`b = B / n`. Concatenating the processes' batches in process order gives the single-process
batch exactly, and `start_step=k` starts at global batch `k` without reading the ones before.

Two modes, chosen by `drop_remainder`:
- training (`True`): the source repeats forever; with `shuffle`, every pass over it is a new
  seeded permutation (grain's per-epoch reshuffle). Batches may straddle two passes, so no
  example is dropped and every batch is full.
- evaluation (`False`): one pass; the last global batch is filled with weight-0 copies of the
  first example, so every process yields the same number of batches.

Batches are dicts of numpy arrays (b = per-process batch, L = `spec.max_length`):
  inputs (b, L) int32 or (b, L, C) float32, lengths (b,) int32, labels (b,) int32 or
  (b, num_classes) float32, weights (b,) float32; dual tasks add inputs2 and lengths2.
"""

from __future__ import annotations

import functools
from typing import Any, Iterator

import grain
import numpy as np

from ms_ssm_jax.data.task import ExampleSource, TaskSpec

# Batches read in parallel; each thread assembles whole batches.
_READ_OPTIONS = grain.ReadOptions(num_threads=4, prefetch_buffer_size=8)


def pad_sequence(sequence: Any, spec: TaskSpec, what: str) -> tuple[np.ndarray, np.int32]:
  """Truncates or zero-pads one sequence to `spec.max_length`.

  Args:
    sequence: (l,) token ids or (l, C) features.
    spec: the task.
    what: the sequence's name, for error messages.

  Returns:
    (L,) int32 or (L, C) float32, and min(l, L) as int32.
  """
  if spec.input_type == "tokens":
    x = np.asarray(sequence)
    if x.ndim != 1 or not np.issubdtype(x.dtype, np.integer):
      raise ValueError(f"task {spec.name!r}: {what} must be a 1-D integer array of token ids, "
                       f"got dtype {x.dtype} and shape {x.shape}")
    if x.size and (x.min() < 0 or x.max() >= spec.vocab_size):
      raise ValueError(f"task {spec.name!r}: {what} has token ids in [{x.min()}, {x.max()}], "
                       f"outside [0, vocab_size={spec.vocab_size})")
    out = np.zeros((spec.max_length,), np.int32)
  else:
    x = np.asarray(sequence, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != spec.num_channels:
      raise ValueError(f"task {spec.name!r}: {what} must have shape (length, "
                       f"{spec.num_channels}), got {x.shape}")
    out = np.zeros((spec.max_length, spec.num_channels), np.float32)
  length = min(len(x), spec.max_length)
  if length == 0:
    raise ValueError(f"task {spec.name!r}: {what} is empty; every example needs at least one "
                     "time step")
  out[:length] = x[:length]
  return out, np.int32(length)


def prepare_example(example: dict[str, Any], spec: TaskSpec,
                    weight: float = 1.0) -> dict[str, np.ndarray]:
  """Turns one source example into one row of a batch (see the module docstring)."""
  inputs, lengths = pad_sequence(example["inputs"], spec, "inputs")
  row = {"inputs": inputs, "lengths": lengths, "weights": np.float32(weight)}
  if spec.target == "class":
    label = np.asarray(example["label"])
    if label.ndim != 0 or not 0 <= int(label) < spec.num_classes:
      raise ValueError(f"task {spec.name!r}: label must be an integer in [0, "
                       f"{spec.num_classes}), got {label!r}")
    row["labels"] = label.astype(np.int32)
  else:
    label = np.asarray(example["label"], dtype=np.float32)
    if label.shape != (spec.num_classes,):
      raise ValueError(f"task {spec.name!r}: multilabel targets must have shape "
                       f"({spec.num_classes},), got {label.shape}")
    row["labels"] = label
  if spec.dual:
    row["inputs2"], row["lengths2"] = pad_sequence(example["inputs2"], spec, "inputs2")
  return row


def shuffle_seed(seed: int) -> int:
  """Maps a user seed to grain's 32-bit shuffle seed.

  grain shuffles epoch `e` with seed `s + e`, so seeds 0 and 1 would share all but one epoch's
  permutation; hashing the user seed first makes nearby seeds independent.
  """
  return int(np.random.SeedSequence(seed).generate_state(1, dtype=np.uint32)[0])


def num_eval_batches(num_examples: int, global_batch_size: int) -> int:
  """The number of (padded) global batches of a one-pass iterator."""
  return -(-num_examples // global_batch_size)


def make_batch_iterator(source: ExampleSource, spec: TaskSpec, *, global_batch_size: int, seed: int,
                        shuffle: bool, drop_remainder: bool, start_step: int = 0,
                        process_index: int = 0,
                        process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """Yields this process's share of each global batch (see the module docstring).

  Args:
    source: random access to the split's examples (e.g. `tfds.data_source`).
    spec: the task; fixes the padded length, dtypes and label format.
    global_batch_size: B, summed over processes; must be divisible by `process_count`.
    seed: the shuffle seed (any non-negative integer).
    shuffle: whether to shuffle (every pass anew when training).
    drop_remainder: True for a training stream that repeats forever with full batches;
      False for one evaluation pass whose last batch is padded with weight-0 examples.
    start_step: the first global batch to yield; resuming at step k yields exactly what an
      uninterrupted iterator yields from its k-th batch on.
    process_index: p, this process.
    process_count: n, the number of processes reading the stream.
  """
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise ValueError(f"global_batch_size={global_batch_size} must be a positive multiple of "
                     f"process_count={process_count}")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} must lie in [0, {process_count})")
  if start_step < 0 or seed < 0:
    raise ValueError(f"start_step={start_step} and seed={seed} must be non-negative")
  num_examples = len(source)
  if num_examples == 0:
    raise ValueError(f"task {spec.name!r}: the split has no examples")
  local_batch_size = global_batch_size // process_count

  examples = grain.MapDataset.source(source)
  if shuffle:
    examples = examples.shuffle(seed=shuffle_seed(seed))
  if drop_remainder:
    rows = examples.repeat().map(functools.partial(prepare_example, spec=spec))
  else:
    real_rows = examples.map(functools.partial(prepare_example, spec=spec))
    padding = prepare_example(source[0], spec, weight=0.0)
    total = num_eval_batches(num_examples, global_batch_size) * global_batch_size
    rows = grain.MapDataset.range(total).map(lambda position: real_rows[position]
                                             if position < num_examples else padding)
  # Local batch j of process p is rows [j * b, (j + 1) * b): global batch g consists of the
  # local batches g * n + p, p = 0 .. n-1.
  batches = rows.batch(local_batch_size, drop_remainder=True)
  batches = batches[start_step * process_count + process_index::process_count]
  return iter(batches.to_iter_dataset(_READ_OPTIONS))
