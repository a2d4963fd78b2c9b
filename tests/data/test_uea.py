"""Tests of the UEA/UCR tasks: the tfds builder, protocols, standardization, the registry."""

import importlib
import importlib.util
import pathlib

import numpy as np
import pytest

from ms_ssm_jax import data
from ms_ssm_jax.data import registry
from ms_ssm_jax.data import shipped
from ms_ssm_jax.data import ts_format
from ms_ssm_jax.data import uea
from tests.data import conftest

needs_aeon = pytest.mark.skipif(
    shipped.find_uea_dataset("JapaneseVowels") is None,
    reason="the shipped UEA data needs aeon: pip install --no-deps aeon==1.6.0")


def toy_config(tmp_path, archive, **overrides):
  config = uea.default_config("uea", "Toy")
  config.data_dir = str(tmp_path / "tfds")
  config.manual_dir = str(archive)
  config.update(overrides)
  return config


def all_inputs(source):
  return [source[i]["inputs"] for i in range(len(source))]


@needs_aeon
def test_shipped_japanese_vowels_through_the_registry(tmp_path):
  config = data.default_data_config("japanese_vowels")
  config.data_dir = str(tmp_path)
  spec = data.get_task(config)
  assert (spec.num_channels, spec.num_classes, spec.max_length) == (12, 9, 29)
  assert spec.input_type == "continuous" and spec.name == "japanese_vowels"
  sizes = {split: data.num_examples(config, split) for split in uea.SPLITS}
  # Official protocol: 270 TRAIN cases (30 per speaker), 6 per speaker held out; 370 TEST.
  assert sizes == {"train": 216, "validation": 54, "test": 370}
  batches = list(
      data.make_iterator(config, "test", global_batch_size=64, seed=0, shuffle=False,
                         drop_remainder=False, process_index=0, process_count=1))
  assert len(batches) == 6 and batches[0]["inputs"].shape == (64, 29, 12)
  assert batches[-1]["weights"].sum() == 370 - 5 * 64
  lengths = np.concatenate([b["lengths"][b["weights"] > 0] for b in batches])
  assert lengths.min() == 7 and lengths.max() == 29
  config.protocol = "uea_70_15_15"
  assert [data.num_examples(config, s) for s in uea.SPLITS] == [448, 96, 96]


def test_official_protocol_keeps_file_order_and_holds_out_each_class(tmp_path, toy_archive):
  config = toy_config(tmp_path, toy_archive, standardize=False, validation_fraction=0.25)
  spec = uea.get_spec(config)
  assert (spec.num_channels, spec.num_classes, spec.max_length) == (2, 3, 6)
  assert uea.class_names(config) == list(conftest.TOY_CLASSES)
  train_file = ts_format.read_ts(toy_archive / "Toy" / "Toy_TRAIN.ts")
  test_file = ts_format.read_ts(toy_archive / "Toy" / "Toy_TEST.ts")
  test = uea.get_source(config, "test")
  assert len(test) == 9
  for i in range(9):  # file order, although tfds stores records in hash order
    np.testing.assert_array_equal(test[i]["inputs"], test_file.values[i, :test_file.lengths[i]])
    assert test[i]["label"] == test_file.label_ids[i]
  train, validation = uea.get_source(config, "train"), uea.get_source(config, "validation")
  assert len(train) == 9 and len(validation) == 3
  assert sorted(int(validation[i]["label"]) for i in range(3)) == [0, 1, 2]
  file_cases = {train_file.values[i, :n].tobytes() for i, n in enumerate(train_file.lengths)}
  held = {x.tobytes() for x in all_inputs(train) + all_inputs(validation)}
  assert held == file_cases


def test_standardization_is_fitted_on_the_train_split(tmp_path, toy_archive):
  config = toy_config(tmp_path, toy_archive)
  train = np.concatenate(all_inputs(uea.get_source(config, "train")))
  np.testing.assert_allclose(train.mean(0), 0, atol=1e-6)
  np.testing.assert_allclose(train.std(0), 1, atol=1e-5)
  raw = toy_config(tmp_path, toy_archive, standardize=False)
  raw_train = np.concatenate(all_inputs(uea.get_source(raw, "train")))
  raw_test = uea.get_source(raw, "test")[3]["inputs"]
  expected = (raw_test - raw_train.mean(0)) / raw_train.std(0)
  np.testing.assert_allclose(
      uea.get_source(config, "test")[3]["inputs"], expected, rtol=1e-5, atol=1e-6)


def test_70_15_15_drops_repeated_cases_and_depends_on_the_seed(tmp_path, toy_archive):
  config = toy_config(tmp_path, toy_archive, protocol="uea_70_15_15", standardize=False)
  splits = {s: all_inputs(uea.get_source(config, s)) for s in uea.SPLITS}
  assert [len(splits[s]) for s in uea.SPLITS] == [13, 3, 3]  # 21 cases, 2 repeated
  keys = [x.tobytes() for s in uea.SPLITS for x in splits[s]]
  assert len(set(keys)) == 19
  config.split_seed = uea.UEA_SPLIT_SEEDS[1]
  other = [x.tobytes() for x in all_inputs(uea.get_source(config, "test"))]
  assert other != [x.tobytes() for x in splits["test"]]


def test_protocol_split_indices_exact():
  labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1])
  official = uea.protocol_split_indices(labels, [], num_train=8, protocol="official", split_seed=0,
                                        validation_fraction=0.5)
  assert len(official["validation"]) == 4 and set(labels[official["validation"]]) == {0, 1}
  np.testing.assert_array_equal(
      np.sort(np.concatenate([official["train"], official["validation"]])), range(8))
  np.testing.assert_array_equal(official["test"], [8, 9])
  digests = [bytes([i % 7]) for i in range(10)]  # cases 7, 8, 9 repeat cases 0, 1, 2
  split = uea.protocol_split_indices(labels, digests, num_train=8, protocol="uea_70_15_15",
                                     split_seed=2345, validation_fraction=0.2)
  joined = np.concatenate([split[s] for s in uea.SPLITS])
  np.testing.assert_array_equal(np.sort(joined), range(7))
  assert [len(split[s]) for s in uea.SPLITS] == [5, 1, 1]


def test_arff_files_in_the_manual_dir(tmp_path, write_file):
  write_file("archive/ToyMulti/ToyMulti_TRAIN.arff", conftest.ARFF_MULTIVARIATE)
  write_file("archive/ToyMulti/ToyMulti_TEST.ts", conftest.TS_MULTIVARIATE)
  config = toy_config(tmp_path, tmp_path / "archive", dataset="ToyMulti", standardize=False,
                      validation_fraction=0.5)
  assert uea.get_spec(config).max_length == 4
  test = uea.get_source(config, "test")
  assert np.isnan(test[1]["inputs"][1, 0]) and len(test[1]["inputs"]) == 2


def test_missing_files_are_named_with_origin_and_destination(tmp_path):
  config = toy_config(tmp_path, tmp_path / "empty", dataset="EigenWorms")
  with pytest.raises(data.MissingDataError) as error:
    uea.get_spec(config)
  message = str(error.value)
  for part in ("EigenWorms_TRAIN.ts (or EigenWorms_TRAIN.arff)", "EigenWorms_TEST.ts",
               str(tmp_path / "empty" / "EigenWorms"), uea.ARCHIVE_URL):
    assert part in message
  config = toy_config(tmp_path, "", dataset="EigenWorms")
  with pytest.raises(data.MissingDataError, match="--config.data.manual_dir"):
    uea.get_source(config, "train")


def test_bad_configs_raise_clear_errors(tmp_path, toy_archive):
  with pytest.raises(ValueError, match="set --config.data.dataset"):
    uea.get_spec(data.default_data_config("uea"))
  config = data.default_data_config("basic_motions")
  config.dataset = "EigenWorms"
  with pytest.raises(ValueError, match="use task 'uea'"):
    uea.get_spec(config)
  with pytest.raises(ValueError, match=r"known: \['official', 'uea_70_15_15'\]"):
    uea.get_spec(toy_config(tmp_path, toy_archive, protocol="random"))
  with pytest.raises(ValueError, match="must lie in"):
    uea.get_spec(toy_config(tmp_path, toy_archive, validation_fraction=0.0))


def test_registry_lists_tasks_and_rejects_unknown_names():
  names = data.list_tasks()
  assert {"uea", "japanese_vowels", "basic_motions"} <= set(names)
  with pytest.raises(KeyError, match="unknown task 'nope'; known tasks: .*japanese_vowels"):
    data.default_data_config("nope")
  assert data.default_data_config("basic_motions").dataset == "BasicMotions"


def test_prepare_data_script_builds_and_counts(tmp_path, toy_archive, capsys):
  path = pathlib.Path(__file__).parents[2] / "scripts" / "prepare_data.py"
  spec = importlib.util.spec_from_file_location("prepare_data", path)
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  script.main([
      "--task", "uea", "--dataset", "Toy", "--manual_dir",
      str(toy_archive), "--data_dir",
      str(tmp_path / "tfds"), "--protocol", "uea_70_15_15", "--standardize", "false", "--verify",
      "--batch_size", "4"
  ])
  out = capsys.readouterr().out
  for line in ("train: 13 examples", "validation: 3 examples", "test: 3 examples",
               "every example read and batched"):
    assert line in out
  with pytest.raises(SystemExit):
    script.parse_args(["--task", "uea", "--standardize", "maybe"])


def test_registry_skips_only_families_not_written_yet(monkeypatch):
  real_import = importlib.import_module

  def fake_import(name):
    if name.endswith(".broken"):
      raise ModuleNotFoundError("No module named 'wfdb'", name="wfdb")
    return real_import(name)

  monkeypatch.setattr(registry.importlib, "import_module", fake_import)
  try:
    monkeypatch.setattr(registry, "FAMILY_MODULES", ("uea", "not_written_yet"))
    registry._all_tasks.cache_clear()
    assert registry.list_tasks() == sorted(["uea", *uea.SHIPPED_TASKS])
    monkeypatch.setattr(registry, "FAMILY_MODULES", ("uea", "broken"))
    registry._all_tasks.cache_clear()
    with pytest.raises(ModuleNotFoundError, match="wfdb"):
      registry.list_tasks()
  finally:
    registry._all_tasks.cache_clear()


def test_prepare_data_help_works_without_a_task(capsys):
  path = pathlib.Path(__file__).parents[2] / "scripts" / "prepare_data.py"
  spec = importlib.util.spec_from_file_location("prepare_data", path)
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  with pytest.raises(SystemExit) as exit_info:
    script.parse_args(["--help"])
  assert exit_info.value.code == 0
  out = capsys.readouterr().out
  assert "--task" in out and "japanese_vowels" in out and "--task <name> --help" in out
  with pytest.raises(SystemExit) as exit_info:
    script.parse_args([])
  assert exit_info.value.code == 2 and "--task" in capsys.readouterr().err
