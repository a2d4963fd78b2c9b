"""The benchmark scripts run end to end at toy sizes and write what the README reads."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_bench_script(tmp_path: pathlib.Path, script: str, output_name: str,
                     *args: str) -> list[dict]:
  """Runs scripts/`script` with `args` on the CPU; returns the rows of `output_name`.json."""
  subprocess.run(
      [sys.executable, str(REPO / "scripts" / script), *args],
      check=True, cwd=REPO, capture_output=True, text=True,
      env={**os.environ, "BENCH_RESULTS_DIR": str(tmp_path), "JAX_PLATFORMS": "cpu"})
  return json.loads((tmp_path / f"{output_name}.json").read_text())["rows"]


def test_layers_section_counts_the_mixer(tmp_path):
  rows = run_bench_script(tmp_path, "bench_layers.py", "bench_layers",
                          "--section", "layers", "--lengths", "64", "--tokens", "128",
                          "--width", "16", "--mimo_state", "24", "--siso_state", "4",
                          "--only", "s5 x3", "--repeats", "1")
  by_name = {row["layer"]: row for row in rows}
  assert set(by_name) == {"ms_ssm s5 x3 streams", "ms_ssm s5 x3 streams, static mixer"}
  for row in rows:
    assert row["fwd+bwd_ms"] > 0 and row["fwd+bwd_GFLOP"] > 0 and row["fwd+bwd_traffic_GB"] > 0
  # W_E u_t (H x 3H per step) is the only work the paper's mixer adds over the static one.
  paper = by_name["ms_ssm s5 x3 streams"]["fwd+bwd_GFLOP"]
  static = by_name["ms_ssm s5 x3 streams, static mixer"]["fwd+bwd_GFLOP"]
  assert paper > static


def test_train_step_bench_writes_a_row_per_config(tmp_path):
  rows = run_bench_script(tmp_path, "bench_train.py", "bench_train", "--steps", "2",
                          "--configs", "configs/default.py:s5,configs/default.py:lru")
  assert [(row["config"], row["layer"]) for row in rows] == [
      ("configs/default.py:s5", "s5"), ("configs/default.py:lru", "lru")]
  for row in rows:
    assert row["step_ms"] > 0 and row["examples/s"] > 0 and row["loss_finite"], row
