"""Tests of the batch pipeline: shapes, determinism, resume, process sharding, eval padding."""

import numpy as np
import pytest

from ms_ssm_jax.data import pipeline
from ms_ssm_jax.data.task import ChannelStandardizer, MappedSource, SubsetSource, TaskSpec


class ListSource:
  """An in-memory ExampleSource."""

  def __init__(self, examples):
    self._examples = examples

  def __len__(self):
    return len(self._examples)

  def __getitem__(self, index):
    return self._examples[index]


def token_source(num_examples, num_classes=3):
  """Example i: tokens (i + 1, 1, 2, ...) of length 1 + i % 5, label i % num_classes."""
  examples = []
  for i in range(num_examples):
    tokens = np.arange(1 + i % 5, dtype=np.int64) + 1
    tokens[0] = i + 1
    examples.append({"inputs": tokens, "label": np.int64(i % num_classes)})
  return ListSource(examples)


TOKEN_SPEC = TaskSpec(name="toy", input_type="tokens", vocab_size=100, num_classes=3, max_length=4)


def ids(batch):
  """The example index of each row (the first token is index + 1)."""
  return batch["inputs"][:, 0] - 1


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def train_iter(source=None, **kwargs):
  args = dict(global_batch_size=4, seed=0, shuffle=True, drop_remainder=True)
  args.update(kwargs)
  return pipeline.make_batch_iterator(source or token_source(10), TOKEN_SPEC, **args)


def test_rows_are_padded_and_truncated_copies_of_the_examples():
  source = token_source(10)
  batch = next(train_iter(source, shuffle=False))
  assert batch["inputs"].shape == (4, 4) and batch["inputs"].dtype == np.int32
  assert batch["lengths"].dtype == np.int32 and batch["labels"].dtype == np.int32
  np.testing.assert_array_equal(batch["lengths"], [1, 2, 3, 4])
  np.testing.assert_array_equal(batch["inputs"][1], [2, 2, 0, 0])
  np.testing.assert_array_equal(batch["labels"], [0, 1, 2, 0])
  np.testing.assert_array_equal(batch["weights"], np.ones(4, np.float32))
  # Example 4 has 5 tokens: truncated to max_length 4.
  batch = next(train_iter(source, shuffle=False, start_step=1))
  np.testing.assert_array_equal(batch["inputs"][0], [5, 2, 3, 4])
  assert batch["lengths"][0] == 4


def test_every_pass_is_a_new_permutation_and_batches_straddle_passes():
  stream = np.concatenate([ids(b) for b in take(train_iter(global_batch_size=5), 6)])
  passes = stream.reshape(3, 10)
  for p in passes:
    np.testing.assert_array_equal(np.sort(p), np.arange(10))
  assert not np.array_equal(passes[0], passes[1])
  assert not np.array_equal(passes[0], np.arange(10))
  # Batch size 4 does not divide 10: the stream is the same, cut differently.
  straddled = np.concatenate([ids(b) for b in take(train_iter(), 5)])
  np.testing.assert_array_equal(straddled, stream[:20])


def test_same_seed_same_stream_other_seed_other_stream():
  a = np.stack([ids(b) for b in take(train_iter(seed=3), 5)])
  b = np.stack([ids(b) for b in take(train_iter(seed=3), 5)])
  c = np.stack([ids(b) for b in take(train_iter(seed=4), 5)])
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_start_step_resumes_the_uninterrupted_stream():
  full = take(train_iter(seed=7), 9)
  resumed = take(train_iter(seed=7, start_step=6), 3)
  for x, y in zip(full[6:], resumed):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])


@pytest.mark.parametrize("drop_remainder", [True, False])
def test_processes_split_each_global_batch(drop_remainder):
  kwargs = dict(global_batch_size=4, seed=1, shuffle=True, drop_remainder=drop_remainder,
                start_step=1)
  single = take(train_iter(**kwargs), 2)
  parts = [take(train_iter(process_index=p, process_count=2, **kwargs), 2) for p in range(2)]
  for step, batch in enumerate(single):
    for key in batch:
      joined = np.concatenate([parts[0][step][key], parts[1][step][key]])
      np.testing.assert_array_equal(joined, batch[key])
    assert parts[0][step]["inputs"].shape == (2, 4)


def test_eval_pass_pads_the_last_batch_with_weight_zero():
  for process_count in (1, 2):
    per_process = [
        list(
            train_iter(drop_remainder=False, shuffle=False, process_index=p,
                       process_count=process_count)) for p in range(process_count)
    ]
    assert {len(batches) for batches in per_process} == {3}
    rows = {
        key: np.concatenate([b[key] for batches in per_process for b in batches])
        for key in ("inputs", "weights")
    }
    real = rows["weights"] == 1
    assert real.sum() == 10 and np.all(rows["weights"][~real] == 0)
    np.testing.assert_array_equal(np.sort(rows["inputs"][real, 0] - 1), np.arange(10))


def test_shuffled_eval_pass_sees_every_example_once():
  batches = list(train_iter(drop_remainder=False, seed=5))
  weights = np.concatenate([b["weights"] for b in batches])
  seen = np.concatenate([ids(b) for b in batches])[weights == 1]
  np.testing.assert_array_equal(np.sort(seen), np.arange(10))
  assert not np.array_equal(seen, np.arange(10))


def test_continuous_multilabel_and_dual_rows():
  spec = TaskSpec(name="c", input_type="continuous", num_channels=2, num_classes=3, max_length=3,
                  target="multilabel")
  x = np.arange(4, dtype=np.float64).reshape(2, 2)
  row = pipeline.prepare_example({"inputs": x, "label": [1, 0, 1]}, spec)
  np.testing.assert_array_equal(row["inputs"], [[0, 1], [2, 3], [0, 0]])
  assert row["inputs"].dtype == np.float32 and row["labels"].dtype == np.float32
  np.testing.assert_array_equal(row["labels"], [1, 0, 1])
  with pytest.raises(ValueError, match=r"shape \(length, 2\)"):
    pipeline.prepare_example({"inputs": np.zeros((2, 3)), "label": [1, 0, 1]}, spec)
  dual = TaskSpec(name="d", input_type="tokens", vocab_size=9, num_classes=2, max_length=3,
                  dual=True)
  row = pipeline.prepare_example({"inputs": np.array([1, 2]), "inputs2": np.array([3]), "label": 1},
                                 dual)
  np.testing.assert_array_equal(row["inputs2"], [3, 0, 0])
  assert row["lengths2"] == 1 and row["lengths"] == 2


def test_bad_examples_and_arguments_raise_clear_errors():
  with pytest.raises(ValueError, match="outside"):
    pipeline.prepare_example({"inputs": np.array([1, 100]), "label": 0}, TOKEN_SPEC)
  with pytest.raises(ValueError, match="label must be an integer in"):
    pipeline.prepare_example({"inputs": np.array([1]), "label": 3}, TOKEN_SPEC)
  with pytest.raises(ValueError, match="empty"):
    pipeline.prepare_example({"inputs": np.zeros((0,), np.int32), "label": 0}, TOKEN_SPEC)
  with pytest.raises(ValueError, match="multiple of process_count"):
    train_iter(global_batch_size=5, process_count=2)


def test_channel_standardizer_matches_numpy_and_fills_missing_with_zero():
  rng = np.random.default_rng(0)
  xs = [1e4 + rng.normal(size=(n, 2)) * [1.0, 3.0] for n in (3, 5, 4)]
  xs[1][2, 0] = np.nan
  source = ListSource([{"inputs": x, "label": 0} for x in xs])
  standardizer = ChannelStandardizer.fit(source)
  stacked = np.concatenate(xs)
  np.testing.assert_allclose(standardizer.mean, np.nanmean(stacked, axis=0), rtol=1e-12)
  np.testing.assert_allclose(standardizer.std, np.nanstd(stacked, axis=0), rtol=1e-9)
  out = MappedSource(source, standardizer)[1]["inputs"]
  assert out.dtype == np.float32 and out[2, 0] == 0
  np.testing.assert_allclose(out[0], (xs[1][0] - standardizer.mean) / standardizer.std, rtol=1e-5)
  constant = ChannelStandardizer.fit(ListSource([{"inputs": np.ones((3, 1)), "label": 0}]))
  np.testing.assert_array_equal(constant.std, [1.0])


def test_subset_source_selects_in_order_and_checks_range():
  source = token_source(5)
  subset = SubsetSource(source, [4, 1])
  assert len(subset) == 2 and subset[0]["inputs"][0] == 5 and subset[1]["inputs"][0] == 2
  with pytest.raises(ValueError, match=r"indices must lie in \[0, 5\)"):
    SubsetSource(source, [5])
