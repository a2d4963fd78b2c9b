"""Sequential digits (`sdigits`): scikit-learn's 8x8 handwritten digits as 64-step sequences.

The only real image set that ships inside a registry package (docs/DATA.md): the
scikit-learn wheel carries `sklearn/datasets/data/digits.csv.gz`, 1,797 images of 8 x 8 pixels with
intensities 0-16, from the test part of the UCI "Optical Recognition of Handwritten Digits"
set (Alpaydin & Kaynak, 1998). Each CSV row holds the 64 pixels row by row, then the label.
It is read from the installed distribution without importing scikit-learn
(`pip install --no-deps scikit-learn`, as `scripts/setup.sh` does), or from a copy of the file
named by `config.csv_path`.

Task `sdigits` (ours; not in the MS-SSM paper): the pixels in row-major order, `(64, 1)`
scaled to [0, 1], 10 classes. There is no official split: a permutation drawn with
`split_seed` puts the first `num_test` images into test, the next `num_validation` into
validation and the rest (1,257 by default) into train.
"""

from __future__ import annotations

import functools
import gzip
import pathlib

import ml_collections
import numpy as np
from ml_collections import config_dict

from ms_ssm_jax.data import shipped
from ms_ssm_jax.data.task import MissingDataError, SubsetSource, TaskDef, TaskSpec

DISTRIBUTION = "scikit-learn"
FILE_IN_DISTRIBUTION = "sklearn/datasets/data/digits.csv.gz"
INSTALL = "pip install --no-deps scikit-learn"
IMAGE_SIDE = 8
NUM_PIXELS = IMAGE_SIDE * IMAGE_SIDE
MAX_INTENSITY = 16.0
NUM_CLASSES = 10


def default_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.name = "sdigits"
  # A copy of digits.csv.gz; None: the file inside the installed scikit-learn distribution.
  config.csv_path = config_dict.placeholder(str)
  config.num_validation = 180
  config.num_test = 360
  config.split_seed = 0
  return config


def digits_file(config: ml_collections.ConfigDict) -> pathlib.Path:
  """The CSV file to read, or a `MissingDataError` that says how to get it."""
  if config.csv_path:
    path = pathlib.Path(config.csv_path).expanduser()
    if not path.is_file():
      raise MissingDataError(f"sdigits: config.data.csv_path={config.csv_path!r} is not a "
                             f"file; point it at a copy of {FILE_IN_DISTRIBUTION}, or unset it "
                             f"and `{INSTALL}`")
    return path
  path = shipped.locate_in_distribution(DISTRIBUTION, FILE_IN_DISTRIBUTION)
  if path is None:
    raise MissingDataError(f"sdigits reads {FILE_IN_DISTRIBUTION} from the scikit-learn wheel, "
                           f"which is not installed: `{INSTALL}` (scripts/setup.sh does), or "
                           f"set config.data.csv_path to a copy of the file")
  return path


@functools.cache
def read_digits_csv(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  """`(N, 64)` float32 pixels in [0, 1] and `(N,)` int32 labels of one CSV file."""
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "rt") as f:
    table = np.loadtxt(f, delimiter=",", ndmin=2)
  if table.shape[1] != NUM_PIXELS + 1:
    raise ValueError(f"{path}: expected {NUM_PIXELS + 1} columns (pixels, label), got "
                     f"{table.shape[1]}")
  pixels, labels = table[:, :NUM_PIXELS], table[:, NUM_PIXELS]
  if (pixels.min() < 0 or pixels.max() > MAX_INTENSITY or
      not np.all(np.isin(labels, range(NUM_CLASSES)))):
    raise ValueError(f"{path}: pixels must lie in [0, {MAX_INTENSITY:g}] and labels in "
                     f"0-{NUM_CLASSES - 1}")
  return (pixels / MAX_INTENSITY).astype(np.float32), labels.astype(np.int32)


def split_indices(num_examples: int, config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """Disjoint example indices of train, validation and test (see the module docstring)."""
  held_out = config.num_validation + config.num_test
  if min(config.num_validation, config.num_test) < 1 or held_out >= num_examples:
    raise ValueError(f"sdigits: num_validation={config.num_validation} and num_test="
                     f"{config.num_test} must be >= 1 and leave training examples out of "
                     f"{num_examples}")
  order = np.random.default_rng(config.split_seed).permutation(num_examples)
  return {
      "test": order[:config.num_test], "validation": order[config.num_test:held_out],
      "train": order[held_out:]
  }


class DigitsSource:
  """Every image of the file: `{"inputs": (64, 1) float32, "label": int32}` per example."""

  def __init__(self, pixels: np.ndarray, labels: np.ndarray):
    self._pixels, self._labels = pixels, labels

  def __len__(self) -> int:
    return len(self._labels)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return {"inputs": self._pixels[index][:, None], "label": self._labels[index]}


def spec(config: ml_collections.ConfigDict) -> TaskSpec:
  return TaskSpec(name="sdigits", input_type="continuous", num_channels=1, num_classes=NUM_CLASSES,
                  max_length=NUM_PIXELS)


def source(config: ml_collections.ConfigDict, split: str) -> SubsetSource:
  """One split (the registry has checked `split`) of the file's images."""
  images = DigitsSource(*read_digits_csv(digits_file(config)))
  return SubsetSource(images, split_indices(len(images), config)[split])


TASKS = {"sdigits": TaskDef(default_config=default_config, spec=spec, source=source)}
