"""eval.py end to end (one run, a two-model comparison), and the host-side AUROC."""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from ms_ssm_jax import cli
from ms_ssm_jax import data
from ms_ssm_jax import evaluation
from ms_ssm_jax import metrics
from ms_ssm_jax import train_lib
from tests.test_train import persistent_compilation_cache  # noqa: F401  (autouse)
from tests.test_train import tiny_config

REPO = pathlib.Path(__file__).resolve().parents[1]


def _pairwise_auroc(scores, positives):
  """P(score of a positive > score of a negative), ties one half: the definition."""
  pos, neg = scores[positives], scores[~positives]
  wins = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
  return float(np.mean(wins))


def test_macro_auroc_matches_the_definition():
  rng = np.random.default_rng(0)
  scores = np.round(rng.uniform(size=(40, 3)), 1)  # rounding makes ties
  labels = (rng.uniform(size=(40, 3)) < 0.4).astype(np.float32)
  weights = np.ones(40, np.float32)
  weights[-5:] = 0  # padding rows must not count
  expected = np.mean([_pairwise_auroc(scores[:35, c], labels[:35, c] > 0.5) for c in range(3)])
  assert metrics.macro_auroc(scores, labels, weights) == pytest.approx(expected, abs=1e-12)


def test_macro_auroc_skips_single_valued_classes_and_rejects_all():
  scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.4]])
  labels = np.array([[0, 1], [1, 1], [0, 1]], np.float32)  # class 1 has no negatives
  assert metrics.macro_auroc(scores, labels, np.ones(3)) == 1.0
  with pytest.raises(ValueError, match="AUROC is undefined"):
    metrics.macro_auroc(scores[:, 1:], labels[:, 1:], np.ones(3))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("runs")
  runs = {}
  for model in ("s5", "lru"):
    runs[model] = root / model
    train_lib.train_and_evaluate(tiny_config(model=model, **{"train.num_steps": 4}), runs[model])
  return runs


def _run_eval_py(*args: str) -> subprocess.CompletedProcess:
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "PYTHONPATH": str(REPO)}
  return subprocess.run([sys.executable, str(REPO / "eval.py"), *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


def test_eval_py_compare_two_models(two_runs, tmp_path):
  result = _run_eval_py(f"--compare={two_runs['s5']},{two_runs['lru']}", "--split=validation",
                        f"--output_dir={tmp_path}", "--batch_size=32")
  assert result.returncode == 0, result.stderr[-3000:]
  table = [line for line in result.stdout.splitlines() if line.startswith("|")]
  assert table[0] == ("| run | layer | params | step | split | loss | accuracy | "
                      "num_examples |")
  assert [row.split(" | ")[1] for row in table[2:]] == ["s5", "lru"]
  rows = json.loads((tmp_path / "compare_validation.json").read_text())
  assert [row["step"] for row in rows] == [4, 4]
  # The comparison agrees with the runs' own final evaluation of the same checkpoint.
  for row, model in zip(rows, ("s5", "lru")):
    final = json.loads((two_runs[model] / "results.json").read_text())["final"]["validation"]
    assert row["accuracy"] == pytest.approx(final["accuracy"], abs=1e-6)
    assert row["loss"] == pytest.approx(final["loss"], rel=1e-5)
  assert (tmp_path / "compare_validation.md").read_text().startswith("| run |")


def test_eval_py_single_run_writes_json_and_csv(two_runs):
  result = _run_eval_py(f"--workdir={two_runs['s5']}", "--split=test", "--checkpoint=latest")
  assert result.returncode == 0, result.stderr[-3000:]
  row = json.loads((two_runs["s5"] / "eval_latest_test.json").read_text())[0]
  assert row["task"] == "japanese_vowels" and row["num_examples"] == 370
  assert 0.0 <= row["accuracy"] <= 1.0
  assert (two_runs["s5"] / "eval_latest_test.csv").read_text().startswith("run,layer,params")


def test_eval_py_reports_a_missing_run(tmp_path):
  result = _run_eval_py(f"--workdir={tmp_path / 'nowhere'}")
  assert result.returncode != 0
  assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_eval_py_unwritable_workdir_points_to_output_dir(two_runs, tmp_path):
  run = tmp_path / "run"
  subprocess.run(["cp", "-r", str(two_runs["s5"]), str(run)], check=True)
  # Root may write into read-only directories; a directory in the file's place fails for all.
  (run / "eval_best_test.json").mkdir()
  result = _run_eval_py(f"--workdir={run}", "--max_examples=16")
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert "pass --output_dir=" in result.stderr.strip().splitlines()[-1]


def test_eval_py_garbage_metadata_is_one_line(two_runs, tmp_path):
  run = tmp_path / "run"
  subprocess.run(["cp", "-r", str(two_runs["s5"]), str(run)], check=True)
  for metadata in run.glob("best/*/variables/_METADATA"):
    metadata.write_text("garbage{")
  result = _run_eval_py(f"--workdir={run}", "--max_examples=16")
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith("eval failed: ")


def test_override_data_config_retargets_the_task():
  saved = data.default_data_config("japanese_vowels")
  saved.split_seed = 4567
  config = evaluation.override_data_config(saved, {"name": "uea", "max_length": 20}, "run")
  # Fields that both tasks have keep the saved values; the overrides win.
  assert (config.name, config.dataset, config.split_seed,
          config.max_length) == ("uea", "JapaneseVowels", 4567, 20)
  assert saved.name == "japanese_vowels" and saved.max_length == 0  # not modified
  with pytest.raises(KeyError, match="task 'lra_listops' .* has no field 'split_seed'"):
    evaluation.override_data_config(saved, {"name": "lra_listops", "split_seed": 1}, "run")


def test_parse_data_overrides_types_values_like_train_py():
  overrides = cli.parse_data_overrides([
      "--config.data.split_seed=3456", "--noconfig.data.standardize",
      "--config.data.validation_fraction=0.5"
  ], "japanese_vowels")
  assert overrides == {"split_seed": 3456, "standardize": False, "validation_fraction": 0.5}
  assert type(overrides["split_seed"]) is int
  # The fields of the task that --config.data.name selects.
  assert cli.parse_data_overrides(["--config.data.name=lra_listops", "--config.data.data_dir=/lra"],
                                  "listops") == {"name": "lra_listops", "data_dir": "/lra"}
  with pytest.raises(SystemExit, match="unknown config key --config.data.nope"):
    cli.parse_data_overrides(["--config.data.nope=1"], "japanese_vowels")


def test_eval_py_config_overrides_evaluate_another_data_source(two_runs, tmp_path):
  overrides = ("--config.data.name=uea", "--config.data.split_seed=3456")
  result = _run_eval_py(f"--workdir={two_runs['s5']}", "--split=validation", "--batch_size=32",
                        f"--output_dir={tmp_path}", *overrides)
  assert result.returncode == 0, result.stderr[-3000:]
  row = json.loads((tmp_path / "eval_best_validation_on_uea.json").read_text())[0]
  assert row["task"] == "uea"
  expected, _ = evaluation.evaluate_checkpoint(two_runs["s5"], "validation", batch_size=32,
                                               data_overrides={"name": "uea", "split_seed": 3456})
  assert row["loss"] == pytest.approx(expected["loss"], rel=1e-5)
  assert row["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
  # Another split seed holds out other validation examples.
  own, _ = evaluation.evaluate_checkpoint(two_runs["s5"], "validation", batch_size=32)
  assert own["loss"] != pytest.approx(expected["loss"], rel=1e-5)


@pytest.mark.parametrize("flag, message", [
    ("--config.model.d_model=4", "eval.py overrides only data fields"),
    ("--config.data.nope=1", "unknown config key --config.data.nope"),
])
def test_eval_py_bad_config_override_is_one_line(two_runs, flag, message):
  result = _run_eval_py(f"--workdir={two_runs['s5']}", flag)
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert message in result.stderr
