"""Image classification as sequence tasks, read from prepared tfds datasets.

`data_dir` is the tfds data directory (default `$TFDS_DATA_DIR` or `~/tensorflow_datasets`)
that holds the dataset prepared in the array_record format (`tfds.data_source` reads it
without TensorFlow; decoding the images needs Pillow).
Preparing CIFAR-10, MNIST and ImageNet needs TensorFlow, so it is a separate step, on any
machine (`tfds build`, see `tfds_sources.tfds_split_source`'s error message); without
internet, tfds reads the original archives from a `--manual_dir`.

Tasks (pixels in row-major order, the channels of a pixel together):
- `lra_image` (LRA Image): CIFAR-10 in grayscale (ITU-R 601-2 luma, as PIL's "L" conversion
  that S4 and S5 use), `(1024, 1)`, normalized as S4 does, `(x - 122.6) / 61.0`.
- `scifar`: CIFAR-10 in colour, `(1024, 3)`, per-channel `(x / 255 - mean) / std` with the usual
  CIFAR-10 statistics.
- `smnist`: MNIST, `(784, 1)` in [0, 1]. `psmnist`: the same pixels in one fixed order, a
  permutation drawn with `permutation_seed`.
- `imagenet`: ImageNet-1K, the shorter side resized to `resize_size`, a central
  `image_size` crop, normalized per channel with the ImageNet statistics, cut into
  `patch_size` x `patch_size` patches. The sequence runs over patches row by row (top-left to
  bottom-right); a patch's features are its pixels in row-major order with the 3 channels of a
  pixel together: `(image_size / patch_size)^2` steps of `patch_size^2 * 3` features
  (196 x 768 by default). Every split gets the same deterministic preprocessing; training-time
  augmentation is not applied here.

Splits: validation is a seeded hold-out of tfds `train` (`num_validation` examples; 45k/5k
for CIFAR-10 as in LRA); test is tfds `test` (ImageNet: tfds `validation`, the split that
papers report).
"""

from __future__ import annotations

import functools

import ml_collections
import numpy as np
from ml_collections import config_dict
from PIL import Image

from ms_ssm_jax.data.task import MappedSource, TaskDef, TaskSpec
from ms_ssm_jax.data.tfds_sources import split_with_holdout

LRA_GRAY_MEAN, LRA_GRAY_STD = 122.6, 61.0  # in pixel units, as S4's LRA Image
CIFAR10_MEAN = np.array([0.4914, 0.4822, 0.4465])
CIFAR10_STD = np.array([0.247, 0.243, 0.261])
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def lra_gray(example: dict) -> dict[str, np.ndarray]:
  """CIFAR-10 example -> `(1024, 1)` normalized luma."""
  gray = np.asarray(Image.fromarray(example["image"]).convert("L"), np.float32)
  inputs = (gray.reshape(-1, 1) - LRA_GRAY_MEAN) / LRA_GRAY_STD
  return {"inputs": inputs.astype(np.float32), "label": np.int32(example["label"])}


def cifar_colour(example: dict) -> dict[str, np.ndarray]:
  """CIFAR-10 example -> `(1024, 3)` per-channel normalized colour."""
  pixels = example["image"].reshape(-1, 3) / 255.0
  inputs = (pixels - CIFAR10_MEAN) / CIFAR10_STD
  return {"inputs": inputs.astype(np.float32), "label": np.int32(example["label"])}


def mnist_pixels(example: dict, permutation: np.ndarray | None) -> dict[str, np.ndarray]:
  """MNIST example -> `(784, 1)` in [0, 1], steps reordered by `permutation` when given."""
  pixels = example["image"].reshape(-1).astype(np.float32) / 255.0
  if permutation is not None:
    pixels = pixels[permutation]
  return {"inputs": pixels[:, None], "label": np.int32(example["label"])}


def image_patches(image: np.ndarray, patch_size: int) -> np.ndarray:
  """`(H, W, C)` -> `(H / p * W / p, p * p * C)`, patches row by row, pixels row-major."""
  height, width, channels = image.shape
  if height % patch_size or width % patch_size:
    raise ValueError(f"image {image.shape[:2]} is not divisible into {patch_size}-pixel patches")
  grid = image.reshape(height // patch_size, patch_size, width // patch_size, patch_size, channels)
  return grid.transpose(0, 2, 1, 3, 4).reshape(-1, patch_size * patch_size * channels)


def imagenet_patches(example: dict, resize_size: int, image_size: int,
                     patch_size: int) -> dict[str, np.ndarray]:
  """ImageNet example -> `((image_size / patch_size)^2, patch_size^2 * 3)` normalized patches."""
  image = Image.fromarray(example["image"])
  width, height = image.size
  if min(width, height) != resize_size:
    scale = resize_size / min(width, height)
    size = (max(resize_size, round(width * scale)), max(resize_size, round(height * scale)))
    image = image.resize(size, resample=Image.Resampling.BILINEAR)
  width, height = image.size
  left, top = (width - image_size) // 2, (height - image_size) // 2
  crop = np.asarray(image.crop((left, top, left + image_size, top + image_size)), np.float64)
  normalized = (crop / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
  patches = image_patches(normalized, patch_size).astype(np.float32)
  return {"inputs": patches, "label": np.int32(example["label"])}


def psmnist_permutation(seed: int) -> np.ndarray:
  """The fixed pixel order of psMNIST: `(784,)`, step t reads pixel `permutation[t]`."""
  return np.random.default_rng(seed).permutation(784)


def _base_config(name: str, num_validation: int) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.name = name
  # The tfds data directory; None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
  config.data_dir = config_dict.placeholder(str)
  config.num_validation = num_validation  # held out of tfds train
  config.validation_seed = 42
  return config


def _continuous_spec(config, channels: int, classes: int, length: int) -> TaskSpec:
  return TaskSpec(
      name=config.name,
      input_type="continuous",
      num_channels=channels,
      num_classes=classes,
      max_length=length,
  )


def _lra_image_source(config, split):
  return MappedSource(split_with_holdout("cifar10", config, split, "test"), lra_gray)


def _scifar_source(config, split):
  return MappedSource(split_with_holdout("cifar10", config, split, "test"), cifar_colour)


def _smnist_source(config, split):
  fn = functools.partial(mnist_pixels, permutation=None)
  return MappedSource(split_with_holdout("mnist", config, split, "test"), fn)


def _psmnist_config():
  config = _base_config("psmnist", 6000)
  config.permutation_seed = 0
  return config


def _psmnist_source(config, split):
  fn = functools.partial(mnist_pixels, permutation=psmnist_permutation(config.permutation_seed))
  return MappedSource(split_with_holdout("mnist", config, split, "test"), fn)


def _imagenet_config():
  config = _base_config("imagenet", 10000)
  config.resize_size = 256
  config.image_size = 224
  config.patch_size = 16
  return config


def _imagenet_spec(config):
  if config.image_size % config.patch_size or config.resize_size < config.image_size:
    raise ValueError(
        f"image_size={config.image_size} must be a multiple of patch_size={config.patch_size} "
        f"and at most resize_size={config.resize_size}")
  steps = (config.image_size // config.patch_size)**2
  return _continuous_spec(config, 3 * config.patch_size**2, 1000, steps)


def _imagenet_source(config, split):
  _imagenet_spec(config)
  fn = functools.partial(
      imagenet_patches,
      resize_size=config.resize_size,
      image_size=config.image_size,
      patch_size=config.patch_size,
  )
  return MappedSource(split_with_holdout("imagenet2012", config, split, "validation"), fn)


TASKS: dict[str, TaskDef] = {
    "lra_image":
        TaskDef(
            functools.partial(_base_config, "lra_image", 5000),
            lambda config: _continuous_spec(config, 1, 10, 1024),
            _lra_image_source,
        ),
    "scifar":
        TaskDef(
            functools.partial(_base_config, "scifar", 5000),
            lambda config: _continuous_spec(config, 3, 10, 1024),
            _scifar_source,
        ),
    "smnist":
        TaskDef(
            functools.partial(_base_config, "smnist", 6000),
            lambda config: _continuous_spec(config, 1, 10, 784),
            _smnist_source,
        ),
    "psmnist":
        TaskDef(_psmnist_config, lambda config: _continuous_spec(config, 1, 10, 784),
                _psmnist_source),
    "imagenet":
        TaskDef(_imagenet_config, _imagenet_spec, _imagenet_source),
}
