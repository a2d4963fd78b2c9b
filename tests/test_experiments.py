"""results/ holds outputs only; every experiment driver lives in scripts/experiments/ and is named.

Each output folder's README names the command that produced it, so a driver that moves or is
renamed must take every reference (results READMEs, docs) with it.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "scripts" / "experiments"
RUNNABLE_SUFFIXES = {".sh", ".py", ".sbatch"}
# A path under scripts/ as the docs write it, e.g. `bash scripts/experiments/speed_rows.sh $OUT`.
SCRIPT_REFERENCE = re.compile(r"scripts/[\w/.-]+\.(?:sh|py)")


def documents() -> list[pathlib.Path]:
  return [*(REPO / "results").rglob("*.md"), *(REPO / "docs").glob("*.md"), REPO / "README.md"]


def test_results_holds_no_runnable_files():
  runnable = [
      str(path.relative_to(REPO))
      for path in (REPO / "results").rglob("*")
      if path.is_file() and (path.suffix in RUNNABLE_SUFFIXES or path.stat().st_mode & 0o111)
  ]
  assert not runnable, f"move these to scripts/experiments/: {runnable}"


def test_every_results_folder_with_outputs_has_a_readme():
  missing = []
  for folder in sorted({path.parent for path in (REPO / "results").rglob("*") if path.is_file()}):
    # A folder is covered by its own README or by the README of the experiment folder above it
    # (e.g. accuracy_budget/README.md names call_a/ ... call_g/).
    covered = any((parent / "README.md").is_file()
                  for parent in (folder, *folder.parents)
                  if parent != REPO / "results" and REPO / "results" in parent.parents)
    if not covered:
      missing.append(str(folder.relative_to(REPO)))
  assert not missing, f"results folders without a README naming their command: {missing}"


def test_every_script_the_docs_name_exists():
  missing = {
      f"{document.relative_to(REPO)}: {reference}" for document in documents()
      for reference in SCRIPT_REFERENCE.findall(document.read_text())
      if not (REPO / reference).is_file()
  }
  assert not missing, sorted(missing)


def test_every_experiment_is_named_by_a_results_readme_or_the_docs():
  named = {
      reference for document in documents()
      for reference in SCRIPT_REFERENCE.findall(document.read_text())
  }
  drivers = {
      str(path.relative_to(REPO))
      for path in EXPERIMENTS.iterdir()
      if path.suffix in (".sh", ".py") and path.name != "lib.sh"
  }
  assert drivers - named == set(), "drivers no document names (what did they produce?)"


@pytest.mark.parametrize("script", sorted(path.name for path in EXPERIMENTS.glob("*.sh")))
def test_experiment_script_parses(script):
  result = subprocess.run(["bash", "-n", str(EXPERIMENTS / script)], capture_output=True, text=True,
                          check=False)
  assert result.returncode == 0, result.stderr


def test_kernels_on_gpu_asks_for_its_round(tmp_path):
  result = subprocess.run(["bash", str(EXPERIMENTS / "kernels_on_gpu.sh"),
                           str(tmp_path)], cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode != 0
  assert "set ROUND=1, 2, 3, 4, 5, 6, 7, 8 or 9" in result.stderr


def test_ablations_gpu_rejects_an_unknown_row_before_it_trains(tmp_path):
  env = {
      **os.environ, "RUNS_ROOT": str(tmp_path / "runs"), "ROWS": "full no_mixer",
      "PYTHON": sys.executable
  }
  result = subprocess.run(
      ["bash", str(EXPERIMENTS / "ablations_gpu.sh"),
       str(tmp_path / "out")], cwd=REPO, env=env, capture_output=True, text=True, check=False)
  assert result.returncode == 2, result.stderr
  assert "unknown row no_mixer; known: full no_ssm conv1d" in result.stdout
  assert not (tmp_path / "runs" / "logs" / "prepare_listops.log").exists()


def test_keep_resume_replaces_runs_from_a_split_archive_and_needs_checkpoints(tmp_path):
  staged = tmp_path / "staged"
  for run in ("run_a", "run_b"):
    (staged / "wd" / run / "checkpoints" / "30").mkdir(parents=True)
    (staged / "wd" / run / "best" / "20").mkdir(parents=True)
  (staged / "logs").mkdir()
  returned = tmp_path / "returned"
  returned.mkdir()
  subprocess.run(f"tar czf - -C {staged} logs wd | split -b 200 - {returned}/runs.tar.gz.part-",
                 shell=True, check=True)
  dest = tmp_path / "resume"
  (dest / "run_a" / "checkpoints" / "10").mkdir(parents=True)  # an older resume point
  keep = lambda: subprocess.run(
      ["bash", str(EXPERIMENTS / "keep_resume.sh"),
       str(returned), str(dest)], capture_output=True, text=True)
  result = keep()
  assert result.returncode == 0, result.stderr
  assert "run_a: checkpoints 30 best 20" in result.stdout
  assert sorted(p.name for p in (dest / "run_a" / "checkpoints").iterdir()) == ["30"]
  assert (dest / "run_b" / "best" / "20").is_dir()
  for part in returned.iterdir():
    part.unlink()
  (staged / "wd" / "run_b" / "checkpoints" / "30").rmdir()
  (staged / "wd" / "run_b" / "checkpoints").rmdir()
  subprocess.run(f"tar czf {returned}/runs.tar.gz -C {staged} logs wd", shell=True, check=True)
  (dest / "run_a" / "checkpoints" / "30").rename(dest / "run_a" / "checkpoints" / "25")
  result = keep()
  assert result.returncode == 1
  assert "run_b: no checkpoints" in result.stdout
  # Nothing replaced: run_a keeps the resume point it had.
  assert sorted(p.name for p in (dest / "run_a" / "checkpoints").iterdir()) == ["25"]
