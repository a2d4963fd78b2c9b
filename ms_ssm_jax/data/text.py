"""LRA Text: IMDb sentiment (Maas et al., 2011) at the byte level, as in LRA (Tay et al., 2021).

Read from the tfds dataset `imdb_reviews/plain_text`, prepared in array_record format in the
tfds `data_dir` (see `tfds_sources.tfds_split_source`; `aclImdb_v1.tar.gz` is the original archive).
Tokens are the UTF-8 bytes of the review + 1 (0 is padding), truncated to `max_length` (4096).

IMDb has no validation split; `protocol` says which one runs:
- `lra`: train is tfds train (25k), validation and test are both tfds test (25k), as LRA, S4
  and S5 do. Numbers reported under it are comparable to theirs, but model selection has seen
  the test set.
- `heldout`: validation is a seeded hold-out of `num_validation` training reviews, train the
  rest, test is tfds test.
"""

from __future__ import annotations

import functools

import ml_collections
import numpy as np
from ml_collections import config_dict

from ms_ssm_jax.data import tfds_sources
from ms_ssm_jax.data.lra_release import BYTE_VOCAB_SIZE, byte_tokens
from ms_ssm_jax.data.task import ExampleSource, MappedSource, TaskDef, TaskSpec

TFDS_NAME = "imdb_reviews/plain_text"
PROTOCOLS = ("lra", "heldout")


def review_tokens(example: dict, max_length: int) -> dict[str, np.ndarray]:
  """tfds example -> `(min(bytes, max_length),)` int32 byte tokens and the int32 label."""
  return {"inputs": byte_tokens(example["text"], max_length), "label": np.int32(example["label"])}


def _default_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.name = "lra_text"
  # The tfds data directory; None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
  config.data_dir = config_dict.placeholder(str)
  config.max_length = 4096
  config.protocol = "lra"  # or "heldout"
  config.num_validation = 2500  # heldout only: reviews held out of tfds train
  config.validation_seed = 42
  return config


def _spec(config: ml_collections.ConfigDict) -> TaskSpec:
  return TaskSpec(
      name=config.name,
      input_type="tokens",
      vocab_size=BYTE_VOCAB_SIZE,
      num_classes=2,
      max_length=config.max_length,
  )


def _source(config: ml_collections.ConfigDict, split: str) -> ExampleSource:
  if config.protocol not in PROTOCOLS:
    raise ValueError(f"unknown protocol {config.protocol!r}; known: {', '.join(PROTOCOLS)}")
  if config.protocol == "lra":
    splits = {"train": "train", "validation": "test", "test": "test"}
    if split not in splits:
      raise ValueError(f"unknown split {split!r}; known splits: {', '.join(splits)}")
    reviews = tfds_sources.tfds_split_source(TFDS_NAME, splits[split], config.data_dir)
  else:
    reviews = tfds_sources.split_with_holdout(TFDS_NAME, config, split, "test")
  return MappedSource(reviews, functools.partial(review_tokens, max_length=config.max_length))


TASKS: dict[str, TaskDef] = {"lra_text": TaskDef(_default_config, _spec, _source)}
