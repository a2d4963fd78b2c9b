"""scripts/seed_table.py: mean +- std over seeds of summarize_runs.py's rows."""

import json
import pathlib
import statistics
import subprocess
import sys

import pytest

SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import seed_table  # noqa: E402


def run(name: str, final: float | None, at_best: float | None, parameters: int = 51_396,
        steps: int = 1000) -> dict:
  return {
      "run": name, "task": "uea:GunPoint", "model": "s5", "parameters": parameters, "steps": steps,
      "seconds_per_step": 0.1, "final_test": final, "best_validation": 1.0,
      "test_at_best_validation": at_best, "best_step": 250
  }


def test_groups_seeds_with_mean_and_sample_std():
  rows = seed_table.group_by_seed([
      run("GunPoint_s5_seed0", 0.90, 0.80),
      run("GunPoint_lru_seed0", 0.5, 0.5, parameters=7),
      run("GunPoint_s5_seed1", 0.96, 0.86),
      run("GunPoint_s5_seed2", 0.93, 0.98),
  ])
  assert [r["group"] for r in rows] == ["GunPoint_s5", "GunPoint_lru"]
  s5, lru = rows
  assert s5["seeds"] == 3 and s5["parameters"] == 51_396 and s5["steps"] == 1000
  assert s5["final_test"]["mean"] == pytest.approx(93.0)
  assert s5["final_test"]["std"] == pytest.approx(3.0)  # n - 1: (-3, 3, 0) -> sqrt(18 / 2)
  assert s5["test_at_best_validation"]["std"] == pytest.approx(statistics.stdev([80.0, 86.0, 98.0]))
  assert lru["seeds"] == 1 and lru["final_test"]["std"] is None
  table = seed_table.markdown(rows)
  assert "| GunPoint_s5 | uea:GunPoint | 3 | 51,396 | 1000 | 93.00 ± 3.00 |" in table
  assert "| GunPoint_lru | uea:GunPoint | 1 | 7 | 1000 | 50.00 ± - | 50.00 ± - |" in table


@pytest.mark.parametrize("runs, message", [
    ([run("GunPoint_s5", 0.9, 0.9)], "not named <group>_seed<N>"),
    ([run("GunPoint_s5_seed0", 0.9, 0.9),
      run("GunPoint_s5_seed1", 0.9, 0.9, steps=500)], "differ in steps"),
    ([run("GunPoint_s5_seed0", 0.9, 0.9),
      run("GunPoint_s5_seed1", None, None)], "no test evaluation yet"),
])
def test_rejects_runs_that_do_not_form_a_seed_group(runs, message):
  with pytest.raises(ValueError, match=message):
    seed_table.group_by_seed(runs)


def test_command_line_writes_the_table_and_json(tmp_path):
  summary = tmp_path / "summary.json"
  summary.write_text(
      json.dumps([run("GunPoint_s5_seed0", 0.9, 0.8),
                  run("GunPoint_s5_seed1", 1.0, 0.8)]))
  out = subprocess.run([
      sys.executable,
      str(SCRIPTS / "seed_table.py"),
      str(summary), "--json",
      str(tmp_path / "table.json")
  ], capture_output=True, text=True, check=True)
  assert "| GunPoint_s5 | uea:GunPoint | 2 | 51,396 | 1000 | 95.00 ± 7.07 | 80.00 ± 0.00 |" in (
      out.stdout)
  assert json.loads((tmp_path / "table.json").read_text())[0]["seeds"] == 2
