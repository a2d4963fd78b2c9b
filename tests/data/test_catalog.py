"""The data catalog: every task and every shipped data set, and the shipped variants by name."""

import importlib.util
import pathlib

import pytest

from ms_ssm_jax import data
from ms_ssm_jax.data import catalog
from ms_ssm_jax.data import shipped

needs_aeon = pytest.mark.skipif(
    shipped.find_uea_dataset("JapaneseVowels") is None,
    reason="the shipped UEA data needs aeon: pip install --no-deps aeon==1.6.0")

_SCRIPT = pathlib.Path(__file__).parents[2] / "scripts" / "list_data.py"


def load_script():
  spec = importlib.util.spec_from_file_location("list_data", _SCRIPT)
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  return script


def test_every_task_has_a_kind():
  kinds = catalog.task_kinds()
  assert set(kinds) == set(data.list_tasks())
  assert kinds["japanese_vowels"] == kinds["sdigits"] == "shipped"
  assert kinds["listops"] == kinds["selective_copying"] == "generated"
  assert kinds["uea"] == kinds["lra_listops"] == kinds["imagenet"] == "provided by you"


@needs_aeon
def test_shipped_uea_problems_include_the_equal_length_variants():
  rows, rejected = catalog.shipped_datasets()
  problems = {row.name: row for row in rows}
  assert {"JapaneseVowels", "JapaneseVowels_eq", "PickupGestureWiimoteZ_eq",
          "ACSF1"} <= set(problems)
  vowels = problems["JapaneseVowels"]
  assert (vowels.channels, vowels.classes, vowels.min_length, vowels.max_length, vowels.train,
          vowels.test) == (12, 9, 7, 29, 270, 370)
  assert problems["JapaneseVowels_eq"].min_length == problems["JapaneseVowels_eq"].max_length
  assert (problems["sdigits"].train, problems["sdigits"].test) == (1257 + 180, 360)
  assert "Covid3Month" not in problems and "regression" in rejected["Covid3Month"]


@needs_aeon
@pytest.mark.parametrize("name", ["JapaneseVowels_eq", "PickupGestureWiimoteZ_eq"])
def test_the_equal_length_variants_load_by_name(name, tmp_path):
  assert shipped.find_uea_dataset(name) is not None
  config = data.default_data_config("uea")
  config.dataset, config.data_dir = name, str(tmp_path)
  spec = data.get_task(config)
  assert spec.num_classes > 1 and data.num_examples(config, "test") > 0


@needs_aeon
def test_list_data_prints_every_task_and_shipped_dataset(capsys):
  load_script().main([])
  out = capsys.readouterr().out
  assert "| japanese_vowels | shipped |" in out and "| listops | generated |" in out
  assert "| JapaneseVowels_eq | aeon 1.6.0 | 12 | 9 | 25 | 270 | 370 |" in out
