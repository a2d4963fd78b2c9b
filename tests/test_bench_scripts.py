"""The benchmark scripts run end to end at toy sizes and write what the README reads."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

sys.path.insert(0, str(REPO / "scripts"))
import bench_common  # noqa: E402  (scripts/ is not a package)


def run_bench_script(tmp_path: pathlib.Path, script: str, *args: str,
                     check: bool = True) -> subprocess.CompletedProcess:
  """Runs scripts/`script` with `args` on the CPU, its results under `tmp_path`."""
  return subprocess.run(
      [sys.executable, str(REPO / "scripts" / script), *args], check=check, cwd=REPO,
      capture_output=True, text=True,
      env={**os.environ, "BENCH_RESULTS_DIR": str(tmp_path), "JAX_PLATFORMS": "cpu"})


def read_rows(tmp_path: pathlib.Path, output_name: str) -> list[dict]:
  return json.loads((tmp_path / f"{output_name}.json").read_text())["rows"]


def test_row_log_rewrites_the_results_after_every_row(tmp_path, monkeypatch):
  monkeypatch.setenv("BENCH_RESULTS_DIR", str(tmp_path))
  log = bench_common.RowLog("bench_rows", {"what": "test"})
  log.add({"config": "a", "step_ms": 1.0})
  assert read_rows(tmp_path, "bench_rows") == [{"config": "a", "step_ms": 1.0}]
  log.add({"config": "b", "step_ms": "failed: XlaRuntimeError"})
  assert [row["config"] for row in read_rows(tmp_path, "bench_rows")] == ["a", "b"]
  assert log.path == str(tmp_path / "bench_rows.json")


def test_layers_section_says_when_only_matches_nothing(tmp_path):
  result = run_bench_script(tmp_path, "bench_layers.py", "--section", "layers", "--lengths", "64",
                            "--only", "no_such_layer", check=False)
  assert result.returncode != 0
  assert "'no_such_layer' matched no layers variant" in result.stderr


@pytest.mark.slow
def test_layers_section_counts_the_mixer(tmp_path):
  run_bench_script(tmp_path, "bench_layers.py", "--section", "layers", "--lengths", "64",
                   "--tokens", "128", "--width", "16", "--mimo_state", "24", "--siso_state", "4",
                   "--only", "s5 x3", "--repeats", "1")
  rows = read_rows(tmp_path, "bench_layers")
  by_name = {row["layer"]: row for row in rows}
  assert set(by_name) == {"ms_ssm s5 x3 streams", "ms_ssm s5 x3 streams, static mixer"}
  for row in rows:
    assert row["fwd+bwd_ms"] > 0 and row["fwd+bwd_GFLOP"] > 0 and row["fwd+bwd_traffic_GB"] > 0
  # W_E u_t (H x 3H per step) is the only work the paper's mixer adds over the static one.
  paper = by_name["ms_ssm s5 x3 streams"]["fwd+bwd_GFLOP"]
  static = by_name["ms_ssm s5 x3 streams, static mixer"]["fwd+bwd_GFLOP"]
  assert paper > static


@pytest.mark.slow  # about 17 s on 2 cores
def test_layers_section_times_both_directions(tmp_path):
  run_bench_script(tmp_path, "bench_layers.py", "--section", "layers", "--lengths", "32",
                   "--tokens", "64", "--width", "8", "--siso_state", "6", "--suite_levels", "1",
                   "--only", "=ms_ssm s4d_real x3 streams, conv, static mixer", "--directions",
                   "causal,bidirectional", "--repeats", "1")
  rows = read_rows(tmp_path, "bench_layers")
  assert [row["direction"] for row in rows] == ["causal", "bidirectional"]
  assert all(row["fwd+bwd_ms"] > 0 for row in rows)
  # The reverse direction carries its own states.
  assert rows[1]["floats/step"] == 2 * rows[0]["floats/step"]


def test_layers_section_rejects_unknown_directions(tmp_path):
  result = run_bench_script(tmp_path, "bench_layers.py", "--section", "layers", "--directions",
                            "backward", check=False)
  assert result.returncode != 0 and "--directions takes causal and/or bidirectional" in result.stderr


@pytest.mark.slow  # compiles the layer four times (about 2-4 minutes on 2 cores)
def test_parts_section_replaces_each_part(tmp_path):
  run_bench_script(tmp_path, "bench_layers.py", "--section", "parts", "--lengths", "64", "--tokens",
                   "128", "--width", "16", "--mimo_state", "24", "--siso_state", "4", "--only",
                   "s5 x3 streams, static", "--repeats", "1")
  rows = {row["replaced"]: row for row in read_rows(tmp_path, "bench_parts")}
  assert set(rows) == {"none", "decomposition", "streams", "mixer"}
  # Each stand-in does less arithmetic than the part it replaces, so every replacement shows.
  for part in ("decomposition", "streams", "mixer"):
    assert rows[part]["fwd+bwd_GFLOP"] < rows["none"]["fwd+bwd_GFLOP"], part


@pytest.mark.slow
def test_train_step_bench_writes_a_row_per_config(tmp_path):
  run_bench_script(tmp_path, "bench_train.py", "--steps", "2", "--configs",
                   "configs/default.py:s5,configs/default.py:lru")
  rows = read_rows(tmp_path, "bench_train")
  assert [(row["config"], row["layer"]) for row in rows] == [("configs/default.py:s5", "s5"),
                                                             ("configs/default.py:lru", "lru")]
  for row in rows:
    assert row["step_ms"] > 0 and row["examples/s"] > 0 and row["loss_finite"], row


@pytest.mark.slow
def test_decode_bench_writes_a_row_per_model_and_batch(tmp_path):
  run_bench_script(tmp_path, "bench_decode.py", "--models", "ms_ssm,s5", "--sizes", "default",
                   "--batches", "2", "--steps", "4", "--repeats", "1")
  rows = read_rows(tmp_path, "bench_decode")
  assert [(row["model"], row["batch"]) for row in rows] == [("ms_ssm", 2), ("s5", 2)]
  for row in rows:
    assert row["step_ms"] > 0 and row["prefix_pass_ms"] > 0 and row["prefix_T"] == 4, row


def test_train_step_cost_only_counts_without_running(tmp_path):
  import bench_train  # noqa: E402  (scripts/ is on the path above)
  small, large = (bench_train.load_config("configs/default.py:s5") for _ in range(2))
  large.train.global_batch_size = 4 * small.train.global_batch_size
  rows = [bench_train.cost_config("s5", config) for config in (small, large)]
  assert rows[0]["params"] == rows[1]["params"] > 0
  # The step's work grows with the batch (the optimizer update does not).
  assert 2 * rows[0]["GFLOP"] < rows[1]["GFLOP"] < 4 * rows[0]["GFLOP"] * 1.01
  assert 0 < rows[0]["traffic_GB"] < rows[1]["traffic_GB"]


CUDA_PLUGIN = REPO / ".cuda_plugin"


@pytest.mark.slow
@pytest.mark.skipif(
    not CUDA_PLUGIN.exists(),
    reason="needs the CUDA compiler plugin in .cuda_plugin (scripts/train_compile.py "
    "says how to install it; .ci/run does)")
def test_train_compile_plans_a_gpu_step_on_the_cpu(tmp_path):
  """The ListOps S5 step with the Pallas recurrence compiles for an H100 on this CPU: its
  kernels lower to Triton, and XLA's memory plan and the census come back."""
  env = {**os.environ, "BENCH_RESULTS_DIR": str(tmp_path), "PYTHONPATH": str(CUDA_PLUGIN)}
  done = subprocess.run([
      sys.executable,
      str(REPO / "scripts" / "train_compile.py"), "--configs", "configs/listops.py:s5", "--set",
      "model.layer_config.impl=pallas", "--set", "model.num_layers=2", "--hlo_dir",
      str(tmp_path / "hlo")
  ], cwd=REPO, capture_output=True, text=True, env=env, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  [row] = read_rows(tmp_path, "train_compile")
  assert row["L"] == 2048 and row["batch"] == 50
  assert 0 < row["total_GiB"] < row["card_GiB"] == pytest.approx(79.1, abs=0.1)
  assert row["traffic_GB"] > 0 and row["floor_ms"] > 0
  hlo = next((tmp_path / "hlo").iterdir()).read_text()
  assert "__gpu$xla.gpu.triton" in hlo  # the Pallas recurrence, lowered to a Triton kernel
  assert "| seq_layer fwd |" in done.stdout and "| seq_layer bwd |" in done.stdout


def test_train_compile_names_unknown_targets_and_the_missing_plugin(tmp_path):
  unknown = run_bench_script(tmp_path, "train_compile.py", "--configs", "configs/default.py",
                             "--target", "a100", check=False)
  assert unknown.returncode == 1
  assert "no GPU target 'a100'; known: h100" in unknown.stderr
  if importlib.util.find_spec("jax_plugins") is not None:
    return  # a JAX with an accelerator plugin installed: the compile may start
  # Without .cuda_plugin on the path (the default suite's environment) the compile cannot
  # start, and says what to install.
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  missing = subprocess.run([
      sys.executable,
      str(REPO / "scripts" / "train_compile.py"), "--configs", "configs/default.py"
  ], cwd=REPO, capture_output=True, text=True, env={**env, "BENCH_RESULTS_DIR": str(tmp_path)},
                           check=False)
  assert missing.returncode == 1
  assert "run bash scripts/setup_cuda_plugin.sh" in missing.stderr.splitlines()[-1]
