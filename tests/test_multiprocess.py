"""Two JAX processes on localhost train like one process with all the devices.

The same `train.py` run (a tiny S5 model with BatchNorm on JapaneseVowels, 4 steps,
checkpoints at steps 2 and 4, a final evaluation) is launched three times through
tests/multiprocess_worker.py:
  reference:    1 process with 8 CPU devices;
  multi:        2 processes with 4 CPU devices each, joined by `jax.distributed` over
                127.0.0.1 and gloo CPU collectives, mesh (data=8, model=1) across both;
  interleaved:  the same with the mesh's devices taken round-robin over the processes, so that
                each process holds every other block of rows of a batch (as on TPU v4 pods).
All five processes run at once, in about a minute of the 2 CPU cores. Every subprocess runs
under a deadline, and when one fails the others are killed at once, so a deadlock fails the
test instead of hanging CI.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from ms_ssm_jax import checkpointing

REPO = pathlib.Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "multiprocess_worker.py"
# Per run; generous because CI runs two test workers on two cores. A hang ends here.
DEADLINE_S = 300
NUM_STEPS = 4
GLOBAL_BATCH = 16
EVAL_BATCH = 32
LAYOUTS = ("multi", "interleaved")

# No dropout: its masks are drawn per row of the global batch, and the interleaved layout puts
# the same examples in other rows (the reference and multi layouts agree with dropout too).
# A large Adam eps makes updates proportional to gradients: parameters whose gradient is zero
# up to rounding (the encoder bias, which the BatchNorms cancel) would otherwise move by +-lr
# depending on the summation order.
CONFIG = f"""\
from configs import common


def get_config():
  config = common.base_config("japanese_vowels", "s5")
  common.override(config, {{
      "model.d_model": 8, "model.num_layers": 1, "model.dropout": 0.0,
      "model.layer_config.state_size": 4, "model.layer_config.blocks": 1, "optimizer.lr": 1e-2,
      "optimizer.eps": 1.0, "optimizer.warmup_steps": 2,
      "train.global_batch_size": {GLOBAL_BATCH},
      "train.eval_batch_size": {EVAL_BATCH}, "train.num_steps": {NUM_STEPS},
      "train.log_every": 1, "train.eval_every": 0, "train.checkpoint_every": 2,
      "train.eval_splits": ("validation",), "mesh.data": -1, "mesh.model": 1}})
  return common.lock(config)
"""

# Variables from which `jax.distributed` or train.py would detect a cluster job (CI may run
# inside one); the test's processes must see only the flags it gives them.
_CLUSTER_PREFIXES = ("SLURM_", "OMPI_", "PMI_", "PMIX_", "TPU_", "MEGASCALE_")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(num_devices: int) -> dict[str, str]:
  """The parent's environment for a CPU subprocess with `num_devices` fake devices."""
  env = {k: v for k, v in os.environ.items() if not k.startswith(_CLUSTER_PREFIXES)}
  # Replace (not inherit) the test session's device count.
  xla_flags = [
      flag for flag in env.get("XLA_FLAGS", "").split()
      if not flag.startswith("--xla_force_host_platform_device_count")
  ]
  env.update({
      "XLA_FLAGS": " ".join(xla_flags + [f"--xla_force_host_platform_device_count={num_devices}"]),
      "JAX_PLATFORMS": "cpu",
      "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
      "PYTHONPATH": str(REPO),
  })
  return env


def _run_all(commands: dict[str, tuple[list[str], dict[str, str]]], log_dir: pathlib.Path,
             deadline_s: float = DEADLINE_S) -> None:
  """Runs the commands concurrently; fails (killing the rest) on any error or the deadline.

  Killing means SIGKILL: JAX's preemption notifier catches SIGTERM in distributed processes.
  """
  log_dir.mkdir(parents=True, exist_ok=True)
  procs, logs = {}, {}
  for name, (argv, env) in commands.items():
    logs[name] = open(log_dir / f"{name}.log", "w")
    procs[name] = subprocess.Popen(argv, cwd=REPO, env=env, stdout=logs[name],
                                   stderr=subprocess.STDOUT)
  deadline = time.monotonic() + deadline_s
  failure = None
  try:
    while True:
      codes = {name: proc.poll() for name, proc in procs.items()}
      failed = [name for name, code in codes.items() if code not in (None, 0)]
      if failed:
        failure = f"{failed[0]} exited with status {codes[failed[0]]}"
        break
      if all(code == 0 for code in codes.values()):
        break
      if time.monotonic() > deadline:
        failure = f"still running after {deadline_s} s (deadlock?)"
        break
      time.sleep(0.5)
  finally:
    for proc in procs.values():
      if proc.poll() is None:
        proc.kill()
        proc.wait()
    for log in logs.values():
      log.close()
  if failure:
    tails = "\n".join(
        f"--- {name} ---\n{(log_dir / f'{name}.log').read_text()[-3000:]}" for name in commands)
    pytest.fail(f"{failure}\n{tails}")


def _worker(workdir: pathlib.Path, config: pathlib.Path, *flags: str) -> list[str]:
  return [
      sys.executable,
      str(WORKER), f"--record={workdir / 'record'}", f"--workdir={workdir}", f"--config={config}",
      *flags
  ]


def _launch(root: pathlib.Path) -> dict[str, pathlib.Path]:
  """Runs the reference and the two 2-process runs of the same config; their workdirs."""
  config = root / "config.py"
  config.write_text(CONFIG)
  workdirs = {name: root / name for name in ("reference",) + LAYOUTS}
  commands = {"reference": (_worker(workdirs["reference"], config), _env(8))}
  for layout in LAYOUTS:
    address = f"127.0.0.1:{_free_port()}"
    extra = ["--interleave_devices"] if layout == "interleaved" else []
    for i in range(2):
      commands[f"{layout}_{i}"] = (_worker(workdirs[layout], config,
                                           f"--coordinator_address={address}", "--num_processes=2",
                                           f"--process_id={i}", *extra), _env(4))
  _run_all(commands, root / "logs")
  return workdirs


def _metrics(workdir: pathlib.Path, stream: str) -> list[dict[str, float]]:
  lines = (workdir / "metrics" / "metrics.jsonl").read_text().splitlines()
  return [row for row in map(json.loads, lines) if row["stream"] == stream]


def _records(path: pathlib.Path) -> list[dict[str, np.ndarray]]:
  with np.load(path) as npz:
    count = len({key.split("/")[0] for key in npz.files})
    return [{key: npz[f"{i}/{key}"]
             for key in ("split", "shard", "inputs", "labels", "weights")}
            for i in range(count)]


def _check_losses(runs: dict[str, pathlib.Path], layout: str) -> None:
  """Per-step train losses and the final evaluation equal the reference run's."""
  # Not bit-exact: the cross-device sums (loss, gradients, BatchNorm statistics) are added in
  # another order by gloo's cross-process all-reduce than by the in-process one (and over
  # permuted rows in the interleaved layout), which moves float32 results by an ulp or so.
  reference, multi = (_metrics(runs[k], "train") for k in ("reference", layout))
  assert [r["step"] for r in multi] == list(range(1, NUM_STEPS + 1))
  np.testing.assert_allclose([r["loss"] for r in multi], [r["loss"] for r in reference], rtol=1e-5)
  np.testing.assert_allclose([r["grad_norm"] for r in multi], [r["grad_norm"] for r in reference],
                             rtol=1e-4)
  (ref_eval,), (multi_eval,) = (_metrics(runs[k], "eval") for k in ("reference", layout))
  assert multi_eval["num_examples"] == ref_eval["num_examples"]
  assert multi_eval["accuracy"] == ref_eval["accuracy"]
  assert multi_eval["loss"] == pytest.approx(ref_eval["loss"], rel=1e-5)


def _check_data_shards(runs: dict[str, pathlib.Path], layout: str) -> None:
  """Each process read only its half of every batch; the halves make the reference batches."""
  reference = _records(runs["reference"] / "record" / "process_0.npz")
  shards = [_records(runs[layout] / "record" / f"process_{i}.npz") for i in range(2)]
  assert [str(r["split"]) for r in reference] == ["train", "validation"]
  for i, records in enumerate(shards):
    assert [str(r["split"]) for r in records] == ["train", "validation"]
    for record in records:
      assert record["shard"].tolist() == [i, 2]
  # 4 train batches and 2 padded eval batches of 8 rows per process: process 0 read examples
  # 0-7 of each global batch and process 1 examples 8-15 (in any layout), together exactly
  # the 1-process batches; both ran the same number of eval batches.
  for key in ("inputs", "labels", "weights"):
    for index in range(2):
      halves = [records[index][key] for records in shards]
      whole = reference[index][key]
      assert halves[0].shape == halves[1].shape
      assert halves[0].shape[:2] == (whole.shape[0], whole.shape[1] // 2)
      np.testing.assert_array_equal(np.concatenate(halves, axis=1), whole)
  assert not np.array_equal(shards[0][0]["inputs"], shards[1][0]["inputs"])


def _check_checkpoints(runs: dict[str, pathlib.Path], layout: str) -> None:
  """The run's orbax checkpoints exist and load here with the reference parameters."""
  assert sorted(
      int(p.name) for p in (runs[layout] / "checkpoints").iterdir() if p.name.isdigit()) == [
          2, NUM_STEPS
      ]
  assert checkpointing.find_checkpoint(runs[layout], prefer="best").step == NUM_STEPS
  # The 2-process checkpoint (each process wrote its part) loads in this single process and
  # holds the reference run's parameters.
  multi, reference = (checkpointing.tree_paths(
      checkpointing.load_variables(checkpointing.find_checkpoint(runs[k], prefer="latest")))
                      for k in (layout, "reference"))
  assert multi.keys() == reference.keys()
  for path, value in reference.items():
    np.testing.assert_allclose(multi[path], value, rtol=1e-5, atol=1e-6, err_msg=path)
  results = json.loads((runs[layout] / "results.json").read_text())
  assert results["num_steps"] == NUM_STEPS


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
  # One test for all checks: pytest-xdist could otherwise split them over its workers, each
  # launching the five processes.
  runs = _launch(tmp_path)
  for layout in LAYOUTS:
    for check in (_check_losses, _check_data_shards, _check_checkpoints):
      try:
        check(runs, layout)
      except AssertionError as e:
        raise AssertionError(f"{layout} layout, {check.__name__}: {e}") from e


# Both checkpoint managers of a run save the same step back to back, as the train loop does
# when it evaluates and checkpoints at the same step.
_CONCURRENT_SAVES = """\
import pathlib, sys
import jax
import numpy as np
from ms_ssm_jax import checkpointing

address, process_id, root = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3])
jax.distributed.initialize(address, 2, process_id)
mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
x = jax.device_put(np.arange(64, dtype=np.float32),
                   jax.sharding.NamedSharding(mesh, jax.P("data")))
variables = {"params": {"w": x}, "batch_stats": {}}
with checkpointing.RunCheckpoints(root, keep=2) as ckpt:
  for step in range(1, 5):
    ckpt.save_best(step, variables, {}, float(step), {})
    ckpt.save(step, {"variables": variables, "train": {"step": x[:1]}}, {})
"""


def test_concurrent_multi_process_saves(tmp_path):
  # Without a barrier prefix per checkpoint directory, both managers' async saves of a step
  # wait at barriers of the same name: one process fails and both hang.
  address = f"127.0.0.1:{_free_port()}"
  _run_all(
      {
          f"process_{i}": (
              [sys.executable, "-c", _CONCURRENT_SAVES, address,
               str(i),
               str(tmp_path / "run")], _env(4)) for i in range(2)
      }, tmp_path / "logs", deadline_s=120)
  for prefer, step in (("best", 4), ("latest", 4)):
    ref = checkpointing.find_checkpoint(tmp_path / "run", prefer=prefer)
    assert ref.step == step
    np.testing.assert_array_equal(
        checkpointing.load_variables(ref)["params"]["w"], np.arange(64, dtype=np.float32))


def test_train_py_rejects_url_workdirs(tmp_path):
  # A gs:// workdir would become the local directory "gs:/..." on every host.
  result = subprocess.run(
      [sys.executable, str(REPO / "train.py"), "--workdir=gs://b/run"], cwd=tmp_path, env=_env(1),
      capture_output=True, text=True, timeout=DEADLINE_S)
  assert result.returncode != 0
  assert "--workdir=gs://b/run: URLs are not supported yet" in result.stderr
  assert not (tmp_path / "gs:").exists()
