"""The train loop end to end on tiny models and real tasks (CPU, 8 fake devices)."""

from __future__ import annotations

import csv
import json
import os
import pathlib
import subprocess
import sys

import chex
import jax
from jax.experimental.compilation_cache import compilation_cache
import ml_collections
import numpy as np
import pytest

from configs import common
from ms_ssm_jax import checkpointing
from ms_ssm_jax import data
from ms_ssm_jax import evaluation
from ms_ssm_jax import metrics
from ms_ssm_jax import train_lib

REPO = pathlib.Path(__file__).resolve().parents[1]

_CACHE_OPTIONS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
                  "jax_persistent_cache_min_entry_size_bytes")


@pytest.fixture(scope="module", autouse=True)
def persistent_compilation_cache(tmp_path_factory):
  """Runs of the same tiny model compile once per session (their programs are identical).

  Compilation dominates these tests on a busy CPU; tracing still happens on every run, so
  retrace checks keep working.
  """
  previous = {name: getattr(jax.config, name) for name in _CACHE_OPTIONS}
  compilation_cache.reset_cache()
  jax.config.update("jax_compilation_cache_dir",
                    str(tmp_path_factory.getbasetemp() / "jax_compilation_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  yield
  compilation_cache.reset_cache()
  for name, value in previous.items():
    jax.config.update(name, value)


def tiny_config(task: str = "japanese_vowels", model: str = "s5",
                **updates) -> ml_collections.ConfigDict:
  """A model of a few hundred parameters that trains in seconds on the CPU."""
  config = common.base_config(task, model)
  common.override(
      config, {
          "model.d_model": 8, "model.num_layers": 1, "model.dropout": 0.1,
          "model.layer_config.state_size": 4, "optimizer.lr": 1e-2, "optimizer.warmup_steps":
              2, "train.global_batch_size": 16, "train.eval_batch_size": 64, "train.num_steps":
                  8, "train.log_every": 4, "train.eval_every": 0, "train.checkpoint_every": 4,
          "train.eval_splits": ("validation",), **updates
      })
  return common.lock(config)


def read_csv(path: pathlib.Path) -> list[dict[str, str]]:
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  """30 steps on JapaneseVowels, with the step functions checked for retracing."""
  workdir = tmp_path_factory.mktemp("run")
  config = tiny_config(
      **{
          "train.num_steps": 30, "train.log_every": 5, "train.eval_every": 15,
          "train.checkpoint_every": 15, "train.eval_splits": ("validation", "test")
      })
  with pytest.MonkeyPatch.context() as patch:
    # Any retrace (new shapes, dtypes or shardings between steps) raises here.
    patch.setattr(train_lib, "train_step", chex.assert_max_traces(train_lib.train_step, n=1))
    patch.setattr(evaluation, "eval_step", chex.assert_max_traces(evaluation.eval_step, n=1))
    state = train_lib.train_and_evaluate(config, workdir)
  return workdir, state


def test_training_reduces_the_loss(trained_run):
  workdir, state = trained_run
  rows = read_csv(workdir / "metrics" / "train.csv")
  assert [int(r["step"]) for r in rows] == [5, 10, 15, 20, 25, 30]
  losses = [float(r["loss"]) for r in rows]
  assert losses[-1] < 0.8 * losses[0]
  assert int(state.step) == 30
  for column in ("accuracy", "lr", "ssm_lr", "step_time", "examples_per_s", "grad_norm"):
    assert np.isfinite(float(rows[-1][column]))


def test_run_files(trained_run):
  workdir, _ = trained_run
  config = json.loads((workdir / "config.json").read_text())
  assert config["model"]["d_model"] == 8
  summary = (workdir / "model_summary.txt").read_text()
  assert "parameters:" in summary and "params/head/kernel" in summary
  evals = read_csv(workdir / "metrics" / "eval.csv")
  assert [(r["step"], r["split"]) for r in evals] == [("15", "validation"), ("15", "test"),
                                                      ("30", "validation"), ("30", "test")]
  assert int(evals[0]["num_examples"]) == data.num_examples(tiny_config().data, "validation")
  results = json.loads((workdir / "results.json").read_text())
  best_score = max(float(r["accuracy"]) for r in evals if r["split"] == "validation")
  assert results["best_validation_accuracy"] == pytest.approx(best_score)
  best = checkpointing.find_checkpoint(workdir, prefer="best")
  best_step = max((r for r in evals if r["split"] == "validation"),
                  key=lambda r: float(r["accuracy"]))["step"]
  assert best.step == int(best_step)
  assert checkpointing.find_checkpoint(workdir, prefer="latest").step == 30


def test_nan_loss_stops_without_saving_the_bad_state(tmp_path, monkeypatch):
  make_iterator = data.make_iterator

  def poisoned(data_config, split, **kwargs):
    for step, batch in enumerate(make_iterator(data_config, split, **kwargs),
                                 start=kwargs["start_step"] + 1):
      if split == "train" and step == 3:
        batch = {**batch, "inputs": np.full_like(batch["inputs"], np.nan)}
      yield batch

  monkeypatch.setattr(data, "make_iterator", poisoned)
  config = tiny_config(**{"train.log_every": 100, "train.checkpoint_every": 2})
  with pytest.raises(train_lib.NonFiniteError, match=r"non-finite loss \(nan\) at step 3") as e:
    train_lib.train_and_evaluate(config, tmp_path)
  assert "last good checkpoint: step 2" in str(e.value)
  assert checkpointing.find_checkpoint(tmp_path, prefer="latest").step == 2


def test_missing_data_error_surfaces(tmp_path):
  config = common.base_config("uea", "s5")
  common.override(
      config, {
          "data.dataset": "EigenWorms", "data.manual_dir": str(tmp_path), "data.data_dir": str(
              tmp_path / "tfds")
      })
  with pytest.raises(data.MissingDataError, match="EigenWorms"):
    train_lib.train_and_evaluate(config, tmp_path / "run")


def _run_train_py(*args: str) -> subprocess.CompletedProcess:
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "PYTHONPATH": str(REPO)}
  return subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


def test_train_py_default_config(tmp_path):
  result = _run_train_py(f"--workdir={tmp_path}", "--config.model.d_model=8",
                         "--config.model.num_layers=1", "--config.train.num_steps=2",
                         "--config.train.log_every=1", "--config.optimizer.warmup_steps=1",
                         "--config.train.eval_splits=('validation',)",
                         "--config.train.global_batch_size=8")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "step 2/2" in result.stdout
  assert "parameters:" in result.stdout
  assert checkpointing.find_checkpoint(tmp_path, prefer="latest").step == 2


def test_train_py_mistyped_key_names_it(tmp_path):
  config_file = tmp_path / "config.py"
  config_file.write_text("from configs import common\n\n\ndef get_config():\n"
                         "  return common.lock(common.base_config('japanese_vowels', 's5'))\n")
  result = _run_train_py(f"--workdir={tmp_path}", f"--config={config_file}",
                         "--config.optimizer.lrr=1e-3")
  assert result.returncode != 0
  assert "--config.optimizer.lrr" in result.stderr
  assert 'Did you mean "lr"' in result.stderr
  assert "Traceback" not in result.stderr


def test_loss_sums_skip_padding_and_count_nonfinite_examples():
  logits = np.array([[1.0, 0.0], [np.nan, 0.0], [0.0, np.inf]], np.float32)
  batch = {"labels": np.array([0, 1, 0]), "weights": np.array([1.0, 0.0, 1.0], np.float32)}
  counts = jax.device_get(metrics.loss_and_counts(logits, batch, "class"))
  assert counts["nonfinite_sum"] == 1  # the infinite logit; the NaN one is a padding example
  batch["weights"] = np.array([1.0, 0.0, 0.0], np.float32)
  counts = jax.device_get(metrics.loss_and_counts(logits, batch, "class"))
  assert np.isfinite(counts["loss_sum"]) and counts["nonfinite_sum"] == 0


@pytest.mark.slow  # about 28 s on 2 cores: a diagnostic script
def test_inspect_run_finds_a_broken_running_variance(trained_run):
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))
  import inspect_run  # pylint: disable=g-import-not-at-top

  workdir, _ = trained_run
  saved = evaluation.SavedModel.from_checkpoint(workdir, prefer="latest")
  model, spec = saved.model, saved.spec
  variables = jax.device_get(saved.variables)
  batch = inspect_run.first_batch(saved.config.data, "validation", 4)
  blocks = [f"blocks_{i}" for i in range(saved.config.model.num_layers)]
  stats = inspect_run.running_stat_rows(variables["batch_stats"])
  assert [row["norm"].split("/")[0] for row in stats] == blocks + ["final_norm"]
  assert all(row["var_min"] > 0 for row in stats)
  rows = inspect_run.block_rows(model, variables, batch)
  assert [row["block"] for row in rows] == blocks
  assert all(row["eval_nonfinite"] == 0 and np.isfinite(row["eval_abs_max"]) for row in rows)
  grads = inspect_run.gradient_rows(model, variables, batch, spec.target, top=3)
  assert len(grads) == 3 and grads[0]["grad_norm"] >= grads[-1]["grad_norm"] > 0

  var = variables["batch_stats"]["blocks_0"]["norm"]["batch_norm"]["var"]
  variables["batch_stats"]["blocks_0"]["norm"]["batch_norm"]["var"] = np.full_like(var, -1.0)
  rows = inspect_run.block_rows(model, variables, batch)
  assert all(row["eval_nonfinite"] > 0 for row in rows)
  saved.variables = variables
  result = saved.evaluate("validation")
  assert result["nonfinite_examples"] == result["num_examples"] and np.isnan(result["loss"])
  assert "running statistics" in evaluation.nonfinite_eval_warning("validation", 30, 3, 10)


def test_a_run_that_fails_before_its_first_step_leaves_no_half_made_workdir(tmp_path):
  config = tiny_config(init_from=str(tmp_path / "no_such_run"))
  with pytest.raises(FileNotFoundError, match="no_such_run"):
    train_lib.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()  # no checkpoints/ or best/ without config.json
  existing = tmp_path / "kept"
  (existing / "notes").mkdir(parents=True)  # a directory the user made: only ours goes
  with pytest.raises(FileNotFoundError):
    train_lib.train_and_evaluate(config, existing)
  assert sorted(p.name for p in existing.iterdir()) == ["notes"]


def test_results_hold_every_split_at_the_best_validation_step(trained_run):
  workdir, _ = trained_run
  evals = read_csv(workdir / "metrics" / "eval.csv")
  best = max((r for r in evals if r["split"] == "validation"), key=lambda r:
             (float(r["accuracy"]), -int(r["step"])))
  test_at_best = next(r for r in evals if r["split"] == "test" and r["step"] == best["step"])
  at_best = json.loads((workdir / "results.json").read_text())["at_best_validation"]
  assert at_best["step"] == int(best["step"])
  assert at_best["splits"]["test"]["accuracy"] == pytest.approx(float(test_at_best["accuracy"]))


def test_the_log_prints_validation_during_training_and_test_at_the_end(tmp_path, capsys):
  config = tiny_config(
      **{
          "train.num_steps": 4, "train.log_every": 2, "train.eval_every": 2, "train.eval_splits": (
              "validation", "test")
      })
  train_lib.train_and_evaluate(config, tmp_path / "run")
  out = capsys.readouterr().out
  assert "eval validation @ 2" in out and "eval test @ 2" not in out
  assert "eval test @ 4" in out and "test at the best validation step" in out
  assert "step 1 (compiling the train step) took" in out


def test_profile_steps_writes_a_trace_into_the_workdir(tmp_path, capsys):
  config = tiny_config(**{"train.num_steps": 4, "train.profile_steps": 2})
  train_lib.train_and_evaluate(config, tmp_path / "run")
  assert list((tmp_path / "run" / "profile").rglob("*.xplane.pb"))
  assert "profiled steps 2-3 into" in capsys.readouterr().out


@pytest.mark.parametrize("args, expected", [
    (("--config.train.global_batch_size=0",), "global_batch_size=0 must be a positive"),
    pytest.param(("--config.init_from=no_such_model",), "not a zoo name", marks=pytest.mark.slow),
    pytest.param(("--config.data.name=no_such_task",), "unknown task 'no_such_task'",
                 marks=pytest.mark.slow),
])
def test_train_py_user_errors_are_one_line(tmp_path, args, expected):
  result = _run_train_py(f"--workdir={tmp_path}", "--config.model.d_model=8",
                         "--config.model.num_layers=1", *args)
  assert result.returncode != 0
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("training stopped: ") and expected in last and "--verbose" in last


def test_train_py_config_file_errors_are_one_line(tmp_path):
  result = _run_train_py(f"--workdir={tmp_path}", "--config=configs/uea.py:nomodel")
  assert result.returncode != 0
  assert "Traceback" not in result.stderr
  assert ("ValueError: unknown model 'nomodel' in config arg 'nomodel'; choose one of"
          in result.stderr)


def test_train_py_workdir_file_and_verbose_traceback(tmp_path):
  (tmp_path / "file").write_text("")
  result = _run_train_py(f"--workdir={tmp_path / 'file'}", "--config.model.d_model=8",
                         "--config.model.num_layers=1", "--verbose")
  assert result.returncode != 0
  assert "Traceback" in result.stderr and "is a file" in result.stderr
