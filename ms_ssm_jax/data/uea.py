"""UEA/UCR time-series classification: any problem of the archive by name.

Data. The tfds builder `UeaArchive` (array_record, no TensorFlow) caches a problem's official
TRAIN and TEST files under `<data_dir>/uea_archive/<Name>/1.0.0` the first time it is used.
The files come from `manual_dir/<Name>/<Name>_{TRAIN,TEST}.ts` (or `.arff`), the layout of the
archive at https://www.timeseriesclassification.com, or, when `manual_dir` is empty, from an
installed package that ships them (see `shipped.py`: `pip install --no-deps aeon==1.6.0`).
To rebuild from other files, delete that folder. For multi-process jobs, build it first with
`scripts/prepare_data.py`, so that processes do not build it at the same time.

Protocols (`protocol` in the data config), drawn from the cached cases at read time:
- `official`: TEST is the test split; a seeded hold-out of TRAIN, stratified by class
  (`validation_fraction` of each class, rounded), is the validation split.
- `uea_70_15_15`: the protocol that S5, LRU, Mamba and Log-NCDE report on EigenWorms,
  EthanolConcentration, Heartbeat, MotorImagery, SelfRegulationSCP1 and SelfRegulationSCP2.
  TRAIN and TEST are concatenated, repeated cases (same values and label) are kept once, and
  a random 70/15/15 split is drawn per `split_seed` (the papers use `UEA_SPLIT_SEEDS`). Ours
  is drawn with numpy from those seeds, so the draw is not the papers' exact one.

Inputs are standardized per channel with statistics of the train split (`standardize`);
missing values become 0 after standardization, i.e. the channel's train mean.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from ms_ssm_jax.data import local_builder
from ms_ssm_jax.data import shipped
from ms_ssm_jax.data import ts_format
from ms_ssm_jax.data.task import (ChannelStandardizer, ExampleSource, MappedSource,
                                  MissingDataError, SubsetSource, TaskDef, TaskSpec)

ARCHIVE_URL = "https://www.timeseriesclassification.com"
PROTOCOLS = ("official", "uea_70_15_15")
UEA_SPLIT_SEEDS = (2345, 3456, 4567, 5678, 6789)
PROTOCOL_DATASETS = ("EigenWorms", "EthanolConcentration", "Heartbeat", "MotorImagery",
                     "SelfRegulationSCP1", "SelfRegulationSCP2")
SPLITS = ("train", "validation", "test")

# Named tasks for the problems the aeon wheel ships (usable with no download).
SHIPPED_TASKS = {
    "japanese_vowels": "JapaneseVowels",
    "basic_motions": "BasicMotions",
    "acsf1": "ACSF1",
    "arrow_head": "ArrowHead",
    "gun_point": "GunPoint",
    "italy_power_demand": "ItalyPowerDemand",
    "osu_leaf": "OSULeaf",
    "pickup_gesture_wiimote_z": "PickupGestureWiimoteZ",
}


def default_config(name: str = "uea", dataset: str = "") -> ml_collections.ConfigDict:
  """The data config of a UEA task (`name` "uea" takes any `dataset`)."""
  config = ml_collections.ConfigDict()
  config.name = name
  config.dataset = dataset  # the archive's problem name, e.g. "EigenWorms"
  config.data_dir = "~/tensorflow_datasets"
  config.manual_dir = ""  # folder holding <dataset>/<dataset>_{TRAIN,TEST}.ts; "": shipped
  config.protocol = "official"  # one of PROTOCOLS
  config.validation_fraction = 0.2  # official protocol: share of each TRAIN class held out
  config.split_seed = UEA_SPLIT_SEEDS[0]
  config.max_length = 0  # 0: the longest case of the problem
  config.standardize = True
  return config


class UeaArchive(local_builder.LocalBuilder):
  """A UEA/UCR problem's official TRAIN and TEST files; the builder config names the problem.

  Examples: `inputs` (l, C) float32 (NaN where missing), `label` the class index in the
  header's order, `index` the case's row in its file (tfds stores records in hash order).
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Official TRAIN and TEST files as train and test splits."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name=n) for n in shipped.AEON_UEA_DATASETS + PROTOCOL_DATASETS
  ]

  def __init__(self, *, files: dict[str, pathlib.Path] | None = None, **kwargs):
    """`files` maps "train"/"test" to the source files; only needed to build."""
    self._files = files
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    # Built here rather than from package metadata files, which this builder does not have.
    return tfds.core.DatasetInfo(
        builder=self,
        description="A UEA/UCR time-series classification problem (official TRAIN/TEST).",
        features=tfds.features.FeaturesDict({
            "inputs":
                tfds.features.Tensor(shape=(None, None), dtype=np.float32,
                                     encoding=tfds.features.Encoding.BYTES),
            "label":
                tfds.features.Scalar(dtype=np.int64),
            "index":
                tfds.features.Scalar(dtype=np.int64),
        }),
        metadata=tfds.core.MetadataDict(),
        homepage=ARCHIVE_URL,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # the files are local
    if self._files is None:
      raise ValueError("UeaArchive needs `files` to build; use uea.prepare(config)")
    data = {split: ts_format.read_labeled_series(path) for split, path in self._files.items()}
    train, test = data["train"], data["test"]
    if train.class_names != test.class_names or train.values.shape[2] != test.values.shape[2]:
      raise ValueError(f"{self._files['train']} and {self._files['test']} disagree: classes "
                       f"{train.class_names} vs {test.class_names}, channels "
                       f"{train.values.shape[2]} vs {test.values.shape[2]}")
    self.info.metadata.update(
        class_names=list(train.class_names),
        num_channels=int(train.values.shape[2]),
        max_length=int(max(train.lengths.max(), test.lengths.max())),
        source_files={split: str(path) for split, path in self._files.items()},
    )
    return {split: self._generate_examples(d) for split, d in data.items()}

  def _generate_examples(self, data: ts_format.LabeledSeries):
    for i, (length, label) in enumerate(zip(data.lengths, data.label_ids)):
      yield i, {"inputs": data.values[i, :length], "label": int(label), "index": i}


def _source_files(name: str, manual_dir: str, data_dir: str) -> dict[str, pathlib.Path]:
  """The TRAIN and TEST files of problem `name`; MissingDataError names what is missing."""
  if manual_dir:
    folder = pathlib.Path(manual_dir).expanduser() / name
    files, missing = {}, []
    for split, part in (("train", "TRAIN"), ("test", "TEST")):
      candidates = [folder / f"{name}_{part}{suffix}" for suffix in (".ts", ".arff")]
      found = [path for path in candidates if path.is_file()]
      if found:
        files[split] = found[0]
      else:
        missing.append(f"{candidates[0]} (or {candidates[1].name})")
    if not missing:
      return files
    hint = ""
  else:
    location = shipped.find_uea_dataset(name)
    if location is not None:
      return {
          "train": location.folder / f"{name}_TRAIN.ts", "test": location.folder / f"{name}_TEST.ts"
      }
    missing = [f"<manual_dir>/{name}/{name}_{part}.ts (or .arff)" for part in ("TRAIN", "TEST")]
    hint = (", then set the data config field manual_dir (--config.data.manual_dir=...) to "
            "the folder that holds it")
  message = (f"UEA problem {name!r} is not prepared under {data_dir} and these files "
             "are missing:\n  " + "\n  ".join(missing) + "\n"
             f"Download the problem from the UEA/UCR archive ({ARCHIVE_URL}, or its "
             "Multivariate2018_ts.zip / Univariate2018_ts.zip) and unpack it so that "
             f"<manual_dir>/{name}/{name}_TRAIN.ts exists{hint}.")
  if name in shipped.AEON_UEA_DATASETS:
    message += (f"\n{name} also ships inside aeon: `{shipped.UEA_PACKAGES[0].install}` and "
                "leave manual_dir empty.")
  raise MissingDataError(message)


@functools.lru_cache(maxsize=None)
def _prepared_builder(data_dir: str, dataset: str, manual_dir: str) -> UeaArchive:
  kwargs = dict(
      data_dir=os.path.expanduser(data_dir), file_format="array_record",
      config=dataset if dataset in UeaArchive.builder_configs else tfds.core.BuilderConfig(
          name=dataset))
  return local_builder.prepared(
      lambda: UeaArchive(**kwargs), lambda _: UeaArchive(
          files=_source_files(dataset, manual_dir, data_dir), **kwargs).download_and_prepare())


def _check_config(config: ml_collections.ConfigDict) -> None:
  if not config.dataset:
    raise ValueError("task 'uea' needs a problem name: set --config.data.dataset=<Name> "
                     "(e.g. EigenWorms, as in the UEA archive)")
  if config.name in SHIPPED_TASKS and config.dataset != SHIPPED_TASKS[config.name]:
    raise ValueError(f"task {config.name!r} is the problem {SHIPPED_TASKS[config.name]}, got "
                     f"dataset={config.dataset!r}; use task 'uea' for other problems")
  if config.protocol not in PROTOCOLS:
    raise ValueError(f"unknown UEA protocol {config.protocol!r}; known: {list(PROTOCOLS)}")
  if config.protocol == "official" and not 0 < config.validation_fraction < 1:
    raise ValueError("the official protocol holds out validation_fraction of TRAIN as the "
                     f"validation split; it must lie in (0, 1), got "
                     f"{config.validation_fraction}")
  if config.max_length < 0:
    raise ValueError(f"max_length must be >= 0 (0: the longest case), got {config.max_length}")


def prepare(config: ml_collections.ConfigDict) -> UeaArchive:
  """Builds (once) and returns the tfds builder of `config.dataset`."""
  _check_config(config)
  return _prepared_builder(config.data_dir, config.dataset, config.manual_dir)


class _ArchiveSource:
  """TRAIN cases then TEST cases, each in file order, as `{"inputs", "label"}` examples."""

  def __init__(self, builder: UeaArchive):
    self._records: list[tuple[ExampleSource, int]] = []  # (source, position), archive order
    labels, self.digests = [], []
    for split in ("train", "test"):
      source = builder.as_data_source(split=split)
      rows, split_labels, split_digests = [], [], []
      for start in range(0, len(source), 256):  # chunks bound the memory of long problems
        chunk = list(range(start, min(start + 256, len(source))))
        for record in source.__getitems__(chunk):
          rows.append(int(record["index"]))
          split_labels.append(int(record["label"]))
          split_digests.append(_case_digest(record))
      for position in np.argsort(rows, kind="stable"):
        self._records.append((source, int(position)))
        labels.append(split_labels[position])
        self.digests.append(split_digests[position])
      if split == "train":
        self.num_train = len(source)
    self.labels = np.array(labels, dtype=np.int64)

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    source, position = self._records[index]
    record = source[position]
    return {"inputs": record["inputs"], "label": np.int32(record["label"])}


def _case_digest(record: dict) -> bytes:
  inputs = np.ascontiguousarray(record["inputs"], dtype=np.float32)
  return hashlib.sha256(inputs.tobytes() +
                        repr((inputs.shape, int(record["label"]))).encode()).digest()


def protocol_split_indices(labels: np.ndarray, digests: list[bytes], num_train: int, protocol: str,
                           split_seed: int, validation_fraction: float) -> dict[str, np.ndarray]:
  """Archive indices (TRAIN cases then TEST cases) of each split, sorted.

  Args:
    labels: (N,) class of each case of the archive order.
    digests: a hash of each case's values and label (equal hashes are repeated cases).
    num_train: how many of the N cases come from the TRAIN file.
    protocol: one of PROTOCOLS.
    split_seed: seeds the validation hold-out or the 70/15/15 draw.
    validation_fraction: the official protocol's per-class hold-out share.
  """
  rng = np.random.default_rng(split_seed)
  if protocol == "official":
    train_labels = labels[:num_train]
    validation = []
    for label in np.unique(train_labels):
      members = rng.permutation(np.flatnonzero(train_labels == label))
      validation.extend(members[:int(round(validation_fraction * len(members)))])
    validation = np.sort(np.array(validation, dtype=np.int64))
    return {
        "train": np.setdiff1d(np.arange(num_train), validation), "validation": validation,
        "test": np.arange(num_train, len(labels))
    }
  first_seen = {}
  for index, digest in enumerate(digests):
    first_seen.setdefault(digest, index)
  distinct = np.array(sorted(first_seen.values()), dtype=np.int64)
  drawn = distinct[rng.permutation(len(distinct))]
  num_train_split = int(round(0.70 * len(distinct)))
  num_validation = int(round(0.15 * len(distinct)))
  bounds = (0, num_train_split, num_train_split + num_validation, len(distinct))
  return {
      split: np.sort(drawn[start:stop])
      for split, start, stop in zip(SPLITS, bounds[:-1], bounds[1:])
  }


@functools.lru_cache(maxsize=None)
def _protocol_sources(data_dir: str, dataset: str, manual_dir: str, protocol: str, split_seed: int,
                      validation_fraction: float, standardize: bool) -> dict[str, ExampleSource]:
  archive = _ArchiveSource(_prepared_builder(data_dir, dataset, manual_dir))
  indices = protocol_split_indices(archive.labels, archive.digests, archive.num_train, protocol,
                                   split_seed, validation_fraction)
  sources = {split: SubsetSource(archive, idx) for split, idx in indices.items()}
  if standardize:
    standardizer = ChannelStandardizer.fit(sources["train"])
    sources = {split: MappedSource(s, standardizer) for split, s in sources.items()}
  return sources


def get_spec(config: ml_collections.ConfigDict) -> TaskSpec:
  """The task's spec; builds the dataset on first use."""
  metadata = prepare(config).info.metadata
  return TaskSpec(name=config.name, input_type="continuous", num_channels=metadata["num_channels"],
                  num_classes=len(metadata["class_names"]), max_length=config.max_length or
                  metadata["max_length"])


def get_source(config: ml_collections.ConfigDict, split: str) -> ExampleSource:
  """The examples of `split` under `config.protocol`; builds the dataset on first use."""
  prepare(config)
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r} of task {config.name!r}; known: {list(SPLITS)}")
  sources = _protocol_sources(config.data_dir, config.dataset,
                              config.manual_dir, config.protocol, config.split_seed,
                              float(config.validation_fraction), config.standardize)
  return sources[split]


def class_names(config: ml_collections.ConfigDict) -> list[str]:
  """The class names, in the order of the label ids."""
  return list(prepare(config).info.metadata["class_names"])


TASKS = {
    "uea": TaskDef(default_config=default_config, spec=get_spec, source=get_source),
    **{
        name:
            TaskDef(default_config=functools.partial(default_config, name, dataset), spec=get_spec, source=get_source) for name, dataset in SHIPPED_TASKS.items(
        )
    },
}
