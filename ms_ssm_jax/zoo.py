"""The model zoo: released checkpoints, one file each, listed in a manifest.

    from ms_ssm_jax import zoo
    [entry.name for entry in zoo.list_entries()]
    variables = zoo.load_variables("ms_ssm_japanese_vowels")   # {"params", "batch_stats"}

The zoo directory is `ms_ssm_jax/released/` (shipped with the package); the environment
variable `MS_SSM_ZOO_DIR` replaces it (tests, a private zoo), and every function also takes
`directory`. It holds:
  manifest.json     {"format": 1, "entries": [entry, ...]}, entries sorted by name;
  <name>.msgpack    the model variables {"params", "batch_stats"} as nested dicts of numpy
                    arrays, `flax.serialization.msgpack_serialize`d: one file, so that its
                    size and sha256 identify it.
An entry (`ZooEntry`) carries the full config the model was trained with (the JSON that the
run's orbax checkpoints store), so that the model can be rebuilt exactly even after config
files change, and the metrics measured at release (`scripts/release_checkpoint.py`).
`load_variables` checks the file's size and sha256 against the manifest before reading it.
Layer fields added after a release take their defaults when the model is rebuilt; renaming or
removing a field breaks the entries that stored it (tests/test_zoo.py rebuilds every entry).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import re
from typing import Any

import flax.serialization
import numpy as np

ZOO_DIR_ENV = "MS_SSM_ZOO_DIR"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
FILE_SUFFIX = ".msgpack"
# Zoo names are bare identifiers, so they cannot be mistaken for paths.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


class ZooIntegrityError(ValueError):
  """A released file does not match its manifest entry (size or sha256)."""


@dataclasses.dataclass(frozen=True)
class ZooEntry:
  """One released checkpoint (a row of manifest.json).

  Attributes:
    name: the zoo name (`NAME_PATTERN`), e.g. "ms_ssm_japanese_vowels".
    task: the data task (`config["data"]["name"]`).
    model: the sequence layer (`config["model"]["layer"]`).
    description: one or two sentences for people.
    config: the run's full config as JSON (what `ml_collections.ConfigDict` takes back).
    metrics: measured at release on `metrics["eval_device"]`: `test_accuracy`, `test_loss`,
      `test_examples` over the whole test split, and `slice_accuracy`, `slice_loss`,
      `slice_examples` over its first `slice_examples` examples (`*_auroc` for AUROC tasks).
    command: the training command.
    device: what the model was trained on, e.g. "1 x NVIDIA H100 80GB HBM3".
    date: the training date, YYYY-MM-DD.
    jax_version: the JAX version of the training run.
    steps: the train steps of the released variables.
    selected_by: which checkpoint of the run was released and why.
    file: the variables file, relative to the zoo directory.
    size_bytes: its size.
    sha256: its SHA-256, hex.
    train_hours: wall-clock hours of the training sessions up to `steps`
      (`provenance.training_hours`; None where the run did not record its sessions' ends).
  """

  name: str
  task: str
  model: str
  description: str
  config: dict[str, Any]
  metrics: dict[str, Any]
  command: str
  device: str
  date: str
  jax_version: str
  steps: int
  selected_by: str
  file: str
  size_bytes: int
  sha256: str
  train_hours: float | None

  @classmethod
  def from_json(cls, row: dict[str, Any], where: str) -> ZooEntry:
    names = {field.name for field in dataclasses.fields(cls)}
    missing, unknown = sorted(names - set(row)), sorted(set(row) - names)
    if missing or unknown:
      raise ValueError(f"{where}: entry {row.get('name')!r} has missing fields {missing} and "
                       f"unknown fields {unknown}")
    return cls(**row)

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def zoo_dir(directory: str | os.PathLike | None = None) -> pathlib.Path:
  """`directory`, else `$MS_SSM_ZOO_DIR`, else the package's `released/` directory."""
  if directory is not None:
    return pathlib.Path(directory)
  if os.environ.get(ZOO_DIR_ENV):
    return pathlib.Path(os.environ[ZOO_DIR_ENV])
  return pathlib.Path(__file__).resolve().parent / "released"


def list_entries(directory: str | os.PathLike | None = None) -> list[ZooEntry]:
  """The manifest's entries, sorted by name ([] when there is no manifest yet)."""
  path = zoo_dir(directory) / MANIFEST
  if not path.is_file():
    return []
  manifest = json.loads(path.read_text())
  if manifest.get("format") != MANIFEST_FORMAT:
    raise ValueError(f"{path}: manifest format {manifest.get('format')!r}, this code reads "
                     f"format {MANIFEST_FORMAT}")
  return [ZooEntry.from_json(row, str(path)) for row in manifest["entries"]]


def get_entry(name: str, directory: str | os.PathLike | None = None) -> ZooEntry:
  """The entry called `name`; ValueError listing the available names if there is none."""
  entries = {entry.name: entry for entry in list_entries(directory)}
  if name not in entries:
    raise ValueError(f"no zoo entry {name!r} in {zoo_dir(directory) / MANIFEST}; available: "
                     f"{', '.join(entries) or 'none'}")
  return entries[name]


def is_zoo_name(text: str, directory: str | os.PathLike | None = None) -> bool:
  """Whether `text` is the name of a manifest entry."""
  return (NAME_PATTERN.fullmatch(text) is not None and
          any(entry.name == text for entry in list_entries(directory)))


def sha256_of(path: str | os.PathLike) -> str:
  """The SHA-256 of a file's bytes, hex."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def verify(entry: ZooEntry, directory: str | os.PathLike | None = None) -> pathlib.Path:
  """The entry's file, after checking its size and sha256; `ZooIntegrityError` otherwise."""
  path = zoo_dir(directory) / entry.file
  if not path.is_file():
    raise FileNotFoundError(f"zoo entry {entry.name!r}: its file {path} is missing; reinstall "
                            "the package or restore the file from the repository")
  size, sha256 = path.stat().st_size, sha256_of(path)
  if (size, sha256) != (entry.size_bytes, entry.sha256):
    raise ZooIntegrityError(
        f"zoo entry {entry.name!r}: {path} has {size} bytes and sha256 {sha256}, the manifest "
        f"says {entry.size_bytes} bytes and sha256 {entry.sha256}: the file is corrupted or "
        "was replaced; restore it from the repository (git checkout -- <file>) or re-release")
  return path


def load_variables(name: str, directory: str | os.PathLike | None = None) -> dict[str, Any]:
  """The verified variables of entry `name`: {"params", "batch_stats"} of numpy arrays."""
  path = verify(get_entry(name, directory), directory)
  variables = flax.serialization.msgpack_restore(path.read_bytes())
  if set(variables) != {"params", "batch_stats"}:
    raise ValueError(f"{path} holds {sorted(variables)}, expected params and batch_stats")
  return variables


def serialize_variables(variables: dict[str, Any]) -> bytes:
  """{"params", "batch_stats"} (arrays of any kind) as msgpack bytes of numpy arrays."""
  host = {collection: _to_numpy(variables[collection]) for collection in ("params", "batch_stats")}
  return flax.serialization.msgpack_serialize(host)


def _to_numpy(tree: Any) -> Any:
  if isinstance(tree, dict):
    return {str(key): _to_numpy(value) for key, value in tree.items()}
  return np.asarray(tree)


def check_new_name(name: str, *, overwrite: bool = False,
                   directory: str | os.PathLike | None = None) -> None:
  """Raises unless `name` is a valid zoo name that is free (or `overwrite`)."""
  if not NAME_PATTERN.fullmatch(name):
    raise ValueError(f"zoo name {name!r} must match {NAME_PATTERN.pattern} (lower case, digits "
                     "and underscores, starting with a letter)")
  if not overwrite and any(entry.name == name for entry in list_entries(directory)):
    raise ValueError(f"zoo entry {name!r} exists in {zoo_dir(directory) / MANIFEST}; pass "
                     "--overwrite to replace it")


def add_entry(variables: dict[str, Any], *, overwrite: bool = False,
              directory: str | os.PathLike | None = None, **fields: Any) -> ZooEntry:
  """Writes `variables` as `<name>.msgpack` and adds (or replaces) its manifest entry.

  Args:
    variables: {"params", "batch_stats"}.
    overwrite: replace an existing entry of the same name (otherwise an error).
    directory: the zoo directory (see `zoo_dir`); created if needed.
    **fields: every `ZooEntry` field but `file`, `size_bytes` and `sha256`.

  Returns:
    The new entry.
  """
  name = fields.get("name", "")
  check_new_name(name, overwrite=overwrite, directory=directory)
  root = zoo_dir(directory)
  entries = {entry.name: entry for entry in list_entries(root)}
  root.mkdir(parents=True, exist_ok=True)
  path = root / f"{name}{FILE_SUFFIX}"
  _write_atomically(path, serialize_variables(variables))
  entry = ZooEntry(**fields, file=path.name, size_bytes=path.stat().st_size, sha256=sha256_of(path))
  entries[name] = entry
  manifest = {
      "format": MANIFEST_FORMAT, "entries": [entries[key].to_json() for key in sorted(entries)]
  }
  _write_atomically(root / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
  return entry


def _write_atomically(path: pathlib.Path, content: bytes) -> None:
  temporary = path.with_name(path.name + ".tmp")
  temporary.write_bytes(content)
  temporary.replace(path)
