"""LRA tasks read from the original Long Range Arena release (Tay et al., 2021).

The user downloads `lra_release.gz` and unpacks it; `data_dir` is the folder that holds the
resulting `lra_release/` tree:

  lra_release/listops-1000/basic_{train,val,test}.tsv
      header `Source<TAB>Target`, one expression and its value per row.
  lra_release/tsv_data/new_aan_pairs.{train,eval,test}.tsv
      no header; rows `label<TAB>id1<TAB>id2<TAB>text1<TAB>text2` (AAN citation pairs), fields
      split on tabs with no quoting, as LRA's reader does. The label is written `0`/`1` or
      `0.0`/`1.0`.
  lra_release/pathfinder{32,64,128}/<difficulty>/imgs/<batch>/sample_<k>.png
  lra_release/pathfinder{32,64,128}/<difficulty>/metadata/<batch>.npy
      despite the suffix, each metadata file is text: one row per image, fields separated by
      spaces: `imgs/<batch> sample_<k>.png <k> <label> ...` (field 0 the image folder relative
      to `<difficulty>/`, field 1 the file name, field 3 the label; the remaining fields are
      generator parameters we do not use).

Examples (see `task.py`):
  ListOps: "inputs" (l,) int32 ListOps token ids (`listops.tokenize_listops`), l <= 2048.
  Retrieval: "inputs", "inputs2" (l,) int32 byte + 1 (0 is padding), l <= 4000 per document.
  Pathfinder: "inputs" (res * res, 1) float32 in [-1, 1], pixels in row-major order.

Pathfinder has no official split. Like S4 and S5 we shuffle all images of the difficulty level
with seed 42 and cut 80/10/10; their shuffle is PyTorch's, ours NumPy's, so the membership of
the splits differs from theirs (the proportions do not). Images of size zero, which the release
contains, are skipped, as LRA's own input pipeline does.
"""

from __future__ import annotations

import functools
import os
import pathlib
from typing import Any

import ml_collections
import numpy as np
from ml_collections import config_dict
from PIL import Image

from ms_ssm_jax.data import listops
from ms_ssm_jax.data.task import MissingDataError, TaskDef, TaskSpec

RELEASE_URL = "https://storage.googleapis.com/long-range-arena/lra_release.gz"
BYTE_VOCAB_SIZE = 257  # 256 byte values shifted by one, 0 is padding
PATHFINDER_SPLIT_SEED = 42
PATHFINDER_DIFFICULTIES = ("curv_baseline", "curv_contour_length_9", "curv_contour_length_14")

_LISTOPS_FILES = {
    "train": "basic_train.tsv",
    "validation": "basic_val.tsv",
    "test": "basic_test.tsv",
}
_AAN_FILES = {
    "train": "new_aan_pairs.train.tsv",
    "validation": "new_aan_pairs.eval.tsv",
    "test": "new_aan_pairs.test.tsv",
}
_PATHFINDER_FRACTIONS = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1.0)}
_READ_CHUNK_BYTES = 1 << 24
_MAX_LISTED_MISSING = 20


def _release_dir(config: ml_collections.ConfigDict) -> pathlib.Path:
  if not config.data_dir:
    raise ValueError(f"task {config.name!r}: set data_dir to the folder that holds the unpacked "
                     f"lra_release/ tree (from {RELEASE_URL})")
  return pathlib.Path(config.data_dir).expanduser() / "lra_release"


def _require_files(paths: list[pathlib.Path], release_dir: pathlib.Path) -> None:
  missing = [p for p in paths if not p.is_file()]
  if missing:
    raise MissingDataError(
        "missing LRA release files:\n" + "".join(f"  {p}\n" for p in missing) +
        f"They come from {RELEASE_URL} (linked from "
        "https://github.com/google-research/long-range-arena). Download it, unpack it with "
        f"`tar -xzf lra_release.gz -C {release_dir.parent}` so that {release_dir} exists, "
        "or point data_dir at the folder that holds lra_release/.")


def _check_split(split: str, known: dict[str, Any]) -> None:
  if split not in known:
    raise ValueError(f"unknown split {split!r}; known splits: {', '.join(known)}")


def byte_tokens(text: bytes, max_length: int) -> np.ndarray:
  """Byte-level token ids `(min(len(text), max_length),)` int32: byte value + 1."""
  return np.frombuffer(text[:max_length], np.uint8).astype(np.int32) + 1


@functools.lru_cache(maxsize=None)
def _line_spans(path: str) -> np.ndarray:
  """`(n, 2)` int64 [start, end) byte offsets of the non-empty lines of a file, newline excluded."""
  starts, ends = [np.zeros(1, np.int64)], []
  size = 0
  with open(path, "rb") as f:
    while chunk := f.read(_READ_CHUNK_BYTES):
      newlines = np.flatnonzero(np.frombuffer(chunk, np.uint8) == ord("\n")) + size
      ends.append(newlines)
      starts.append(newlines + 1)
      size += len(chunk)
  starts = np.concatenate(starts)
  ends = np.concatenate(ends + [np.array([size], np.int64)])
  spans = np.stack([starts, ends], axis=1)
  return spans[spans[:, 1] > spans[:, 0]]


class _TsvSource:
  """Random access to the rows of a TSV file through an index of line offsets.

  Holds only the path and the offsets, so it pickles cheaply into data-loader workers.
  """

  def __init__(self, path: pathlib.Path, num_fields: int, header: bytes | None):
    self._path = str(path)
    self._num_fields = num_fields
    spans = _line_spans(self._path)
    self._first_row = 0
    if header is not None:
      first = self._read(spans[0]) if len(spans) else b""
      if first != header:
        raise ValueError(f"{path}: expected the header {header.decode()!r} on the first line, got "
                         f"{first[:80].decode(errors='replace')!r}; is this the LRA release file?")
      self._first_row = 1
    self._spans = spans[self._first_row:]

  def __len__(self) -> int:
    return len(self._spans)

  def _read(self, span: np.ndarray) -> bytes:
    with open(self._path, "rb") as f:
      f.seek(int(span[0]))
      return f.read(int(span[1] - span[0])).rstrip(b"\r")

  def fields(self, index: int) -> list[bytes]:
    if not 0 <= index < len(self._spans):
      raise IndexError(f"index {index} out of range for {len(self._spans)} rows of {self._path}")
    fields = self._read(self._spans[index]).split(b"\t")
    if len(fields) != self._num_fields:
      raise ValueError(
          f"{self._path}, line {index + self._first_row + 1}: expected {self._num_fields} "
          f"tab-separated fields, got {len(fields)}")
    return fields

  def where(self, index: int) -> str:
    return f"{self._path}, line {index + self._first_row + 1}"


class ListOpsTsvSource:
  """ListOps examples of one release TSV file."""

  def __init__(self, path: pathlib.Path, max_length: int):
    self._rows = _TsvSource(path, num_fields=2, header=b"Source\tTarget")
    self._max_length = max_length

  def __len__(self) -> int:
    return len(self._rows)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    text, target = self._rows.fields(index)
    try:
      label = int(target)
    except ValueError:
      raise ValueError(f"{self._rows.where(index)}: target {target!r} is not an integer") from None
    tokens = listops.tokenize_listops(text.decode("ascii"))
    return {"inputs": tokens[:self._max_length], "label": np.int32(label)}


class RetrievalTsvSource:
  """AAN document pairs of one release TSV file, byte-level tokens."""

  def __init__(self, path: pathlib.Path, max_length: int):
    self._rows = _TsvSource(path, num_fields=5, header=None)
    self._max_length = max_length

  def __len__(self) -> int:
    return len(self._rows)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    label, _, _, text1, text2 = self._rows.fields(index)
    try:
      value = float(label)
    except ValueError:
      value = -1.0
    if value not in (0.0, 1.0):
      raise ValueError(f"{self._rows.where(index)}: label {label!r} is not 0 or 1")
    return {
        "inputs": byte_tokens(text1, self._max_length),
        "inputs2": byte_tokens(text2, self._max_length),
        "label": np.int32(value),
    }


def _batch_number(metadata_file: pathlib.Path) -> int:
  if not metadata_file.stem.isdigit():
    raise ValueError(f"{metadata_file}: Pathfinder metadata files are named <batch number>.npy")
  return int(metadata_file.stem)


@functools.lru_cache(maxsize=None)
def _pathfinder_index(level_dir: str) -> tuple[tuple[str, ...], np.ndarray]:
  """Image paths relative to `level_dir` and their labels, metadata files in batch order.

  Costs one `stat` per image (to skip empty files), once per process.
  """
  metadata_files = sorted(pathlib.Path(level_dir, "metadata").glob("*.npy"), key=_batch_number)
  paths, labels, missing = [], [], []
  for metadata_file in metadata_files:
    for row_number, row in enumerate(metadata_file.read_text().splitlines(), start=1):
      fields = row.split()
      if not fields:
        continue
      if len(fields) < 4 or fields[3] not in ("0", "1"):
        raise ValueError(
            f"{metadata_file}, row {row_number}: expected `imgs/<batch> <file> <index> <label> "
            f"...` with label 0 or 1, got {row[:80]!r}")
      image = os.path.join(fields[0], fields[1])
      try:
        if os.path.getsize(os.path.join(level_dir, image)) == 0:
          continue
      except FileNotFoundError:
        missing.append(os.path.join(level_dir, image))
        continue
      paths.append(image)
      labels.append(int(fields[3]))
  if missing:
    shown = "".join(f"  {p}\n" for p in missing[:_MAX_LISTED_MISSING])
    more = len(missing) - _MAX_LISTED_MISSING
    raise MissingDataError(
        f"{len(missing)} Pathfinder images named in {level_dir}/metadata are missing:\n{shown}" +
        (f"  ... and {more} more\n" if more > 0 else "") +
        f"They come from {RELEASE_URL}; unpack the whole archive, images included.")
  return tuple(paths), np.asarray(labels, np.int32)


class PathfinderPngSource:
  """Pathfinder images of the release, as pixel sequences `(res * res, 1)` in [-1, 1]."""

  def __init__(self, level_dir: pathlib.Path, paths: list[str], labels: np.ndarray,
               resolution: int):
    self._level_dir = level_dir
    self._paths = paths
    self._labels = labels
    self._resolution = resolution

  def __len__(self) -> int:
    return len(self._paths)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not 0 <= index < len(self._paths):
      raise IndexError(f"index {index} out of range for {len(self._paths)} images")
    path = self._level_dir / self._paths[index]
    with Image.open(path) as image:
      pixels = np.asarray(image if image.mode == "L" else image.convert("L"))
    if pixels.shape != (self._resolution, self._resolution):
      raise ValueError(
          f"{path}: expected a {self._resolution}x{self._resolution} image, got {pixels.shape}")
    inputs = pixels.reshape(-1, 1).astype(np.float32) / 127.5 - 1.0
    return {"inputs": inputs, "label": self._labels[index]}


def _listops_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.name = "lra_listops"
  config.data_dir = config_dict.placeholder(str)
  config.max_length = 2048  # S4 and S5 truncate (and pad) to 2048 tokens
  return config


def _listops_spec(config: ml_collections.ConfigDict) -> TaskSpec:
  return TaskSpec(
      name=config.name,
      input_type="tokens",
      vocab_size=listops.LISTOPS_VOCAB_SIZE,
      num_classes=listops.NUM_CLASSES,
      max_length=config.max_length,
  )


def _listops_source(config: ml_collections.ConfigDict, split: str) -> ListOpsTsvSource:
  _check_split(split, _LISTOPS_FILES)
  release_dir = _release_dir(config)
  paths = [release_dir / "listops-1000" / name for name in _LISTOPS_FILES.values()]
  _require_files(paths, release_dir)
  return ListOpsTsvSource(release_dir / "listops-1000" / _LISTOPS_FILES[split], config.max_length)


def _retrieval_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.name = "lra_retrieval"
  config.data_dir = config_dict.placeholder(str)
  config.max_length = 4000  # bytes per document, as in LRA
  return config


def _retrieval_spec(config: ml_collections.ConfigDict) -> TaskSpec:
  return TaskSpec(
      name=config.name,
      input_type="tokens",
      vocab_size=BYTE_VOCAB_SIZE,
      num_classes=2,
      max_length=config.max_length,
      dual=True,
  )


def _retrieval_source(config: ml_collections.ConfigDict, split: str) -> RetrievalTsvSource:
  _check_split(split, _AAN_FILES)
  release_dir = _release_dir(config)
  _require_files([release_dir / "tsv_data" / name for name in _AAN_FILES.values()], release_dir)
  return RetrievalTsvSource(release_dir / "tsv_data" / _AAN_FILES[split], config.max_length)


def pathfinder_split_indices(num_examples: int, split: str, seed: int) -> np.ndarray:
  """Indices of `split` in a seeded 80/10/10 shuffle of `num_examples` items, sorted."""
  _check_split(split, _PATHFINDER_FRACTIONS)
  permutation = np.random.default_rng(seed).permutation(num_examples)
  low, high = _PATHFINDER_FRACTIONS[split]
  return np.sort(permutation[int(low * num_examples):int(high * num_examples)])


def _make_pathfinder_task(name: str, resolution: int) -> TaskDef:

  def default_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.name = name
    config.data_dir = config_dict.placeholder(str)
    config.difficulty = "curv_contour_length_14"  # the level LRA reports
    config.split_seed = PATHFINDER_SPLIT_SEED
    return config

  def spec(config: ml_collections.ConfigDict) -> TaskSpec:
    return TaskSpec(
        name=config.name,
        input_type="continuous",
        num_channels=1,
        num_classes=2,
        max_length=resolution * resolution,
    )

  def source(config: ml_collections.ConfigDict, split: str) -> PathfinderPngSource:
    _check_split(split, _PATHFINDER_FRACTIONS)
    if config.difficulty not in PATHFINDER_DIFFICULTIES:
      raise ValueError(f"unknown Pathfinder difficulty {config.difficulty!r}; known: "
                       f"{', '.join(PATHFINDER_DIFFICULTIES)}")
    release_dir = _release_dir(config)
    level_dir = release_dir / f"pathfinder{resolution}" / config.difficulty
    if not any((level_dir / "metadata").glob("*.npy")):
      raise MissingDataError(
          f"no Pathfinder metadata files {level_dir / 'metadata' / '<batch>.npy'} (and no "
          f"images under {level_dir / 'imgs'}). They come from {RELEASE_URL}; unpack it with "
          f"`tar -xzf lra_release.gz -C {release_dir.parent}` so that {level_dir} exists.")
    paths, labels = _pathfinder_index(str(level_dir))
    indices = pathfinder_split_indices(len(paths), split, config.split_seed)
    return PathfinderPngSource(level_dir, [paths[i] for i in indices], labels[indices], resolution)

  return TaskDef(default_config=default_config, spec=spec, source=source)


TASKS: dict[str, TaskDef] = {
    "lra_listops": TaskDef(_listops_config, _listops_spec, _listops_source),
    "lra_retrieval": TaskDef(_retrieval_config, _retrieval_spec, _retrieval_source),
    "lra_pathfinder32": _make_pathfinder_task("lra_pathfinder32", 32),
    "lra_pathfinder64": _make_pathfinder_task("lra_pathfinder64", 64),
    "lra_pathx": _make_pathfinder_task("lra_pathx", 128),
}
