"""Tests of the synthetic memory tasks: labels recomputed from the inputs, ranges, determinism."""

import pickle

import numpy as np
import pytest

from ms_ssm_jax.data import synthetic


def _config(name, **overrides):
  config = synthetic.TASKS[name].default_config()
  config.num_train, config.num_validation, config.num_test = 40, 10, 10
  for key, value in overrides.items():
    setattr(config, key, value)
  return config


def _recall_label(inputs, num_keys):
  """The value bound to the query key, read from the documented layout of the tokens."""
  keys, values = inputs[0:-2:2] - 2, inputs[1:-2:2] - 2 - num_keys
  assert inputs[-2] == synthetic.QUERY_ID
  assert np.all((0 <= keys) & (keys < num_keys)) and len(set(keys.tolist())) == keys.size
  bound = dict(zip(keys.tolist(), values.tolist()))
  return bound[int(inputs[-1]) - 2]


def _copy_label(inputs, num_data_tokens):
  """The j-th data token of the body (in order), j named by the last token."""
  body = inputs[:-1]
  data = body[body != synthetic.NOISE_ID] - 2 - num_data_tokens
  assert data.size == num_data_tokens and np.all(data >= 0)
  query = int(inputs[-1]) - 2
  assert 0 <= query < num_data_tokens
  return int(data[query])


@pytest.mark.parametrize("length, num_keys, num_values", [(512, 512, 16), (10, 4, 3), (64, 31, 2)])
def test_associative_recall_labels(length, num_keys, num_values):
  config = _config("associative_recall", length=length, num_keys=num_keys, num_values=num_values)
  spec = synthetic.TASKS["associative_recall"].spec(config)
  assert spec.vocab_size == num_keys + num_values + 2
  assert (spec.num_classes, spec.max_length, spec.input_type) == (num_values, length, "tokens")
  labels = []
  for split in ("train", "validation", "test"):
    source = synthetic.TASKS["associative_recall"].source(config, split)
    for i in range(len(source)):
      example = source[i]
      inputs, label = example["inputs"], example["label"]
      assert inputs.dtype == np.int32 and inputs.shape == (length,)
      assert label.dtype == np.int32 and label.shape == ()
      assert 1 <= inputs.min() and inputs.max() < spec.vocab_size
      assert _recall_label(inputs, num_keys) == label
      labels.append(int(label))
  assert set(labels) == set(range(num_values))


@pytest.mark.parametrize("length, num_data_tokens, num_values", [(1024, 16, 16), (9, 8, 4),
                                                                 (40, 3, 2)])
def test_selective_copying_labels(length, num_data_tokens, num_values):
  config = _config("selective_copying", length=length, num_data_tokens=num_data_tokens,
                   num_values=num_values)
  spec = synthetic.TASKS["selective_copying"].spec(config)
  assert spec.vocab_size == num_data_tokens + num_values + 2
  assert (spec.num_classes, spec.max_length) == (num_values, length)
  labels, queries = [], []
  for split in ("train", "validation", "test"):
    source = synthetic.TASKS["selective_copying"].source(config, split)
    for i in range(len(source)):
      inputs, label = source[i]["inputs"], source[i]["label"]
      assert inputs.dtype == np.int32 and inputs.shape == (length,)
      assert 1 <= inputs.min() and inputs.max() < spec.vocab_size
      assert _copy_label(inputs, num_data_tokens) == label
      labels.append(int(label))
      queries.append(int(inputs[-1]))
  assert set(labels) == set(range(num_values))
  if num_data_tokens <= 8:  # 60 examples ask for every index
    assert set(queries) == set(range(2, 2 + num_data_tokens))


@pytest.mark.parametrize("name", ["associative_recall", "selective_copying"])
def test_examples_are_deterministic_and_split_dependent(name):
  task = synthetic.TASKS[name]
  config = _config(name, length=64)
  train = task.source(config, "train")
  # Random access in any order gives the same example.
  backwards = [train[i]["inputs"] for i in reversed(range(5))][::-1]
  for i in range(5):
    np.testing.assert_array_equal(train[i]["inputs"], backwards[i])
    np.testing.assert_array_equal(task.source(config, "train")[i]["inputs"], backwards[i])
  test = task.source(config, "test")
  config.seed = 1
  reseeded = task.source(config, "train")
  for i in range(5):
    assert not np.array_equal(train[i]["inputs"], test[i]["inputs"])
    assert not np.array_equal(train[i]["inputs"], reseeded[i]["inputs"])
  assert not np.array_equal(train[0]["inputs"], train[1]["inputs"])


def test_example_i_comes_from_its_own_rng():
  config = _config("selective_copying", length=32)
  example = synthetic.TASKS["selective_copying"].source(config, "validation")[7]
  rng = np.random.default_rng([config.seed, synthetic.SPLIT_IDS["validation"], 7])
  inputs, label = synthetic.selective_copying_example(rng, length=32,
                                                      num_data_tokens=config.num_data_tokens,
                                                      num_values=config.num_values)
  np.testing.assert_array_equal(example["inputs"], inputs)
  assert example["label"] == label


@pytest.mark.parametrize("name", ["associative_recall", "selective_copying"])
def test_split_sizes_and_bounds(name):
  config = _config(name, length=32)
  source = synthetic.TASKS[name].source(config, "validation")
  assert len(source) == 10
  source[np.int64(9)]
  copy = pickle.loads(pickle.dumps(source))  # data-loading workers receive sources by pickle
  np.testing.assert_array_equal(copy[9]["inputs"], source[9]["inputs"])
  with pytest.raises(IndexError):
    source[10]
  with pytest.raises(ValueError, match="unknown split"):
    synthetic.TASKS[name].source(config, "val")


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("associative_recall", {"length": 11}, "even"),
        ("associative_recall", {"length": 100, "num_keys": 48}, "set num_keys >= 49"),
        ("associative_recall", {"num_values": 1}, "num_values"),
        ("selective_copying", {"length": 16, "num_data_tokens": 16}, "num_data_tokens"),
        ("selective_copying", {"num_test": 0}, "split sizes"),
    ],
)
def test_invalid_configs(name, overrides, message):
  config = _config(name, **overrides)
  with pytest.raises(ValueError, match=message):
    synthetic.TASKS[name].spec(config)
  with pytest.raises(ValueError, match=message):
    synthetic.TASKS[name].source(config, "train")


def test_default_configs():
  recall = synthetic.associative_recall_config()
  assert synthetic.associative_recall_spec(recall).vocab_size == 512 + 16 + 2
  copying = synthetic.selective_copying_config()
  assert synthetic.selective_copying_spec(copying).max_length == 1024
  assert (recall.num_train, recall.num_validation, recall.num_test) == (100_000, 2_000, 2_000)
