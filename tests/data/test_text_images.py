"""Tests of the tfds-backed tasks (LRA Text, LRA Image, sCIFAR, (ps)MNIST, ImageNet).

Each fixture prepares a tiny dataset under the real tfds name, version and features (the real
builder with its split generators replaced), in the array_record format the loaders read, so
the whole path through `tfds.data_source` and image decoding runs without network.
"""

import io

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from ms_ssm_jax.data import images, text, tfds_sources
from ms_ssm_jax.data.task import MissingDataError

_SPLITS = ("train", "validation", "test")


def _png(pixels: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="PNG")
  return buffer.getvalue()


def _prepare(name: str, data_dir, splits: dict[str, list[dict]], config: str | None = None):
  """Writes `splits` as the prepared tfds dataset `name` (array_record) under `data_dir`."""
  real_builder = tfds.builder_cls(name)

  class TinyBuilder(real_builder, skip_registration=True):

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._examples(examples) for split, examples in splits.items()}

    def _examples(self, examples):
      for i, example in enumerate(examples):
        yield f"{i:05d}", example

  TinyBuilder.name = name
  builder = TinyBuilder(data_dir=str(data_dir), config=config, file_format="array_record")
  builder.download_and_prepare()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("tfds")
  rng = np.random.default_rng(0)

  def cifar(split, n):
    return [{
        "id": f"{split}_{i}", "image": _png(rng.integers(0, 256, (32, 32, 3), np.uint8)),
        "label": i % 10
    } for i in range(n)]  # fmt: skip

  def mnist(n):
    pixels = rng.integers(0, 256, (n, 28, 28), np.uint8)
    return [{"image": _png(pixels[i]), "label": i % 10} for i in range(n)]

  _prepare("cifar10", root, {"train": cifar("train", 12), "test": cifar("test", 3)})
  # tfds' MNIST images are (28, 28, 1); a PNG of a 2-D array decodes to one channel.
  _prepare("mnist", root, {"train": mnist(8), "test": mnist(2)})
  reviews = ["Great film, ünïcode too!", "Bad.", "x" * 50, "Meh <br /> ok", "Fine", "No"]
  _prepare(
      "imdb_reviews",
      root,
      {
          "train": [{"text": r, "label": i % 2} for i, r in enumerate(reviews)],
          "test": [{"text": r.upper(), "label": 1 - i % 2} for i, r in enumerate(reviews[:3])],
      },
      config="plain_text",
  )
  gradient = np.arange(32 * 48 * 3, dtype=np.int64).reshape(32, 48, 3) % 251
  imagenet_train = [
      {"image": _png(gradient.astype(np.uint8)), "label": 7, "file_name": "a.JPEG"},
      {"image": _png(np.full((40, 50, 3), 100, np.uint8)), "label": 999, "file_name": "b.JPEG"},
      {"image": _png(np.full((64, 32, 3), 30, np.uint8)), "label": 0, "file_name": "c.JPEG"},
  ]
  imagenet_val = [{"image": _png(gradient[:, :32].astype(np.uint8)), "label": 5, "file_name": "d"}]
  _prepare("imagenet2012", root, {"train": imagenet_train, "validation": imagenet_val})
  return root


def _config(task_module, name, data_dir, **overrides):
  config = task_module.TASKS[name].default_config()
  config.data_dir = str(data_dir)
  config.update(overrides)
  return config


def _raw(name, split, data_dir):
  return tfds.data_source(name, split=split, data_dir=str(data_dir))


def test_holdout_indices_partition():
  validation = tfds_sources.holdout_indices(100, 10, 42, "validation")
  train = tfds_sources.holdout_indices(100, 10, 42, "train")
  assert len(validation) == 10 and len(train) == 90
  np.testing.assert_array_equal(np.sort(np.concatenate([train, validation])), np.arange(100))
  assert not np.array_equal(tfds_sources.holdout_indices(100, 10, 43, "validation"), validation)
  with pytest.raises(ValueError, match="num_validation"):
    tfds_sources.holdout_indices(10, 10, 0, "train")


def test_lra_image_is_normalized_luma_with_a_holdout(data_dir):
  config = _config(images, "lra_image", data_dir, num_validation=4)
  task = images.TASKS["lra_image"]
  raw_train, raw_test = _raw("cifar10", "train", data_dir), _raw("cifar10", "test", data_dir)
  expected_rows = {
      "train": [raw_train[i] for i in tfds_sources.holdout_indices(12, 4, 42, "train")],
      "validation": [raw_train[i] for i in tfds_sources.holdout_indices(12, 4, 42, "validation")],
      "test": [raw_test[i] for i in range(3)],
  }
  ids = []
  for split in _SPLITS:
    source = task.source(config, split)
    assert len(source) == len(expected_rows[split])
    for i, raw in enumerate(expected_rows[split]):
      example = source[i]
      rgb = raw["image"].astype(np.float64)
      luma = rgb @ [0.299, 0.587, 0.114]  # ITU-R 601-2; PIL rounds to the nearest integer
      assert example["inputs"].shape == (1024, 1) and example["inputs"].dtype == np.float32
      np.testing.assert_allclose(example["inputs"][:, 0], (luma.reshape(-1) - 122.6) / 61.0,
                                 atol=0.51 / 61.0)  # fmt: skip
      assert example["label"] == raw["label"]
      ids.append(raw["id"])
  assert sorted(ids[:12]) == sorted(f"train_{i}".encode() for i in range(12))
  spec = task.spec(config)
  assert (spec.num_channels, spec.max_length, spec.num_classes) == (1, 1024, 10)


def test_lra_gray_of_gray_pixels_is_exact():
  pixels = np.broadcast_to(np.arange(0, 256, 0.25).astype(np.uint8)[:, None], (1024, 3))
  example = images.lra_gray({"image": pixels.reshape(32, 32, 3).copy(), "label": 3})
  np.testing.assert_allclose(example["inputs"][:, 0], (pixels[:, 0] - 122.6) / 61.0, atol=1e-6)


def test_scifar_is_per_channel_normalized_colour(data_dir):
  config = _config(images, "scifar", data_dir, num_validation=4)
  raw = _raw("cifar10", "test", data_dir)[1]
  example = images.TASKS["scifar"].source(config, "test")[1]
  mean, std = [0.4914, 0.4822, 0.4465], [0.247, 0.243, 0.261]
  expected = (raw["image"].reshape(1024, 3) / 255.0 - mean) / std
  np.testing.assert_allclose(example["inputs"], expected, rtol=1e-5, atol=1e-6)
  assert images.TASKS["scifar"].spec(config).num_channels == 3


def test_smnist_and_psmnist(data_dir):
  smnist = images.TASKS["smnist"].source(_config(images, "smnist", data_dir, num_validation=2),
                                         "train")  # fmt: skip
  config = _config(images, "psmnist", data_dir, num_validation=2, permutation_seed=5)
  psmnist = images.TASKS["psmnist"].source(config, "train")
  raw_train = _raw("mnist", "train", data_dir)
  permutation = images.psmnist_permutation(5)
  np.testing.assert_array_equal(np.sort(permutation), np.arange(784))
  assert not np.array_equal(permutation, images.psmnist_permutation(6))
  for i, raw_index in enumerate(tfds_sources.holdout_indices(8, 2, 42, "train")):
    pixels = raw_train[raw_index]["image"].reshape(-1) / 255.0
    np.testing.assert_allclose(smnist[i]["inputs"][:, 0], pixels, rtol=1e-6)
    np.testing.assert_allclose(psmnist[i]["inputs"][:, 0], pixels[permutation], rtol=1e-6)
    assert psmnist[i]["label"] == raw_train[raw_index]["label"]
  assert images.TASKS["psmnist"].spec(config).max_length == 784


def test_image_patches_order():
  image = np.arange(4 * 6 * 2).reshape(4, 6, 2)
  patches = images.image_patches(image, 2)
  assert patches.shape == (6, 8)
  # Patch (row 1, col 2) is the 6th; its first pixel is image[2, 4].
  np.testing.assert_array_equal(
      patches[5], np.concatenate([image[2, 4], image[2, 5], image[3, 4], image[3, 5]]))
  with pytest.raises(ValueError, match="divisible"):
    images.image_patches(image, 4)


def test_imagenet_crops_normalizes_and_patches(data_dir):
  config = _config(images, "imagenet", data_dir, num_validation=1, resize_size=32, image_size=32,
                   patch_size=16)  # fmt: skip
  task = images.TASKS["imagenet"]
  spec = task.spec(config)
  assert (spec.max_length, spec.num_channels, spec.num_classes) == (4, 768, 1000)
  default_spec = task.spec(task.default_config())
  assert (default_spec.max_length, default_spec.num_channels) == (196, 768)
  mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])

  # The 32x48 gradient needs no resizing; the central crop starts at column 8.
  test = task.source(config, "test")
  assert len(test) == 1
  gradient = (np.arange(32 * 48 * 3).reshape(32, 48, 3) % 251)[:, :32]
  crop = (gradient / 255.0 - mean) / std
  example = test[0]
  assert example["label"] == 5
  for patch_row in range(2):
    for patch_col in range(2):
      expected = crop[16 * patch_row:16 * patch_row + 16, 16 * patch_col:16 * patch_col + 16]
      np.testing.assert_allclose(example["inputs"][2 * patch_row + patch_col], expected.reshape(-1),
                                 rtol=1e-5, atol=1e-6)  # fmt: skip

  train = [task.source(config, "train")[i] for i in range(2)]
  train += [task.source(config, "validation")[0]]
  by_label = {int(e["label"]): e["inputs"] for e in train}
  assert sorted(by_label) == [0, 7, 999]
  for label, value in ((999, 100), (0, 30)):  # uniform images stay uniform after resizing
    assert by_label[label].shape == (4, 768)
    expected = np.tile((value / 255.0 - mean) / std, 256 * 4).reshape(4, 768)
    np.testing.assert_allclose(by_label[label], expected, rtol=1e-5)
  full_gradient = np.arange(32 * 48 * 3).reshape(32, 48, 3) % 251
  central = (full_gradient[:, 8:40] / 255.0 - mean) / std
  np.testing.assert_allclose(by_label[7][3], central[16:, 16:].reshape(-1), rtol=1e-5, atol=1e-6)


def test_lra_text_protocols(data_dir):
  task = text.TASKS["lra_text"]
  config = _config(text, "lra_text", data_dir, max_length=16)
  spec = task.spec(config)
  assert (spec.vocab_size, spec.max_length, spec.num_classes) == (257, 16, 2)
  raw_test = _raw("imdb_reviews/plain_text", "test", data_dir)
  validation, test = task.source(config, "validation"), task.source(config, "test")
  assert len(task.source(config, "train")) == 6 and len(validation) == len(test) == 3
  for i in range(3):
    expected = np.frombuffer(raw_test[i]["text"][:16], np.uint8) + 1
    np.testing.assert_array_equal(test[i]["inputs"], expected)
    np.testing.assert_array_equal(validation[i]["inputs"], expected)
    assert test[i]["inputs"].dtype == np.int32 and test[i]["label"] == raw_test[i]["label"]
  unicode_review = [e for e in (test[i] for i in range(3)) if e["inputs"][0] == ord("G") + 1]
  # Truncation counts bytes, so it may cut a character: 16 bytes end inside "Ï".
  expected = np.frombuffer("GREAT FILM, ÜNÏ".encode()[:16], np.uint8) + 1
  np.testing.assert_array_equal(unicode_review[0]["inputs"], expected)

  heldout = _config(text, "lra_text", data_dir, protocol="heldout", num_validation=2)
  raw_train = _raw("imdb_reviews/plain_text", "train", data_dir)
  texts = {
      split: [
          bytes((task.source(heldout, split)[i]["inputs"] - 1).astype(np.uint8))
          for i in range(len(task.source(heldout, split)))
      ] for split in ("train", "validation")
  }  # fmt: skip
  assert [len(texts["train"]), len(texts["validation"])] == [4, 2]
  all_train = sorted(raw_train[i]["text"][:4096] for i in range(6))
  assert sorted(texts["train"] + texts["validation"]) == all_train
  with pytest.raises(ValueError, match="known: lra, heldout"):
    task.source(_config(text, "lra_text", data_dir, protocol="clean"), "train")


def test_unprepared_datasets_say_how_to_prepare(tmp_path):
  with pytest.raises(MissingDataError) as error:
    images.TASKS["smnist"].source(_config(images, "smnist", tmp_path), "train")
  message = str(error.value)
  assert f"tfds build mnist --data_dir={tmp_path} --file_format=array_record" in message
  assert "train-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
  assert "mnist/3.0.1/dataset_info.json" in message
  with pytest.raises(MissingDataError, match="--manual_dir=<folder>") as error:
    images.TASKS["imagenet"].source(_config(images, "imagenet", tmp_path), "test")
  assert "ILSVRC2012_img_train.tar" in str(error.value)
  with pytest.raises(MissingDataError, match="aclImdb_v1.tar.gz"):
    text.TASKS["lra_text"].source(_config(text, "lra_text", tmp_path), "train")
