"""Random access to prepared tfds datasets, and seeded validation hold-outs of their train split.

Shared by the tasks read from standard tfds builders (`images.py`, `text.py`). The datasets must
be prepared in the array_record format (`tfds.data_source` reads it without TensorFlow);
`tfds_split_source` says how when they are not.
"""

from __future__ import annotations

import pathlib

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from ms_ssm_jax.data.task import ExampleSource, MissingDataError, SubsetSource

# The original files that `tfds build` reads from a --manual_dir when there is no internet.
MANUAL_FILES = {
    "cifar10": {
        "cifar-10-binary.tar.gz": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    },
    "mnist": {
        name: f"https://storage.googleapis.com/cvdf-datasets/mnist/{name}" for name in (
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        )
    },
    "imagenet2012": {
        "ILSVRC2012_img_train.tar": "https://image-net.org/download-images.php (after sign-up)",
        "ILSVRC2012_img_val.tar": "https://image-net.org/download-images.php (after sign-up)",
    },
    "imdb_reviews/plain_text": {
        "aclImdb_v1.tar.gz": "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
    },
}
_NEEDS_MANUAL_DIR = ("imagenet2012",)


def tfds_split_source(name: str, split: str, data_dir: str | None) -> ExampleSource:
  """Random access to a split of a prepared tfds dataset, or `MissingDataError` saying how.

  `data_dir` None means tfds' default, `$TFDS_DATA_DIR` or `~/tensorflow_datasets`.
  """
  builder = tfds.builder(name, data_dir=data_dir)
  # builder.data_dir is <root>/<name>[/<config>]/<version>.
  data_dir = pathlib.Path(builder.data_dir).parents[len(builder.info.full_name.split("/")) - 1]
  if not builder.is_prepared():
    manual = MANUAL_FILES[name]
    command = f"tfds build {name} --data_dir={data_dir} --file_format=array_record"
    manual_note = ("It reads these files from the --manual_dir" if name in _NEEDS_MANUAL_DIR else
                   "Without internet, add --manual_dir=<folder> and put these files in that folder")
    raise MissingDataError(
        f"the tfds dataset {builder.info.full_name} is not prepared: missing "
        f"{builder.data_dir}/dataset_info.json and its array_record files. Prepare it (needs "
        "TensorFlow for image datasets; on any machine, then copy the folder here) with\n"
        f"  {command}" + (" --manual_dir=<folder>" if name in _NEEDS_MANUAL_DIR else "") + "\n"
        f"{manual_note}:\n" + "".join(f"  {file}  (from {url})\n" for file, url in manual.items()))
  file_format = builder.info.file_format
  if file_format is None or file_format.value != "array_record":
    raise ValueError(f"{builder.data_dir} was prepared as {file_format}, but random access needs "
                     f"array_record: rebuild with `tfds build {name} --data_dir={data_dir} "
                     "--file_format=array_record`, or convert it with `tfds convert_format "
                     f"--dataset_version_dir={builder.data_dir} --out_file_format=array_record`")
  return builder.as_data_source(split=split)


def holdout_indices(num_examples: int, num_validation: int, seed: int, split: str) -> np.ndarray:
  """Sorted indices of `split` ("train" or "validation") when a seeded subset is held out."""
  if not 0 < num_validation < num_examples:
    raise ValueError(f"num_validation={num_validation} must lie in (0, {num_examples})")
  permutation = np.random.default_rng(seed).permutation(num_examples)
  chosen = permutation[:num_validation] if split == "validation" else permutation[num_validation:]
  return np.sort(chosen)


def split_with_holdout(name: str, config: ml_collections.ConfigDict, split: str,
                       test_split: str) -> ExampleSource:
  """train / validation from tfds `train` with a seeded hold-out; test from `test_split`."""
  if split not in ("train", "validation", "test"):
    raise ValueError(f"unknown split {split!r}; known splits: train, validation, test")
  if split == "test":
    return tfds_split_source(name, test_split, config.data_dir)
  train = tfds_split_source(name, "train", config.data_dir)
  indices = holdout_indices(len(train), config.num_validation, config.validation_seed, split)
  return SubsetSource(train, indices)
