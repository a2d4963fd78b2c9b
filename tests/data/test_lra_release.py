"""Tests of the LRA release readers on tiny trees written in the release's own file formats."""

import pathlib
import pickle

import numpy as np
import pytest
from PIL import Image

from ms_ssm_jax.data import lra_release, pipeline
from ms_ssm_jax.data.task import MissingDataError

# Token ids written out by hand from the ListOps vocabulary: digit d is d + 1, [MIN 11,
# [MAX 12, [MED 13, [SM 14, ] 15.
_LISTOPS_ROWS = [
    ("( ( ( [MAX 2 ) 9 ) ] )", 9, [12, 3, 10, 15]),
    ("( ( ( ( [SM 4 ) ( ( [MIN 7 ) 5 ) ] ) ) ] )", 9, [14, 5, 11, 8, 6, 15, 15]),
    ("( ( [MED 1 ) ] )", 1, [13, 2, 15]),
]


def _config(name: str, root: pathlib.Path, **overrides):
  config = lra_release.TASKS[name].default_config()
  config.data_dir = str(root)
  config.update(overrides)
  return config


def _write_listops(root: pathlib.Path) -> None:
  folder = root / "lra_release" / "listops-1000"
  folder.mkdir(parents=True)
  for split in ("train", "val", "test"):
    rows = "".join(f"{text}\t{label}\n" for text, label, _ in _LISTOPS_ROWS)
    (folder / f"basic_{split}.tsv").write_text("Source\tTarget\n" + rows)


def test_listops_reads_release_rows(tmp_path):
  _write_listops(tmp_path)
  task = lra_release.TASKS["lra_listops"]
  source = task.source(_config("lra_listops", tmp_path), "validation")
  assert len(source) == len(_LISTOPS_ROWS)
  for i, (_, label, tokens) in enumerate(_LISTOPS_ROWS):
    example = source[i]
    np.testing.assert_array_equal(example["inputs"], tokens)
    assert example["inputs"].dtype == np.int32
    assert example["label"] == label and example["label"].dtype == np.int32
  spec = task.spec(_config("lra_listops", tmp_path))
  assert (spec.vocab_size, spec.num_classes, spec.max_length) == (16, 10, 2048)


def test_listops_truncates_and_pickles(tmp_path):
  _write_listops(tmp_path)
  source = lra_release.TASKS["lra_listops"].source(_config("lra_listops", tmp_path, max_length=5),
                                                   "train")
  np.testing.assert_array_equal(source[1]["inputs"], [14, 5, 11, 8, 6])
  restored = pickle.loads(pickle.dumps(source))
  np.testing.assert_array_equal(restored[0]["inputs"], [12, 3, 10, 15])
  with pytest.raises(IndexError):
    source[len(source)]


def test_listops_rejects_a_file_without_the_header(tmp_path):
  _write_listops(tmp_path)
  path = tmp_path / "lra_release" / "listops-1000" / "basic_test.tsv"
  path.write_text("[MAX 2 9 ]\t9\n")
  with pytest.raises(ValueError, match="expected the header"):
    lra_release.TASKS["lra_listops"].source(_config("lra_listops", tmp_path), "test")


def test_missing_release_files_are_all_named(tmp_path):
  (tmp_path / "lra_release" / "listops-1000").mkdir(parents=True)
  (tmp_path / "lra_release" / "listops-1000" / "basic_val.tsv").write_text("Source\tTarget\n")
  with pytest.raises(MissingDataError) as error:
    lra_release.TASKS["lra_listops"].source(_config("lra_listops", tmp_path), "train")
  message = str(error.value)
  assert "basic_train.tsv" in message and "basic_test.tsv" in message
  assert "basic_val.tsv" not in message
  assert lra_release.RELEASE_URL in message and str(tmp_path) in message
  with pytest.raises(MissingDataError, match="new_aan_pairs.eval.tsv"):
    lra_release.TASKS["lra_retrieval"].source(_config("lra_retrieval", tmp_path), "validation")


def test_unset_data_dir_and_unknown_split_are_errors(tmp_path):
  config = lra_release.TASKS["lra_listops"].default_config()
  with pytest.raises(ValueError, match="data_dir"):
    lra_release.TASKS["lra_listops"].source(config, "train")
  with pytest.raises(ValueError, match="known splits"):
    lra_release.TASKS["lra_listops"].source(_config("lra_listops", tmp_path), "val")


def test_retrieval_byte_tokens_of_both_documents(tmp_path):
  folder = tmp_path / "lra_release" / "tsv_data"
  folder.mkdir(parents=True)
  rows = [
      (b"1.0", b"doc-a", b"doc-b", b"Deep nets.", "Ünïcode \"quoted\" text".encode()),
      (b"0", b"doc-c", b"doc-d", b"x", b"y z"),
  ]
  for split in ("train", "eval", "test"):
    lines = b"".join(b"\t".join(row) + b"\n" for row in rows)
    (folder / f"new_aan_pairs.{split}.tsv").write_bytes(lines)
  task = lra_release.TASKS["lra_retrieval"]
  source = task.source(_config("lra_retrieval", tmp_path, max_length=8), "test")
  assert len(source) == 2
  first = source[0]
  np.testing.assert_array_equal(first["inputs"], [ord(c) + 1 for c in "Deep net"])
  np.testing.assert_array_equal(first["inputs2"], np.frombuffer(rows[0][4][:8], np.uint8) + 1)
  assert first["label"] == 1 and source[1]["label"] == 0
  np.testing.assert_array_equal(source[1]["inputs2"], [ord("y") + 1, ord(" ") + 1, ord("z") + 1])
  spec = task.spec(_config("lra_retrieval", tmp_path))
  assert spec.dual and spec.vocab_size == 257 and spec.max_length == 4000


def test_retrieval_rejects_malformed_rows(tmp_path):
  folder = tmp_path / "lra_release" / "tsv_data"
  folder.mkdir(parents=True)
  for split in ("train", "eval", "test"):
    (folder / f"new_aan_pairs.{split}.tsv").write_text("1\ta\tb\tonly four\n2\ta\tb\tc\td\n")
  source = lra_release.TASKS["lra_retrieval"].source(_config("lra_retrieval", tmp_path), "train")
  with pytest.raises(ValueError, match="line 1: expected 5"):
    source[0]
  with pytest.raises(ValueError, match="line 2: label"):
    source[1]


def _write_pathfinder(root: pathlib.Path, resolution: int, batches: dict[int, int]):
  """Writes images with distinct pixels; returns {relative path: (pixels, label)}."""
  level = root / "lra_release" / f"pathfinder{resolution}" / "curv_contour_length_14"
  (level / "metadata").mkdir(parents=True)
  rng = np.random.default_rng(0)
  images = {}
  for batch, count in batches.items():
    (level / "imgs" / str(batch)).mkdir(parents=True)
    rows = []
    for k in range(count):
      pixels = rng.integers(0, 256, (resolution, resolution), dtype=np.uint8)
      label = int(rng.integers(0, 2))
      Image.fromarray(pixels).save(level / "imgs" / str(batch) / f"sample_{k}.png")
      rows.append(f"imgs/{batch} sample_{k}.png {k} {label} 14 1.8 2\n")
      images[f"imgs/{batch}/sample_{k}.png"] = (pixels, label)
    (level / "metadata" / f"{batch}.npy").write_text("".join(rows))
  return level, images


def test_pathfinder_splits_cover_every_nonempty_image_once(tmp_path):
  level, images = _write_pathfinder(tmp_path, 32, {2: 7, 10: 7, 1: 7})
  (level / "imgs" / "10" / "sample_3.png").write_bytes(b"")  # the release has empty images
  del images["imgs/10/sample_3.png"]
  task = lra_release.TASKS["lra_pathfinder32"]
  config = _config("lra_pathfinder32", tmp_path)
  sources = {split: task.source(config, split) for split in ("train", "validation", "test")}
  assert [len(s) for s in sources.values()] == [16, 2, 2]  # 80/10/10 of 20 images

  # Metadata files are read in numeric batch order (1, 2, 10), rows in file order.
  order = sorted(images, key=lambda p: (int(p.split("/")[1]), int(p.split("_")[-1][:-4])))
  for split, source in sources.items():
    expected_paths = [order[i] for i in lra_release.pathfinder_split_indices(20, split, 42)]
    for i, path in enumerate(expected_paths):
      pixels, label = images[path]
      example = source[i]
      assert example["inputs"].shape == (1024, 1) and example["inputs"].dtype == np.float32
      expected = pixels.reshape(-1) / 255 * 2 - 1
      np.testing.assert_allclose(example["inputs"][:, 0], expected, atol=1e-6)
      assert example["label"] == label
  spec = task.spec(config)
  assert (spec.input_type, spec.num_channels, spec.max_length) == ("continuous", 1, 1024)


def test_pathfinder_split_indices_are_a_seeded_partition():
  splits = ("train", "validation", "test")
  parts = [lra_release.pathfinder_split_indices(1000, s, 42) for s in splits]
  assert [len(p) for p in parts] == [800, 100, 100]
  np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(1000))
  other = lra_release.pathfinder_split_indices(1000, "test", 7)
  assert not np.array_equal(other, parts[2])


def test_pathfinder_missing_images_and_metadata(tmp_path):
  level, _ = _write_pathfinder(tmp_path, 32, {0: 3})
  (level / "imgs" / "0" / "sample_1.png").unlink()
  task = lra_release.TASKS["lra_pathfinder32"]
  with pytest.raises(MissingDataError, match="sample_1.png"):
    task.source(_config("lra_pathfinder32", tmp_path), "train")
  with pytest.raises(MissingDataError, match="pathfinder128"):
    lra_release.TASKS["lra_pathx"].source(_config("lra_pathx", tmp_path), "train")


def test_pathfinder_rejects_images_of_the_wrong_size(tmp_path):
  _write_pathfinder(tmp_path, 64, {0: 10})
  wrong = tmp_path / "lra_release" / "pathfinder64" / "curv_contour_length_14"
  for k in range(10):
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(wrong / "imgs" / "0" / f"sample_{k}.png")
  config = _config("lra_pathfinder64", tmp_path)
  source = lra_release.TASKS["lra_pathfinder64"].source(config, "test")
  with pytest.raises(ValueError, match="64x64"):
    source[0]


def test_retrieval_batches_through_the_pipeline(tmp_path):
  folder = tmp_path / "lra_release" / "tsv_data"
  folder.mkdir(parents=True)
  rows = "".join(f"{i % 2}\ta{i}\tb{i}\t{'x' * (i + 1)}\t{'yz' * (i + 1)}\n" for i in range(3))
  for split in ("train", "eval", "test"):
    (folder / f"new_aan_pairs.{split}.tsv").write_text(rows)
  task = lra_release.TASKS["lra_retrieval"]
  config = _config("lra_retrieval", tmp_path, max_length=4)
  batches = list(
      pipeline.make_batch_iterator(
          task.source(config, "test"),
          task.spec(config),
          global_batch_size=2,
          seed=0,
          shuffle=False,
          drop_remainder=False,
      ))  # fmt: skip
  assert len(batches) == 2
  np.testing.assert_array_equal(batches[0]["lengths"], [1, 2])
  np.testing.assert_array_equal(batches[0]["lengths2"], [2, 4])
  np.testing.assert_array_equal(batches[1]["inputs2"][0], [ord("y") + 1, ord("z") + 1] * 2)
  np.testing.assert_array_equal(batches[1]["weights"], [1.0, 0.0])
  np.testing.assert_array_equal(batches[0]["labels"], [0, 1])
