"""Data sets shipped inside packages from PyPI, found without importing those packages.

`aeon` is installed with `pip install --no-deps aeon==1.6.0`: importing it would need its
heavy dependencies, so files are found through the installed distribution's metadata.

UEA/UCR classification problems in the aeon 1.6.0 wheel, under `aeon/datasets/data/<Name>/`
as `<Name>_{TRAIN,TEST}.ts` (checked in the installed wheel):
  ACSF1                  univariate, 10 classes, length 1460, 100 / 100 cases
  ArrowHead              univariate, 3 classes, length 251, 36 / 175 (TRAIN also as .arff)
  BasicMotions           6 channels, 4 classes, length 100, 40 / 40 (TRAIN also as .arff)
  GunPoint               univariate, 2 classes, length 150, 50 / 150 (TRAIN also as .arff)
  ItalyPowerDemand       univariate, 2 classes, length 24, 67 / 1029
  JapaneseVowels         12 channels, 9 classes, lengths 7-29, 270 / 370
  OSULeaf                univariate, 6 classes, length 427, 200 / 242
  PickupGestureWiimoteZ  univariate, 10 classes, lengths 29-361, 50 / 50
The wheel also holds equal-length variants (`JapaneseVowels_eq`, `PickupGestureWiimoteZ_eq`,
kept in the folder of the problem they derive from), a cut-down ChinaTown (`UnitTest`),
regression problems (Covid3Month, CardanoSentiment) and forecasting/anomaly CSVs. Every
classification problem among them loads by name through task `uea`; `shipped_problems()`
finds them all (`scripts/list_data.py` prints them). sktime 1.2.0 ships the same kind of
files under `sktime/datasets/data/` (PLAID among them).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import pathlib


@dataclasses.dataclass(frozen=True)
class ShippingPackage:
  """A PyPI package that carries UEA/UCR files, and how to install it."""

  distribution: str
  data_folder: str  # relative to the distribution's root (site-packages)
  install: str


UEA_PACKAGES = (
    ShippingPackage("aeon", "aeon/datasets/data", "pip install --no-deps aeon==1.6.0"),
    ShippingPackage("sktime", "sktime/datasets/data", "pip install --no-deps sktime==1.2.0"),
)

# Classification problems of the aeon 1.6.0 wheel (see the module docstring).
AEON_UEA_DATASETS = ("ACSF1", "ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand",
                     "JapaneseVowels", "OSULeaf", "PickupGestureWiimoteZ")


@dataclasses.dataclass(frozen=True)
class ShippedDataset:
  """Where an installed package keeps a UEA/UCR problem."""

  name: str
  folder: pathlib.Path  # holds <name>_TRAIN.ts and <name>_TEST.ts
  package: str
  version: str


def locate_in_distribution(distribution: str, relative_path: str) -> pathlib.Path | None:
  """The path of a file or folder inside an installed distribution, or None if absent."""
  try:
    dist = importlib.metadata.distribution(distribution)
  except importlib.metadata.PackageNotFoundError:
    return None
  path = pathlib.Path(str(dist.locate_file(relative_path)))
  return path if path.exists() else None


def _has_both_files(folder: pathlib.Path, name: str) -> bool:
  return all((folder / f"{name}_{part}.ts").is_file() for part in ("TRAIN", "TEST"))


def find_uea_dataset(name: str) -> ShippedDataset | None:
  """The first installed package (aeon, then sktime) holding both files of `name`, or None.

  A variant `<Name>_<suffix>` (aeon's `JapaneseVowels_eq`) is also looked for in `<Name>/`.
  """
  folders = [name] + ([name.rsplit("_", 1)[0]] if "_" in name else [])
  for package in UEA_PACKAGES:
    for folder_name in folders:
      folder = locate_in_distribution(package.distribution, f"{package.data_folder}/{folder_name}")
      if folder and _has_both_files(folder, name):
        version = importlib.metadata.version(package.distribution)
        return ShippedDataset(name=name, folder=folder, package=package.distribution,
                              version=version)
  return None


def shipped_problems() -> list[ShippedDataset]:
  """Every problem with `<name>_{TRAIN,TEST}.ts` files in an installed package, by name.

  The first package (aeon, then sktime) wins for a name both ship. Not every one is a
  classification problem: reading the files tells (`ts_format.read_ts` rejects the others).
  """
  found: dict[str, ShippedDataset] = {}
  for package in UEA_PACKAGES:
    root = locate_in_distribution(package.distribution, package.data_folder)
    if root is None:
      continue
    version = importlib.metadata.version(package.distribution)
    for train_file in sorted(root.glob("*/*_TRAIN.ts")):
      name = train_file.name[:-len("_TRAIN.ts")]
      if name not in found and _has_both_files(train_file.parent, name):
        found[name] = ShippedDataset(name=name, folder=train_file.parent,
                                     package=package.distribution, version=version)
  return [found[name] for name in sorted(found, key=str.lower)]
