"""LRA Pathfinder and Path-X from our own generator, stored with tfds (array_record).

Tasks `pathfinder32`, `pathfinder64` and `pathx` (128x128) classify whether the two markers of
an image sit on one contour (label 1) or on two (label 0); see `pathfinder_render` for the
generator. Images are stored as uint8 and served as pixel sequences `(size * size, 1)` scaled to
[-1, 1], in row-major order, as S4 and S5 feed them.

Split sizes follow S4/S5, which split the 200k images of the LRA release 80/10/10 at random.
Generated images are independent draws, so we generate each split from its own random stream
instead (same sizes, same distribution); the split seed of the release does not apply here.
The release itself is read by `lra_release.py`.
"""

from __future__ import annotations

import dataclasses
import time

from absl import logging
import ml_collections
from ml_collections import config_dict
import numpy as np
import tensorflow_datasets as tfds

from ms_ssm_jax.data import local_builder
from ms_ssm_jax.data import pathfinder_render
from ms_ssm_jax.data.task import TaskDef, TaskSpec

NUM_CLASSES = 2
SPLITS = ("train", "validation", "test")
_VERSION = "1.0.0"


@dataclasses.dataclass(eq=False)
class PathfinderConfig(tfds.core.BuilderConfig):
  """Image size, difficulty (paddles per target contour), split sizes and seed of a set."""

  image_size: int = 32
  contour_length: int = 14
  num_train: int = 160_000
  num_validation: int = 20_000
  num_test: int = 20_000
  seed: int = 0

  @property
  def split_sizes(self) -> dict[str, int]:
    return {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}

  @property
  def params(self) -> pathfinder_render.PathfinderParams:
    return pathfinder_render.lra_params(self.image_size, self.contour_length)


def _lra_config(image_size: int) -> PathfinderConfig:
  return PathfinderConfig(
      name=f"lra{image_size}",
      version=_VERSION,
      description=f"{image_size}x{image_size}, contour length 14 (LRA), S4/S5 split sizes.",
      image_size=image_size,
  )


def _tiny_config(image_size: int) -> PathfinderConfig:
  return PathfinderConfig(
      name=f"tiny{image_size}",
      version=_VERSION,
      description=f"{image_size}x{image_size}, contour length 14, a few images for tests.",
      image_size=image_size,
      num_train=24,
      num_validation=8,
      num_test=8,
  )


BUILDER_CONFIGS = tuple(_lra_config(size) for size in (32, 64, 128)) + tuple(
    _tiny_config(size) for size in (32, 64, 128))


class Pathfinder(local_builder.LocalBuilder, skip_registration=True):
  """Generated Pathfinder images: `image` (size, size) uint8, `label` 1 if markers connect."""

  name = "pathfinder_generated"
  VERSION = tfds.core.Version(_VERSION)
  RELEASE_NOTES = {_VERSION: "Our generator of the Pathfinder distribution."}
  BUILDER_CONFIGS = list(BUILDER_CONFIGS)

  def __init__(self, *, num_workers: int = 1, **kwargs):
    self._num_workers = num_workers
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    # Built here, not from metadata files, which tfds looks for next to the builder's package.
    size = self.builder_config.image_size
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            # Images are mostly background, so zlib shrinks them several times.
            "image":
                tfds.features.Tensor(shape=(size, size), dtype=np.uint8,
                                     encoding=tfds.features.Encoding.ZLIB),
            "label":
                tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }),
        supervised_keys=("image", "label"),
        homepage="https://github.com/google-research/long-range-arena",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    sizes = self.builder_config.split_sizes
    return {
        split: self._generate_examples(index, sizes[split]) for index, split in enumerate(SPLITS)
    }

  def _generate_examples(self, split_index: int, num_images: int):
    config = self.builder_config
    start = time.perf_counter()
    chunks = pathfinder_render.generate(config.params, num_images, (config.seed, split_index),
                                        num_workers=self._num_workers)
    key = 0
    for images, labels in chunks:
      for image, label in zip(images, labels):
        yield key, {"image": image, "label": int(label)}
        key += 1
    logging.info(
        "Generated %d Pathfinder %s images in %.1f s with %d worker(s).",
        num_images,
        SPLITS[split_index],
        time.perf_counter() - start,
        self._num_workers,
    )  # fmt: skip


def _builder_config(config: ml_collections.ConfigDict, image_size: int) -> PathfinderConfig:
  fields = {
      "image_size": image_size,
      "contour_length": config.contour_length,
      "num_train": config.num_train,
      "num_validation": config.num_validation,
      "num_test": config.num_test,
      "seed": config.seed,
  }
  if min(config.num_train, config.num_validation, config.num_test) < 1:
    raise ValueError(f"{config.name}: every split needs at least one image, got {fields}")
  if config.contour_length < 1:
    raise ValueError(f"{config.name}: contour_length must be >= 1 (LRA: 6, 9 or 14)")
  for predefined in BUILDER_CONFIGS:
    if all(getattr(predefined, key) == value for key, value in fields.items()):
      return predefined
  name = "custom{image_size}-cl{contour_length}-{num_train}-{num_validation}-{num_test}-seed{seed}"
  return PathfinderConfig(name=name.format(**fields), version=_VERSION, **fields)


def make_builder(config: ml_collections.ConfigDict, image_size: int) -> Pathfinder:
  """The tfds builder of the images that `config` describes (predefined or custom sizes)."""
  return Pathfinder(
      config=_builder_config(config, image_size),
      data_dir=config.data_dir,
      file_format="array_record",
      num_workers=config.generation_workers,
  )


class PathfinderSource:
  """One split as pixel sequences: `inputs` (size * size, 1) float32 in [-1, 1], `label`."""

  def __init__(self, data_source):
    self._data_source = data_source

  def __len__(self) -> int:
    return len(self._data_source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    example = self._data_source[index]
    pixels = example["image"].reshape(-1, 1)
    return {
        "inputs": pixels.astype(np.float32) / 127.5 - 1.0,
        "label": np.asarray(example["label"], np.int32),
    }


def _make_task(name: str, image_size: int) -> TaskDef:

  def default_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.name = name
    # Where tfds keeps the generated files; None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
    config.data_dir = config_dict.placeholder(str)
    # Paddles per target contour: LRA's levels are 6, 9 and 14 (the one LRA reports).
    config.contour_length = 14
    config.num_train = 160_000
    config.num_validation = 20_000
    config.num_test = 20_000
    config.seed = 0
    # Processes that generate the images on first use; the images do not depend on it.
    config.generation_workers = 1
    return config

  def spec(config: ml_collections.ConfigDict) -> TaskSpec:
    return TaskSpec(
        name=config.name,
        input_type="continuous",
        num_channels=1,
        num_classes=NUM_CLASSES,
        max_length=image_size * image_size,
    )

  def source(config: ml_collections.ConfigDict, split: str) -> PathfinderSource:
    """The images of `split`; they are generated and written on first use.

    On multi-host runs, prepare the data once beforehand (`make_builder(config, size)
    .download_and_prepare()`) so that hosts do not generate it concurrently.
    """
    if split not in SPLITS:
      raise ValueError(f"{name}: unknown split {split!r}; known: {', '.join(SPLITS)}")

    def generate(builder: Pathfinder) -> None:
      logging.info(
          "Generating %s (%s) into %s; %d workers (config.generation_workers).",
          name,
          builder.builder_config.name,
          builder.data_dir,
          config.generation_workers,
      )  # fmt: skip
      builder.download_and_prepare()

    builder = local_builder.prepared(lambda: make_builder(config, image_size), generate)
    return PathfinderSource(builder.as_data_source(split=split))

  return TaskDef(default_config=default_config, spec=spec, source=source)


TASKS: dict[str, TaskDef] = {
    "pathfinder32": _make_task("pathfinder32", 32),
    "pathfinder64": _make_task("pathfinder64", 64),
    "pathx": _make_task("pathx", 128),
}
