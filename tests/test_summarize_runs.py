"""scripts/summarize_runs.py reads what train.py writes into a run directory."""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))

import summarize_runs  # noqa: E402


def write_run(root: pathlib.Path, name: str, evals: list[tuple[int, str, float]]) -> pathlib.Path:
  workdir = root / name
  (workdir / "metrics").mkdir(parents=True)
  config = {"data": {"name": "uea", "dataset": "BasicMotions"}, "model": {"layer": "s5"}}
  (workdir / "config.json").write_text(json.dumps(config))
  (workdir / "model_summary.txt").write_text("parameters: 51,396 (encoder 448, ...)\n")
  (workdir / "metrics" / "train.csv").write_text(
      "step,loss,accuracy,grad_norm,lr,ssm_lr,step_time,examples_per_s\n"
      "100,1.0,0.5,1.0,0.001,0.001,0.2,160\n200,0.5,0.8,1.0,0.001,0.001,0.4,80\n"
      "300,0.4,0.9,1.0,0.001,0.001,0.3,100\n")
  rows = "".join(f"{step},{split},0.1,{accuracy},10\n" for step, split, accuracy in evals)
  (workdir / "metrics" / "eval.csv").write_text("step,split,loss,accuracy,num_examples\n" + rows)
  return workdir


def test_test_accuracy_at_the_earliest_best_validation_step(tmp_path):
  workdir = write_run(tmp_path, "run", [
      (100, "validation", 0.5),
      (100, "test", 0.4),
      (200, "validation", 0.9),
      (200, "test", 0.7),
      (300, "validation", 0.9),
      (300, "test", 0.8),
  ])
  summary = summarize_runs.summarize(workdir)
  assert summary["task"] == "uea:BasicMotions" and summary["model"] == "s5"
  assert summary["parameters"] == 51_396
  assert summary["steps"] == 300 and summary["seconds_per_step"] == pytest.approx(0.3)
  assert summary["final_test"] == 0.8
  assert summary["best_step"] == 200 and summary["best_validation"] == 0.9
  assert summary["test_at_best_validation"] == 0.7
  table = summarize_runs.markdown([summary])
  row = "| run | uea:BasicMotions | s5 | 51,396 | 300 | 0.3000 | 80.00 | 90.00 (200) | 70.00 |"
  assert row in table


def test_hours_sum_the_sessions_that_ended(tmp_path):
  workdir = write_run(tmp_path, "run", [(100, "validation", 0.5), (100, "test", 0.4)])
  lines = [
      {
          "started": "2026-12-07T09:00:00+00:00", "start_step": 0, "command": "c", "device": "d",
          "jax_version": "v"
      },
      {"ended": "2026-12-07T09:30:00+00:00", "end_step": 200},
      {
          "started": "2026-12-07T10:00:00+00:00", "start_step": 200, "command": "c", "device": "d",
          "jax_version": "v"
      },
      {"ended": "2026-12-07T10:15:00+00:00", "end_step": 300},
      # A session that crashed records no end and does not count.
      {
          "started": "2026-12-07T11:00:00+00:00", "start_step": 300, "command": "c", "device": "d",
          "jax_version": "v"
      },
  ]
  (workdir / "sessions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
  summary = summarize_runs.summarize(workdir)
  assert summary["train_hours"] == pytest.approx(0.75)
  assert summarize_runs.markdown([summary]).splitlines()[-1].endswith("| 0.75 |")


def test_a_run_without_evaluations_shows_dashes(tmp_path):
  summary = summarize_runs.summarize(write_run(tmp_path, "fresh", []))
  assert summary["final_test"] is None and summary["best_validation"] is None
  assert summarize_runs.markdown([summary]).splitlines()[-1].endswith("| - | - | - |")


def test_directories_that_are_not_runs_are_skipped_with_a_warning(tmp_path, capsys, monkeypatch):
  write_run(tmp_path, "run", [(100, "validation", 0.5), (100, "test", 0.4)])
  (tmp_path / "ft").mkdir()  # e.g. a run that failed before writing config.json
  monkeypatch.setattr(
      sys, "argv",
      ["summarize_runs.py", str(tmp_path / "run"),
       str(tmp_path / "ft")])
  summarize_runs.main()
  out, err = capsys.readouterr()
  assert "| run | uea:BasicMotions | s5 |" in out
  assert "ft" not in out and f"skipping {tmp_path / 'ft'}" in err


def test_no_run_directory_at_all_is_an_error(tmp_path, monkeypatch):
  (tmp_path / "ft").mkdir()
  monkeypatch.setattr(sys, "argv", ["summarize_runs.py", str(tmp_path / "ft")])
  with pytest.raises(SystemExit, match="none of the 1 directories is a train.py run"):
    summarize_runs.main()
