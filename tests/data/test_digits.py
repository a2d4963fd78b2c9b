"""Sequential digits: the scikit-learn CSV reader, the seeded split, and the shipped file."""

from __future__ import annotations

import gzip
import pathlib

import numpy as np
import pytest

from ms_ssm_jax import data
from ms_ssm_jax.data import digits
from ms_ssm_jax.data.task import MissingDataError


def _write_csv(path: pathlib.Path, pixels: np.ndarray, labels: np.ndarray) -> pathlib.Path:
  rows = np.concatenate([pixels, labels[:, None]], axis=1)
  with gzip.open(path, "wt") as f:
    np.savetxt(f, rows, fmt="%d", delimiter=",")
  return path


@pytest.fixture
def fixture_config(tmp_path):
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 17, (30, 64))
  labels = np.arange(30) % 10
  config = data.default_data_config("sdigits")
  config.csv_path = str(_write_csv(tmp_path / "digits.csv.gz", pixels, labels))
  config.num_validation, config.num_test = 5, 7
  return config, pixels, labels


def test_examples_are_pixel_sequences_of_their_rows(fixture_config):
  config, pixels, labels = fixture_config
  splits = {split: data.get_source(config, split) for split in ("train", "validation", "test")}
  assert {split: len(source) for split, source in splits.items()
         } == {"train": 18, "validation": 5, "test": 7}
  seen = []
  for source in splits.values():
    for i in range(len(source)):
      example = source[i]
      assert example["inputs"].shape == (64, 1) and example["inputs"].dtype == np.float32
      # Find the fixture row this example came from: its pixels, scaled to [0, 1].
      row = int(np.flatnonzero((pixels / 16.0 == example["inputs"][:, 0]).all(axis=1))[0])
      assert example["label"] == labels[row]
      seen.append(row)
  assert sorted(seen) == list(range(30))  # the splits are disjoint and cover every row


def test_the_split_depends_only_on_its_seed(fixture_config):
  config, _, _ = fixture_config
  first = digits.split_indices(30, config)
  assert all(np.array_equal(first[k], v) for k, v in digits.split_indices(30, config).items())
  config.split_seed = 1
  assert not np.array_equal(first["test"], digits.split_indices(30, config)["test"])


def test_bad_files_and_sizes_fail_clearly(fixture_config, tmp_path):
  config, pixels, labels = fixture_config
  config.num_test = 25
  with pytest.raises(ValueError, match="leave training examples"):
    data.get_source(config, "train")
  config.num_test = 7
  config.csv_path = str(_write_csv(tmp_path / "narrow.csv.gz", pixels[:, :10], labels))
  with pytest.raises(ValueError, match="expected 65 columns"):
    data.get_source(config, "train")
  config.csv_path = str(tmp_path / "missing.csv.gz")
  with pytest.raises(MissingDataError, match="csv_path"):
    data.get_source(config, "train")


def test_the_shipped_file_holds_the_1797_digits():
  config = data.default_data_config("sdigits")
  sizes = {split: data.num_examples(config, split) for split in ("train", "validation", "test")}
  assert sizes == {"train": 1257, "validation": 180, "test": 360}
  pixels, labels = digits.read_digits_csv(digits.digits_file(config))
  assert pixels.shape == (1797, 64) and 0.0 <= pixels.min() and pixels.max() == 1.0
  assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
