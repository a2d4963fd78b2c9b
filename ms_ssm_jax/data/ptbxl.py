"""PTB-XL (Wagner et al., 2020), the 12-lead ECG benchmark of Strodthoff et al. (2020).

The user downloads PTB-XL 1.0.3 from PhysioNet and unpacks it; `data_dir` is the folder that
holds `ptbxl_database.csv`, `scp_statements.csv`, `records100/` and `records500/`. Records are
read by our own reader of the WFDB format-16 files (`read_wfdb_record`), so `wfdb` is not needed.

Protocol of the benchmark (Strodthoff et al., 2020), as MultiresConv and MS-SSM use it:
- labels: the keys of `scp_codes` (every likelihood counts), mapped through `scp_statements.csv`
  into one of six label sets: `all` (every statement), `diagnostic` (statements with
  diagnostic = 1), `subdiagnostic` and `superdiagnostic` (their `diagnostic_subclass` and
  `diagnostic_class`), `form` (form = 1) and `rhythm` (rhythm = 1). The classes are the labels
  that occur in the database, in sorted order: 71, 44, 23, 5, 19 and 12 of them on the full
  release (`NUM_CLASSES`; the spec uses these counts, the source checks them against the data).
  Records with no label in the set are dropped.
- splits on `strat_fold`: 1-8 train, 9 validation, 10 test.
- one standard scaler (a single mean and standard deviation over all leads and steps) fitted on
  the training signals of the label set, applied to every split.
Examples: "inputs" `(1000, 12)` float32 at 100 Hz (`(5000, 12)` at 500 Hz), "label"
`(num_classes,)` float32 multi-hot.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import functools
import pathlib

import ml_collections
import numpy as np
from absl import logging
from ml_collections import config_dict

from ms_ssm_jax.data.task import MissingDataError, TaskDef, TaskSpec

PTBXL_URL = "https://physionet.org/content/ptb-xl/1.0.3/"
LABEL_SETS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")
# Classes per label set in PTB-XL (Strodthoff et al., 2020, Table 1).
NUM_CLASSES = {
    "all": 71,
    "diagnostic": 44,
    "subdiagnostic": 23,
    "superdiagnostic": 5,
    "form": 19,
    "rhythm": 12,
}
NUM_LEADS = 12
RECORD_SECONDS = 10
_FILENAME_COLUMN = {100: "filename_lr", 500: "filename_hr"}
_SPLIT_FOLDS = {"train": range(1, 9), "validation": (9,), "test": (10,)}
_WFDB_DEFAULT_GAIN = 200.0  # WFDB: an ADC gain of 0 means the default, 200 units per mV
_MAX_LISTED_MISSING = 20


@dataclasses.dataclass(frozen=True)
class WfdbSignal:
  """One signal line of a WFDB header."""

  file_name: str
  byte_offset: int
  gain: float  # ADC units per physical unit
  baseline: int  # ADC value of physical zero
  units: str
  checksum: int  # 16-bit sum of the signal's samples
  description: str


@dataclasses.dataclass(frozen=True)
class WfdbHeader:
  record_name: str
  sampling_frequency: float
  num_samples: int
  signals: tuple[WfdbSignal, ...]


def _parse_signal_line(line: str, where: str) -> WfdbSignal:
  fields = line.split(maxsplit=8)
  if len(fields) < 7:
    raise ValueError(f"{where}: a signal line needs at least 7 fields, got {line!r}")
  file_name, fmt, gain_spec = fields[0], fields[1], fields[2]
  fmt, _, byte_offset = fmt.partition("+")
  if fmt != "16":
    raise ValueError(
        f"{where}: only WFDB format 16 (PTB-XL's) is supported, got format {fields[1]!r}")
  gain_spec, _, units = gain_spec.partition("/")
  adc_zero = int(fields[4])
  if "(" in gain_spec:
    gain_text, baseline_text = gain_spec.rstrip(")").split("(")
    baseline = int(baseline_text)
  else:
    gain_text, baseline = gain_spec, adc_zero
  gain = float(gain_text) or _WFDB_DEFAULT_GAIN
  return WfdbSignal(
      file_name=file_name,
      byte_offset=int(byte_offset or 0),
      gain=gain,
      baseline=baseline,
      units=units or "mV",
      checksum=int(fields[6]),
      description=fields[8].strip() if len(fields) > 8 else "",
  )


def read_wfdb_header(path: pathlib.Path) -> WfdbHeader:
  """Parses a single-segment WFDB header (`.hea`) whose signals are all in format 16."""
  lines = [
      line.strip()
      for line in path.read_text().splitlines()
      if line.strip() and not line.lstrip().startswith("#")
  ]
  if not lines:
    raise ValueError(f"{path}: empty WFDB header")
  record = lines[0].split()
  if len(record) < 4 or "/" in record[0]:
    raise ValueError(
        f"{path}: expected a single-segment record line `name n_signals fs n_samples`, got "
        f"{lines[0]!r}")
  num_signals, num_samples = int(record[1]), int(record[3])
  # The frequency may carry a counter frequency and base counter: `100/25(0)`.
  sampling_frequency = float(record[2].split("/")[0].split("(")[0])
  signals = tuple(_parse_signal_line(line, str(path)) for line in lines[1:1 + num_signals])
  if len(signals) != num_signals:
    raise ValueError(f"{path}: {num_signals} signals declared, {len(signals)} signal lines")
  if len({(s.file_name, s.byte_offset) for s in signals}) != 1:
    raise ValueError(f"{path}: signals spread over several files are not supported")
  return WfdbHeader(record[0], sampling_frequency, num_samples, signals)


def read_wfdb_record(record_path: pathlib.Path) -> tuple[np.ndarray, WfdbHeader]:
  """Reads `<record_path>.hea` and its format-16 data file.

  Format 16 stores the samples as little-endian int16, frame by frame (all signals of step 0,
  then step 1, ...). Physical values are `(adc - baseline) / gain`.

  Returns:
    The signal `(num_samples, num_signals)` float32 in physical units, and the header.
  """
  header = read_wfdb_header(record_path.with_name(record_path.name + ".hea"))
  first = header.signals[0]
  data_path = record_path.parent / first.file_name
  num_signals = len(header.signals)
  adc = np.fromfile(data_path, dtype="<i2", offset=first.byte_offset)
  if adc.size < header.num_samples * num_signals:
    raise ValueError(f"{data_path}: holds {adc.size} samples, the header declares "
                     f"{header.num_samples} x {num_signals}")
  adc = adc[:header.num_samples * num_signals].reshape(header.num_samples, num_signals)
  checksums = adc.astype(np.int64).sum(axis=0) & 0xFFFF
  expected = np.array([s.checksum for s in header.signals], np.int64) & 0xFFFF
  if np.any(checksums != expected):
    raise ValueError(f"{data_path}: sample checksums do not match the header; corrupt file?")
  gain = np.array([s.gain for s in header.signals])
  baseline = np.array([s.baseline for s in header.signals])
  return ((adc - baseline) / gain).astype(np.float32), header


def _data_dir(config: ml_collections.ConfigDict) -> pathlib.Path:
  if not config.data_dir:
    raise ValueError(
        f"task {config.name!r}: set data_dir to the unpacked PTB-XL 1.0.3 folder (the one that "
        f"holds ptbxl_database.csv), from {PTBXL_URL}")
  return pathlib.Path(config.data_dir).expanduser()


def _missing_error(missing: list[pathlib.Path], data_dir: pathlib.Path) -> MissingDataError:
  shown = "".join(f"  {p}\n" for p in missing[:_MAX_LISTED_MISSING])
  more = len(missing) - _MAX_LISTED_MISSING
  return MissingDataError(
      f"missing PTB-XL files:\n{shown}" + (f"  ... and {more} more\n" if more > 0 else "") +
      f"They come from PTB-XL 1.0.3 on PhysioNet ({PTBXL_URL}, the zip link at the bottom "
      f"of the page). Unpack it and point data_dir at the folder that holds "
      f"ptbxl_database.csv, scp_statements.csv and records100/ ({data_dir} now).")


@dataclasses.dataclass(frozen=True)
class _Record:
  filename: str  # relative to the data folder, without extension
  fold: int
  labels: frozenset[str]


def _flag(value: str) -> bool:
  return value.strip() not in ("", "0", "0.0")


def _aggregate(codes: list[str], statements: dict[str, dict[str, str]], label_set: str):
  """The labels of one record in `label_set`, from its `scp_codes` keys."""
  if label_set == "all":
    return frozenset(codes)
  labels = set()
  for code in codes:
    statement = statements.get(code)
    if statement is None:
      continue
    if label_set in ("form", "rhythm"):
      if _flag(statement[label_set]):
        labels.add(code)
    elif _flag(statement["diagnostic"]):
      value = {
          "diagnostic": code,
          "subdiagnostic": statement["diagnostic_subclass"],
          "superdiagnostic": statement["diagnostic_class"],
      }[label_set]
      if value:
        labels.add(value)
  return frozenset(labels)


@functools.lru_cache(maxsize=None)
def _records(data_dir: str, label_set: str, sampling_rate: int) -> tuple[_Record, ...]:
  """The labelled records of the database in row order, their labels in `label_set`."""
  root = pathlib.Path(data_dir)
  tables = [root / "ptbxl_database.csv", root / "scp_statements.csv"]
  missing = [p for p in tables if not p.is_file()]
  if missing:
    raise _missing_error(missing, root)
  with open(tables[1], newline="") as f:
    rows = list(csv.reader(f))
  columns = rows[0]
  # The first column holds the statement code and has an empty header.
  statements = {row[0]: dict(zip(columns, row)) for row in rows[1:] if row}
  records = []
  with open(tables[0], newline="") as f:
    for row in csv.DictReader(f):
      codes = list(ast.literal_eval(row["scp_codes"]))
      labels = _aggregate(codes, statements, label_set)
      if labels:
        records.append(_Record(row[_FILENAME_COLUMN[sampling_rate]], int(row["strat_fold"]),
                               labels))
  return tuple(records)


def label_classes(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The class names of the configured label set, in the order of the multi-hot labels."""
  _check_config(config)
  records = _records(str(_data_dir(config)), config.label_set, config.sampling_rate)
  return tuple(sorted(set().union(*(r.labels for r in records))))


def _split_records(config: ml_collections.ConfigDict, split: str) -> list[_Record]:
  folds = _SPLIT_FOLDS[split]
  records = _records(str(_data_dir(config)), config.label_set, config.sampling_rate)
  return [r for r in records if r.fold in folds]


@functools.lru_cache(maxsize=None)
def _fit_scaler(data_dir: str, filenames: tuple[str, ...]) -> tuple[float, float]:
  """Mean and standard deviation (ddof 0) of all values of the given records."""
  count, mean, m2 = 0, 0.0, 0.0
  for filename in filenames:
    signal, _ = read_wfdb_record(pathlib.Path(data_dir, filename))
    values = signal.astype(np.float64).reshape(-1)
    # Chan et al.'s pairwise update keeps the variance exact over ~10^8 values.
    n, m = values.size, values.mean()
    delta = m - mean
    total = count + n
    mean += delta * n / total
    m2 += ((values - m)**2).sum() + delta**2 * count * n / total
    count = total
  return mean, float(np.sqrt(m2 / count))


def standard_scaler(config: ml_collections.ConfigDict) -> tuple[float, float]:
  """The (mean, std) that normalizes every split, fitted on the training signals."""
  records = _split_records(config, "train")
  if not records:
    raise ValueError(f"PTB-XL: no training record has a label in {config.label_set!r}")
  logging.info("PTB-XL: fitting the standard scaler on %d training records", len(records))
  return _fit_scaler(str(_data_dir(config)), tuple(r.filename for r in records))


class PtbxlSource:
  """The records of one split: scaled signals `(l, 12)` and multi-hot labels."""

  def __init__(
      self,
      data_dir: pathlib.Path,
      records: list[_Record],
      classes: tuple[str, ...],
      scaler: tuple[float, float],
      length: int,
  ):
    self._data_dir = data_dir
    self._filenames = [r.filename for r in records]
    index = {name: i for i, name in enumerate(classes)}
    self._labels = np.zeros((len(records), len(classes)), np.float32)
    for row, record in enumerate(records):
      self._labels[row, [index[label] for label in record.labels]] = 1.0
    self._mean, self._std = scaler
    self._length = length

  def __len__(self) -> int:
    return len(self._filenames)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not 0 <= index < len(self._filenames):
      raise IndexError(f"index {index} out of range for {len(self._filenames)} records")
    signal, header = read_wfdb_record(self._data_dir / self._filenames[index])
    if signal.shape != (self._length, NUM_LEADS):
      raise ValueError(
          f"{self._data_dir / self._filenames[index]}: expected {self._length} steps x "
          f"{NUM_LEADS} leads, got {signal.shape} at {header.sampling_frequency} Hz")
    inputs = ((signal - self._mean) / self._std).astype(np.float32)
    return {"inputs": inputs, "label": self._labels[index]}


def _check_config(config: ml_collections.ConfigDict) -> None:
  if config.label_set not in LABEL_SETS:
    raise ValueError(f"unknown label_set {config.label_set!r}; known: {', '.join(LABEL_SETS)}")
  if config.sampling_rate not in _FILENAME_COLUMN:
    raise ValueError(f"sampling_rate must be 100 or 500 (Hz), got {config.sampling_rate}")


def _default_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.name = "ptbxl"
  config.data_dir = config_dict.placeholder(str)
  config.label_set = "all"
  config.sampling_rate = 100  # Hz: 100 (records100, as the paper) or 500 (records500)
  return config


def _spec(config: ml_collections.ConfigDict) -> TaskSpec:
  _check_config(config)
  return TaskSpec(
      name=config.name,
      input_type="continuous",
      num_channels=NUM_LEADS,
      num_classes=NUM_CLASSES[config.label_set],
      max_length=RECORD_SECONDS * config.sampling_rate,
      target="multilabel",
      metric="auroc",
  )


def _source(config: ml_collections.ConfigDict, split: str) -> PtbxlSource:
  if split not in _SPLIT_FOLDS:
    raise ValueError(f"unknown split {split!r}; known splits: {', '.join(_SPLIT_FOLDS)}")
  classes = label_classes(config)
  if len(classes) != NUM_CLASSES[config.label_set]:
    raise ValueError(
        f"PTB-XL label set {config.label_set!r}: the data has {len(classes)} classes, PTB-XL "
        f"has {NUM_CLASSES[config.label_set]}; is {config.data_dir} the full 1.0.3 release?")
  data_dir = _data_dir(config)
  records = _split_records(config, split)
  # The scaler reads the training records whatever the split.
  needed = {r.filename: None for r in _split_records(config, "train") + records}
  missing = [
      data_dir / f"{filename}{suffix}"
      for filename in needed
      for suffix in (".hea", ".dat")
      if not (data_dir / f"{filename}{suffix}").is_file()
  ]
  if missing:
    raise _missing_error(missing, data_dir)
  return PtbxlSource(data_dir, records, classes, standard_scaler(config),
                     RECORD_SECONDS * config.sampling_rate)


TASKS: dict[str, TaskDef] = {"ptbxl": TaskDef(_default_config, _spec, _source)}
