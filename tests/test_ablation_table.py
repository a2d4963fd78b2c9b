"""scripts/ablation_table.py: our ablation runs beside the paper's Table 5."""

import json
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import ablation_table  # noqa: E402
from configs import ablations  # noqa: E402


def run(name: str, final: float | None, steps: int = 960, task: str = "listops") -> dict:
  return {
      "run": name, "task": task, "model": "ms_ssm", "parameters": 1_693_194, "steps": steps,
      "seconds_per_step": 0.3, "final_test": final, "best_validation": final,
      "test_at_best_validation": final, "best_step": None if final is None else steps
  }


def test_rows_in_config_order_with_the_papers_numbers():
  table = ablation_table.ablation_rows([
      run("ablation_conv1d", 0.30),
      run("ablation_full", 0.4125),
      run("ablation_levels_1", None, steps=480),
  ])
  assert [row["row"] for row in table] == list(ablations.ROWS)
  rows = {row["row"]: row for row in table}
  assert rows["full"]["test_accuracy"] == pytest.approx(41.25)
  assert rows["conv1d"]["paper_listops_accuracy"] == 37.98
  assert rows["conv1d"]["paper_ptbxl_auroc"] == 0.916
  assert rows["levels_1"]["steps"] == 480 and rows["levels_1"]["test_accuracy"] is None
  assert rows["levels_1"]["paper_listops_accuracy"] is None  # our sweep: not in the paper
  assert rows["no_ssm"]["steps"] is None  # not run
  text = ablation_table.markdown(table)
  assert "| full | 960 | 41.25 | 63.04 | 0.939 |" in text
  assert "| conv1d | 960 | 30.00 (-11.25) | 37.98 (-25.06) | 0.916 |" in text
  assert "| no_ssm | - | - | 62.59 (-0.45) | 0.936 |" in text
  assert "| levels_1 | 480 | - | - | - |" in text
  assert "| condition_on_band | - | S6 only | 62.91 (-0.13) | 0.938 |" in text


def test_every_paper_number_belongs_to_a_row():
  assert set(ablations.PAPER) <= set(ablations.ROWS)
  assert "full" in ablations.PAPER


@pytest.mark.parametrize("runs, message", [
    ([run("ablation_no_mixer", 0.4)], "names no row of configs/ablations.py"),
    ([run("ablation_full", 0.4, task="ptbxl")], "trained on 'ptbxl'"),
])
def test_rejects_runs_it_cannot_place(runs, message):
  with pytest.raises(ValueError, match=message):
    ablation_table.ablation_rows(runs)


def test_command_line_skips_other_runs_and_writes_json(tmp_path):
  summary = tmp_path / "summary.json"
  summary.write_text(json.dumps([run("listops_s5", 0.5), run("ablation_full", 0.4)]))
  out = subprocess.run([
      sys.executable,
      str(REPO / "scripts" / "ablation_table.py"),
      str(summary), "--json",
      str(tmp_path / "table.json")
  ], capture_output=True, text=True, check=True)
  assert "| full | 960 | 40.00 | 63.04 | 0.939 |" in out.stdout
  assert "skipping run 'listops_s5'" in out.stderr
  assert json.loads((tmp_path / "table.json").read_text())[0]["test_accuracy"] == 40.0
