"""The default run's output has none of tfds's and orbax's noise; warnings of others still show."""

from __future__ import annotations

import logging
import os
import pathlib
import subprocess
import sys

import pytest
from absl import logging as absl_logging

from ms_ssm_jax import quiet_logs

REPO = pathlib.Path(__file__).resolve().parents[1]
NOISE = ("Downloading and preparing", "Unknown size", "downloaded and prepared",
         "Given directory is read only", "save_interval_steps", "has no dataset_info.json", "\r",
         "\x1b[")


def run_main(script: str, *args: str) -> str:
  """stdout and stderr (redirected: not a terminal) of `script` on the CPU."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "PYTHONPATH": str(REPO)}
  result = subprocess.run([sys.executable, str(REPO / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True)
  return result.stdout + result.stderr


@pytest.mark.slow
def test_default_run_and_its_evaluation_print_no_dependency_noise(tmp_path):
  # A fresh data directory, so that tfds prepares the dataset in this run.
  workdir = tmp_path / "run"
  output = run_main("train.py", "--config", "configs/default.py", "--workdir", str(workdir),
                    "--config.train.num_steps=30", "--config.train.eval_every=10",
                    f"--config.data.data_dir={tmp_path / 'tfds'}")
  assert "preparing uea_archive/JapaneseVowels" in output
  output += run_main("eval.py", "--workdir", str(workdir))
  assert "accuracy" in output
  found = [noise for noise in NOISE if noise in output]
  assert not found, f"{found} in:\n{output}"


def test_only_the_expected_warnings_are_dropped():
  quiet_logs.quiet_dependency_logs()
  absl_logger = logging.getLogger("absl")
  kept = []

  class Collect(logging.Handler):

    def emit(self, record):
      kept.append(record.getMessage())

  handler = Collect()
  absl_logger.addHandler(handler)
  try:
    # The filter matches the record's module and format string, as orbax and tfds log them.
    expected = absl_logger.makeRecord("absl", logging.WARNING, "checkpoint_manager.py", 1,
                                      "Given directory is read only=%s", ("/tmp/x",), None)
    expected.module = "checkpoint_manager"
    absl_logger.handle(expected)
    absl_logging.warning("Given directory is read only=%s (from another module)", "/tmp/x")
    absl_logging.error("checkpoint %s is corrupt", "/tmp/x")
  finally:
    absl_logger.removeHandler(handler)
  assert kept == [
      "Given directory is read only=/tmp/x (from another module)", "checkpoint /tmp/x is corrupt"
  ]
