"""The model zoo: released entries, integrity checks, the release script, eval and fine-tuning.

Every entry of the package's manifest is loaded and checked against its size and sha256, and
re-evaluated on its fixed test slice. Entries whose task data cannot be made on a CPU in
seconds (generated tasks such as ListOps, whose test split comes after the whole training
set) are skipped unless `MS_SSM_ZOO_TEST_ALL=1`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from ms_ssm_jax import checkpointing
from ms_ssm_jax import evaluation
from ms_ssm_jax import finetune
from ms_ssm_jax import train_lib
from ms_ssm_jax import zoo
from ms_ssm_jax.data import uea
from tests.test_train import persistent_compilation_cache  # noqa: F401  (autouse)
from tests.test_train import tiny_config
from tests.marks import marked_slow

REPO = pathlib.Path(__file__).resolve().parents[1]
RELEASED = zoo.list_entries(zoo.zoo_dir(REPO / "ms_ssm_jax" / "released"))
# The slice may differ by this many examples from the stored one (CPU vs GPU rounding).
SLICE_TOLERANCE_EXAMPLES = 2
# Tasks whose data the tests can build in seconds: the UEA problems shipped in the aeon wheel
# (as their own tasks or as task "uea" with that dataset), scikit-learn's digits, generated
# ListOps at LRA sizes (about 25 s on 2 CPU cores), and the synthetic memory tasks (made per
# example, no files).
QUICK_TASKS = set(
    uea.SHIPPED_TASKS) | {"sdigits", "listops", "associative_recall", "selective_copying"}
SHIPPED_UEA_DATASETS = set(uea.SHIPPED_TASKS.values())
# Generated tasks write their data here (once per test session), not into ~/tensorflow_datasets.
GENERATED_TASKS = {"listops"}
# Entries whose slice evaluation takes minutes on 2 CPU cores (ListOps: 100 sequences of 2,048
# steps, plus generating the task's data; selective copying: 40 s); they run with -m slow.
SLOW_SLICE_ENTRIES = {"ms_ssm_listops_4epoch", "s5_listops_4epoch", "ms_ssm_selective_copying"}
TINY_NAME = "tiny_s5_japanese_vowels"


def _load_script():
  spec = importlib.util.spec_from_file_location("release_checkpoint",
                                                REPO / "scripts" / "release_checkpoint.py")
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  return script


release_checkpoint = _load_script()


@pytest.fixture(autouse=True)
def package_zoo(monkeypatch):
  """Tests read the package's zoo unless they pass another directory."""
  monkeypatch.delenv(zoo.ZOO_DIR_ENV, raising=False)


def test_the_default_entry_is_released():
  assert "ms_ssm_japanese_vowels" in [entry.name for entry in RELEASED]


@pytest.mark.parametrize("entry", RELEASED, ids=lambda entry: entry.name)
def test_entry_file_matches_the_manifest_and_the_model(entry):
  path = zoo.zoo_dir() / entry.file
  assert path.stat().st_size == entry.size_bytes
  assert zoo.sha256_of(path) == entry.sha256
  assert (entry.task, entry.model) == (entry.config["data"]["name"], entry.config["model"]["layer"])
  assert {"command", "device", "date"} <= {k for k, v in entry.to_json().items() if v}
  # Rebuilds the model from the stored config; every array must fit it.
  model = evaluation.SavedModel.from_zoo(entry.name)
  assert model.info["params"] > 0


@pytest.fixture(scope="session")
def generated_data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("generated_tfds")


@pytest.mark.parametrize("entry",
                         marked_slow(RELEASED, SLOW_SLICE_ENTRIES, key=lambda entry: entry.name),
                         ids=lambda entry: entry.name)
def test_entry_reproduces_its_slice_accuracy(entry, generated_data_dir):
  quick = entry.task in QUICK_TASKS or (entry.task == "uea" and
                                        entry.config["data"]["dataset"] in SHIPPED_UEA_DATASETS)
  if not quick and os.environ.get("MS_SSM_ZOO_TEST_ALL") != "1":
    pytest.skip(f"task {entry.task!r}: its test split cannot be made on a CPU in seconds; set "
                "MS_SSM_ZOO_TEST_ALL=1 (with the data prepared) to evaluate it")
  metrics = entry.metrics
  overrides = ({"data_dir": str(generated_data_dir)} if entry.task in GENERATED_TASKS else None)
  # A batch that splits over the tests' 8 CPU devices; eval-mode metrics do not depend on it.
  model = evaluation.SavedModel.from_zoo(entry.name, data_overrides=overrides,
                                         batch_size=5 * jax.device_count())
  result = model.evaluate("test", metrics["slice_examples"])
  assert result["num_examples"] == metrics["slice_examples"]
  differing = abs(result["accuracy"] - metrics["slice_accuracy"]) * metrics["slice_examples"]
  assert differing <= SLICE_TOLERANCE_EXAMPLES + 1e-6, (result, metrics)


def test_unknown_name_lists_the_available_ones(tmp_path):
  with pytest.raises(ValueError, match="no zoo entry 'nope'.*available: .*ms_ssm_japanese_vowels"):
    zoo.get_entry("nope")
  with pytest.raises(ValueError, match="available: none"):
    zoo.load_variables("nope", tmp_path)
  assert zoo.is_zoo_name("ms_ssm_japanese_vowels")
  assert not zoo.is_zoo_name("./ms_ssm_japanese_vowels")
  assert not zoo.is_zoo_name("workdirs/default")


def test_a_corrupted_file_fails_the_sha256_check(tmp_path):
  copy = tmp_path / "zoo"
  shutil.copytree(zoo.zoo_dir(), copy)
  entry = zoo.get_entry("ms_ssm_japanese_vowels", copy)
  content = bytearray((copy / entry.file).read_bytes())
  content[len(content) // 2] ^= 0xFF  # same size, one byte changed
  (copy / entry.file).write_bytes(bytes(content))
  with pytest.raises(zoo.ZooIntegrityError, match="sha256.*corrupted"):
    zoo.load_variables(entry.name, copy)


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
  """A tiny JapaneseVowels run released into a temporary zoo: (zoo dir, run, entry)."""
  root = tmp_path_factory.mktemp("tiny_zoo")
  run = root / "run"
  train_lib.train_and_evaluate(tiny_config(), run, command="python train.py --tiny")
  release_checkpoint.main([
      "--workdir",
      str(run), "--name", TINY_NAME, "--description", "tiny", "--slice_examples", "50", "--zoo_dir",
      str(root / "zoo")
  ])
  return root / "zoo", run, zoo.get_entry(TINY_NAME, root / "zoo")


def test_release_script_writes_a_verified_entry(tiny_zoo):
  directory, run, entry = tiny_zoo
  manifest = json.loads((directory / zoo.MANIFEST).read_text())
  assert [row["name"] for row in manifest["entries"]] == [TINY_NAME]
  assert entry.size_bytes == (directory / entry.file).stat().st_size
  assert entry.sha256 == zoo.sha256_of(directory / entry.file)
  ref = checkpointing.find_checkpoint(run, prefer="best")
  assert entry.steps == ref.step == 8
  assert entry.selected_by.startswith("best validation accuracy")
  assert entry.config == checkpointing.load_config_json(ref)
  assert (entry.command, entry.device) == ("python train.py --tiny", "8 x cpu")
  assert 0 <= entry.train_hours < 1  # the tiny run's one session recorded its end
  # The released file holds exactly the checkpoint's variables.
  released = checkpointing.tree_paths(zoo.load_variables(TINY_NAME, directory))
  saved = checkpointing.tree_paths(checkpointing.load_variables(ref))
  assert released.keys() == saved.keys()
  for path in saved:
    np.testing.assert_array_equal(released[path], saved[path], err_msg=path)
  # The metrics are those of the checkpoint, on the whole test split and on the slice.
  test, _ = evaluation.evaluate_checkpoint(run, "test")
  assert entry.metrics["test_accuracy"] == pytest.approx(test["accuracy"], abs=1e-9)
  assert entry.metrics["test_examples"] == test["num_examples"] == 370
  model = evaluation.SavedModel.from_zoo(TINY_NAME, directory=directory)
  assert model.evaluate("test", 50) == pytest.approx(
      {
          "loss": entry.metrics["slice_loss"], "accuracy": entry.metrics["slice_accuracy"],
          "num_examples": 50
      }, rel=1e-6)


def test_release_script_refuses_to_overwrite_and_needs_provenance(tiny_zoo, tmp_path):
  directory, run, entry = tiny_zoo
  args = ["--workdir", str(run), "--name", TINY_NAME, "--zoo_dir", str(directory)]
  with pytest.raises(ValueError, match="exists.*--overwrite"):
    release_checkpoint.main(args)
  assert zoo.get_entry(TINY_NAME, directory) == entry
  # A run without sessions.jsonl (not started by train.py) needs the facts as flags.
  bare = tmp_path / "bare"
  shutil.copytree(run, bare)
  (bare / "sessions.jsonl").unlink()
  with pytest.raises(ValueError, match="pass --command --device --date"):
    release_checkpoint.main(
        ["--workdir", str(bare), "--name", "other", "--zoo_dir",
         str(directory)])


def test_eval_py_evaluates_a_zoo_entry_by_name(tiny_zoo):
  directory, _, entry = tiny_zoo
  env = {
      **os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "PYTHONPATH": str(REPO),
      zoo.ZOO_DIR_ENV: str(directory)
  }
  result = subprocess.run(
      [sys.executable,
       str(REPO / "eval.py"), f"--zoo={TINY_NAME}", "--max_examples=50"], cwd=REPO, env=env,
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  row = next(line for line in result.stdout.splitlines() if line.startswith(f"| zoo:{TINY_NAME}"))
  cells = [cell.strip() for cell in row.strip("|").split("|")]
  assert cells[4:] == [
      "test", f"{entry.metrics['slice_loss']:.4f}", f"{entry.metrics['slice_accuracy']:.4f}", "50"
  ]


def test_fine_tune_from_a_zoo_name_on_another_dataset(tiny_zoo, tmp_path, monkeypatch):
  directory, _, _ = tiny_zoo
  monkeypatch.setenv(zoo.ZOO_DIR_ENV, str(directory))
  # BasicMotions: 6 input channels and 4 classes, against JapaneseVowels' 12 and 9.
  updates = {"init_from": TINY_NAME, "train.num_steps": 1, "optimizer.warmup_steps": 0}
  with pytest.raises(
      checkpointing.CheckpointMismatchError,
      match=r"(?s)params/encoder/projection/kernel: checkpoint \(12, 8\) vs model "
      r"\(6, 8\).*--config.init_head='encoder/\.\*\|head/\.\*'"):
    train_lib.train_and_evaluate(tiny_config("basic_motions", init_head="reinit", **updates),
                                 tmp_path / "head_only")
  config = tiny_config("basic_motions", init_head="encoder/.*|head/.*", freeze="blocks_0/.*",
                       **updates)
  tuned = train_lib.train_and_evaluate(config, tmp_path / "tuned")
  source = zoo.load_variables(TINY_NAME)
  # The frozen block is the zoo model's; encoder and head are new (6 channels, 4 classes).
  frozen = checkpointing.tree_paths(source["params"]["blocks_0"])
  for path, value in checkpointing.tree_paths(tuned.params["blocks_0"]).items():
    np.testing.assert_array_equal(value, frozen[path], err_msg=path)
  assert tuned.params["encoder"]["projection"]["kernel"].shape == (6, 8)
  assert tuned.params["head"]["kernel"].shape == (8, 4)


def test_init_from_errors_are_clear(tiny_zoo, tmp_path, monkeypatch):
  directory, _, _ = tiny_zoo
  monkeypatch.setenv(zoo.ZOO_DIR_ENV, str(directory))
  with pytest.raises(FileNotFoundError, match=f"not a zoo name \\(zoo entries: {TINY_NAME}\\)"):
    finetune.fine_tune_variables({}, "no_such_model", "keep")
  monkeypatch.chdir(tmp_path)
  (tmp_path / TINY_NAME).mkdir()
  with pytest.raises(ValueError, match=f"names both a zoo entry and the path.*./{TINY_NAME}"):
    finetune.fine_tune_variables({}, TINY_NAME, "keep")
  with pytest.raises(ValueError, match="re-initializes nothing"):
    finetune.fine_tune_variables({"params": {"head": {"kernel": np.zeros(1)}}}, TINY_NAME,
                                 "encoder/.*")
