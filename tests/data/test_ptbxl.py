"""Tests of the PTB-XL reader on a tiny release written in PhysioNet's formats (WFDB 16, CSV)."""

import csv
import pathlib

import numpy as np
import pytest

from ms_ssm_jax.data import pipeline, ptbxl
from ms_ssm_jax.data.task import MissingDataError

_LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")

# code: (diagnostic, form, rhythm, diagnostic_class, diagnostic_subclass)
_STATEMENTS = {
    "NORM": ("1.0", "", "", "NORM", "NORM"),
    "IMI": ("1.0", "", "", "MI", "IMI"),
    "ASMI": ("1.0", "", "", "MI", "AMI"),
    "NDT": ("1.0", "1.0", "", "STTC", "STTC"),
    "LVOLT": ("", "1.0", "", "", ""),
    "SR": ("", "", "1.0", "", ""),
    "AFIB": ("", "", "1.0", "", ""),
}

# (strat_fold, scp_codes); ecg_id is the position + 1.
_RECORDS = [
    (1, {"NORM": 100.0, "SR": 0.0}),
    (2, {"IMI": 50.0, "ASMI": 15.0, "SR": 0.0}),
    (3, {"LVOLT": 100.0, "SR": 0.0}),  # no diagnostic label
    (8, {"NDT": 100.0, "AFIB": 0.0}),
    (5, {"NORM": 80.0, "LVOLT": 0.0}),
    (9, {"ASMI": 100.0, "SR": 0.0}),
    (9, {"LVOLT": 100.0}),
    (10, {"NORM": 100.0, "NDT": 0.0, "SR": 0.0}),
    (10, {"AFIB": 100.0, "IMI": 35.0}),
]


def _checksum(values: np.ndarray) -> int:
  total = int(values.astype(np.int64).sum()) % 65536
  return total - 65536 if total >= 32768 else total


def _write_record(record: pathlib.Path, adc: np.ndarray, fs: int, gains, baselines) -> None:
  """A WFDB format-16 record as PhysioNet writes PTB-XL: one .dat, 12 signal lines."""
  record.parent.mkdir(parents=True, exist_ok=True)
  adc.astype("<i2").tofile(record.with_name(record.name + ".dat"))
  lines = [f"{record.name} {adc.shape[1]} {fs} {adc.shape[0]}"]
  for j, lead in enumerate(_LEADS[:adc.shape[1]]):
    lines.append(f"{record.name}.dat 16 {gains[j]}({baselines[j]})/mV 16 0 {adc[0, j]} "
                 f"{_checksum(adc[:, j])} 0 {lead}")
  record.with_name(record.name + ".hea").write_text("\n".join(lines) + "\n")


def _write_release(root: pathlib.Path) -> dict[str, np.ndarray]:
  """Writes the CSVs and 100 Hz records; returns the physical signals by record filename."""
  with open(root / "scp_statements.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow([
        "", "description", "diagnostic", "form", "rhythm", "diagnostic_class",
        "diagnostic_subclass", "Statement Category"
    ])  # fmt: skip
    for code, (diag, form, rhythm, cls, subcls) in _STATEMENTS.items():
      writer.writerow([code, f"{code} statement", diag, form, rhythm, cls, subcls, "x"])
  rng = np.random.default_rng(0)
  signals = {}
  with open(root / "ptbxl_database.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(
        ["ecg_id", "patient_id", "scp_codes", "strat_fold", "filename_lr",
         "filename_hr"])  # fmt: skip
    for i, (fold, codes) in enumerate(_RECORDS):
      ecg_id = i + 1
      filename_lr = f"records100/00000/{ecg_id:05d}_lr"
      writer.writerow(
          [ecg_id, 100 + i,
           repr(codes), fold, filename_lr, f"records500/00000/{ecg_id:05d}_hr"])  # fmt: skip
      adc = rng.integers(-3000, 3000, (1000, 12)).astype(np.int16)
      gains = [1000.0] * 11 + [500.0]
      baselines = [0] * 11 + [-7]
      _write_record(root / filename_lr, adc, 100, gains, baselines)
      signals[filename_lr] = (adc - np.array(baselines)) / np.array(gains)
  return signals


# The class counts of the tiny release written above, in place of the full release's.
_TINY_NUM_CLASSES = {
    "all": 7, "diagnostic": 4, "subdiagnostic": 4, "superdiagnostic": 3, "form": 2, "rhythm": 2
}  # fmt: skip


@pytest.fixture
def tiny_release_counts(monkeypatch):
  for label_set, count in _TINY_NUM_CLASSES.items():
    monkeypatch.setitem(ptbxl.NUM_CLASSES, label_set, count)


def _config(root, **overrides):
  config = ptbxl.TASKS["ptbxl"].default_config()
  config.data_dir = str(root)
  config.update(overrides)
  return config


@pytest.mark.parametrize(
    "label_set, classes",
    [
        ("all", ("AFIB", "ASMI", "IMI", "LVOLT", "NDT", "NORM", "SR")),
        ("diagnostic", ("ASMI", "IMI", "NDT", "NORM")),
        ("subdiagnostic", ("AMI", "IMI", "NORM", "STTC")),
        ("superdiagnostic", ("MI", "NORM", "STTC")),
        ("form", ("LVOLT", "NDT")),
        ("rhythm", ("AFIB", "SR")),
    ],
)
def test_label_sets_aggregate_through_the_statements(tmp_path, label_set, classes):
  _write_release(tmp_path)
  assert ptbxl.label_classes(_config(tmp_path, label_set=label_set)) == classes


@pytest.mark.parametrize(
    "label_set, sampling_rate, num_classes, length",
    [("all", 100, 71, 1000), ("diagnostic", 100, 44, 1000), ("subdiagnostic", 500, 23, 5000),
     ("superdiagnostic", 100, 5, 1000), ("form", 100, 19, 1000), ("rhythm", 100, 12, 1000)],
)  # fmt: skip
def test_spec_needs_no_data(label_set, sampling_rate, num_classes, length):
  config = ptbxl.TASKS["ptbxl"].default_config()
  config.update(label_set=label_set, sampling_rate=sampling_rate)
  spec = ptbxl.TASKS["ptbxl"].spec(config)
  assert (spec.num_classes, spec.max_length, spec.num_channels) == (num_classes, length, 12)
  assert (spec.target, spec.metric, spec.input_type) == ("multilabel", "auroc", "continuous")


def test_class_count_differing_from_the_release_is_an_error(tmp_path):
  _write_release(tmp_path)
  with pytest.raises(ValueError, match="the data has 3 classes, PTB-XL has 5"):
    ptbxl.TASKS["ptbxl"].source(_config(tmp_path, label_set="superdiagnostic"), "train")


@pytest.mark.usefixtures("tiny_release_counts")
def test_splits_labels_and_scaled_signals(tmp_path):
  signals = _write_release(tmp_path)
  config = _config(tmp_path, label_set="superdiagnostic")
  task = ptbxl.TASKS["ptbxl"]
  # Records without a diagnostic statement (ids 3 and 7) are dropped.
  train_ids, val_ids, test_ids = [1, 2, 4, 5], [6], [8, 9]
  train_values = np.concatenate([signals[f"records100/00000/{i:05d}_lr"] for i in train_ids])
  mean, std = train_values.mean(), train_values.std()
  np.testing.assert_allclose(ptbxl.standard_scaler(config), (mean, std), rtol=1e-6)

  # superdiagnostic classes: MI, NORM, STTC
  expected_labels = {
      1: [0, 1, 0], 2: [1, 0, 0], 4: [0, 0, 1], 5: [0, 1, 0], 6: [1, 0, 0], 8: [0, 1, 1],
      9: [1, 0, 0]
  }  # fmt: skip
  for split, ids in (("train", train_ids), ("validation", val_ids), ("test", test_ids)):
    source = task.source(config, split)
    assert len(source) == len(ids)
    for position, ecg_id in enumerate(ids):
      example = source[position]
      assert example["inputs"].shape == (1000, 12) and example["inputs"].dtype == np.float32
      expected = (signals[f"records100/00000/{ecg_id:05d}_lr"] - mean) / std
      np.testing.assert_allclose(example["inputs"], expected, rtol=1e-5, atol=1e-5)
      np.testing.assert_array_equal(example["label"], expected_labels[ecg_id])
      assert example["label"].dtype == np.float32


def test_wfdb_reader_handles_header_variants(tmp_path):
  adc = np.array([[10, -20], [300, 40], [-5, 6]], np.int16)
  prefix = np.zeros(4, np.int16)  # a byte offset of 8 skips these
  np.concatenate([prefix, adc.reshape(-1)]).astype("<i2").tofile(tmp_path / "rec.dat")
  (tmp_path / "rec.hea").write_text(
      "# a comment line\n"
      "rec 2 500/25(0) 3\n"
      f"rec.dat 16+8 0/mV 12 4 10 {_checksum(adc[:, 0])} 0 lead one\n"  # gain 0: WFDB's 200
      f"rec.dat 16+8 250.0(-2)/uV 16 0 -20 {_checksum(adc[:, 1])} 0 V2\n")
  signal, header = ptbxl.read_wfdb_record(tmp_path / "rec")
  assert header.sampling_frequency == 500.0 and header.num_samples == 3
  assert header.signals[0].description == "lead one" and header.signals[1].units == "uV"
  # First signal: no baseline given, so the ADC zero (4) is the baseline.
  np.testing.assert_allclose(signal[:, 0], (adc[:, 0] - 4) / 200.0, rtol=1e-6)
  np.testing.assert_allclose(signal[:, 1], (adc[:, 1] + 2) / 250.0, rtol=1e-6)


def test_wfdb_reader_rejects_bad_files(tmp_path):
  adc = np.arange(24, dtype=np.int16).reshape(12, 2)
  _write_record(tmp_path / "rec", adc, 100, [1000.0, 1000.0], [0, 0])
  header = (tmp_path / "rec.hea").read_text()
  (tmp_path / "rec.hea").write_text(header.replace(f" {_checksum(adc[:, 1])} 0 II", " 1 0 II"))
  with pytest.raises(ValueError, match="checksums"):
    ptbxl.read_wfdb_record(tmp_path / "rec")
  (tmp_path / "rec.hea").write_text(header.replace("dat 16 ", "dat 212 "))
  with pytest.raises(ValueError, match="format 16"):
    ptbxl.read_wfdb_record(tmp_path / "rec")
  (tmp_path / "rec.hea").write_text(header.replace("rec 2 100 12", "rec 2 100 13"))
  with pytest.raises(ValueError, match="declares 13 x 2"):
    ptbxl.read_wfdb_record(tmp_path / "rec")


@pytest.mark.usefixtures("tiny_release_counts")
def test_missing_files_are_named(tmp_path):
  with pytest.raises(MissingDataError) as error:
    ptbxl.TASKS["ptbxl"].source(_config(tmp_path), "train")
  assert "ptbxl_database.csv" in str(error.value) and "scp_statements.csv" in str(error.value)
  assert ptbxl.PTBXL_URL in str(error.value)

  _write_release(tmp_path)
  (tmp_path / "records100/00000/00002_lr.dat").unlink()  # a training record
  with pytest.raises(MissingDataError, match="00002_lr.dat"):
    ptbxl.TASKS["ptbxl"].source(_config(tmp_path), "test")


def test_config_errors(tmp_path):
  task = ptbxl.TASKS["ptbxl"]
  with pytest.raises(ValueError, match="data_dir"):
    task.source(task.default_config(), "train")
  with pytest.raises(ValueError, match="known: all, diagnostic"):
    task.spec(_config(tmp_path, label_set="diag"))
  with pytest.raises(ValueError, match="100 or 500"):
    task.spec(_config(tmp_path, sampling_rate=250))


@pytest.mark.usefixtures("tiny_release_counts")
def test_multilabel_batches_through_the_pipeline(tmp_path):
  _write_release(tmp_path)
  task = ptbxl.TASKS["ptbxl"]
  config = _config(tmp_path, label_set="rhythm")  # classes AFIB, SR
  batch = next(
      pipeline.make_batch_iterator(
          task.source(config, "train"),
          task.spec(config),
          global_batch_size=4,
          seed=0,
          shuffle=False,
          drop_remainder=True,
      ))  # fmt: skip
  # Train records with a rhythm label: ids 1, 2, 3 (SR) and 4 (AFIB).
  np.testing.assert_array_equal(batch["labels"], [[0, 1], [0, 1], [0, 1], [1, 0]])
  assert batch["inputs"].shape == (4, 1000, 12) and batch["labels"].dtype == np.float32
  np.testing.assert_array_equal(batch["lengths"], [1000] * 4)
