"""Trust under faults: damaged checkpoints, NaN states, changed configs, two trainers, torn
logs. Each test injects the fault (flips bytes, poisons the state, starts a second holder)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ms_ssm_jax import checkpoint_integrity
from ms_ssm_jax import checkpointing
from ms_ssm_jax import checksums
from ms_ssm_jax import run_config
from ms_ssm_jax import train_lib
from ms_ssm_jax import workdir_lock
from tests.test_checkpointing import assert_trees_close
from tests.test_train import persistent_compilation_cache  # noqa: F401  (autouse)
from tests.test_train import tiny_config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A finished 8-step run (checkpoints at 4 and 8) and its final state, on the host."""
  workdir = tmp_path_factory.mktemp("finished")
  state = train_lib.train_and_evaluate(tiny_config(), workdir)
  return workdir, jax.device_get(state)


def _copy(workdir: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
  subprocess.run(["cp", "-r", str(workdir), str(tmp_path / "run")], check=True)
  (tmp_path / "run" / workdir_lock.LOCK_FILE).unlink(missing_ok=True)
  return tmp_path / "run"


def _largest_file(directory: pathlib.Path) -> pathlib.Path:
  return max((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def test_checksum_sees_every_single_bit_flip_and_every_dtype():
  x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
  _, _, (reference,) = checksums.summarize([x])
  words = x.view(np.uint32).copy()
  for i in range(words.size):
    for bit in (0, 13, 31):
      flipped = words.copy().reshape(-1)
      flipped[i] ^= np.uint32(1 << bit)
      assert checksums.summarize([flipped.view(np.float32).reshape(3, 5)])[2][0] != reference
  leaves = [
      np.arange(4, dtype=np.int32),
      np.ones(3, jnp.bfloat16),
      np.array([True, False]),
      np.zeros((), np.uint8)
  ]
  all_finite, finite, sums = checksums.summarize(leaves)
  assert all_finite and all(finite) and len(set(sums)) == len(sums)


def test_checkpointing_refuses_a_nonfinite_state(tmp_path):
  ckpt = checkpointing.RunCheckpoints(tmp_path, keep=1)
  items = {
      "variables": {
          "params": {"w": np.ones(3, np.float32)},
          "batch_stats": {"var": np.array([1.0, np.inf], np.float32)}
      }, "train": {"step": np.int32(1)}
  }
  with pytest.raises(checkpointing.NonFiniteStateError, match="variables/batch_stats/var"):
    ckpt.save(1, items, {})
  ckpt.close()
  assert ckpt.latest_step() is None


def test_a_nan_after_a_checkpoint_keeps_the_last_good_one_finite(tmp_path, monkeypatch):
  # The loss and the gradients stay finite (training uses batch statistics); only the saved
  # running variance becomes infinite, as with --config.optimizer.lr=1 in issue 23.
  train_step = train_lib.train_step

  def poisoned(state, batch, **kwargs):
    state, step_metrics = train_step(state, batch, **kwargs)
    stats = jax.tree.map(lambda v: jnp.where(state.step >= 6, jnp.inf, v), state.batch_stats)
    return state.replace(batch_stats=stats), step_metrics

  monkeypatch.setattr(train_lib, "train_step", poisoned)
  with pytest.raises(train_lib.NonFiniteError, match=r"batch_stats/.*last good checkpoint: "
                     r"step 4"):
    train_lib.train_and_evaluate(tiny_config(), tmp_path)
  assert checkpointing.find_checkpoint(tmp_path, prefer="latest").step == 4
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["4"]


@pytest.mark.parametrize("damage", ["flip", "checksum", "truncate", "garbage_metadata"])
def test_a_damaged_checkpoint_falls_back_to_the_previous_one(finished, tmp_path, damage, caplog):
  reference_dir, reference = finished
  workdir = _copy(reference_dir, tmp_path)
  step_dir = workdir / "checkpoints" / "8"
  if damage == "flip":
    target = _largest_file(step_dir / "variables" / "d")  # the arrays' bytes
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    target.write_bytes(bytes(raw))
  elif damage == "checksum":  # damage that the storage layer cannot see
    target = step_dir / checkpointing.CHECKSUMS / "metadata"
    sums = json.loads(target.read_text())
    sums["variables"]["params/head/bias"] = "0" * 16
    target.write_text(json.dumps(sums))
  elif damage == "truncate":
    target = _largest_file(step_dir / "train")
    target.write_bytes(target.read_bytes()[:target.stat().st_size // 2])
  else:
    (step_dir / "variables" / "_METADATA").write_text("garbage{")
  (workdir / "results.json").unlink()
  resumed = train_lib.train_and_evaluate(tiny_config(), workdir)
  # Step 8 is set aside, and steps 5..8 are trained again from step 4, bitwise as before.
  assert "checkpoints/8 is corrupt or unreadable" in caplog.text
  if damage == "checksum":
    assert "checksum mismatch in variables/params/head/bias" in caplog.text
  assert (workdir / checkpointing.CORRUPT_DIR / "8").is_dir()
  assert checkpointing.find_checkpoint(workdir, prefer="latest").step == 8
  assert_trees_close(resumed.params, reference.params, atol=0)
  assert_trees_close(resumed.batch_stats, reference.batch_stats, atol=0)


def test_a_changed_checksum_is_a_mismatch(finished, tmp_path):
  workdir = _copy(finished[0], tmp_path)
  ckpt = checkpointing.RunCheckpoints(workdir, keep=3)
  saved = jax.device_get(ckpt.restore(8, _abstract(finished[1])))
  ckpt.close()
  sums = checkpoint_integrity.array_checksums(saved, "test")
  sums["variables"]["params/head/bias"] = "0" * 16
  with pytest.raises(checkpoint_integrity.CorruptCheckpointError,
                     match="checksum mismatch in variables/params/head/bias"):
    checkpoint_integrity.verify(saved, sums, "test")


def _abstract(state):
  mesh_device = jax.devices()[0]
  single = jax.sharding.SingleDeviceSharding(mesh_device)
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(np.shape(x),
                                     np.asarray(x).dtype, sharding=single),
      train_lib.state_items(state))


def test_resume_checks_the_config_and_keeps_its_history(finished, tmp_path, capsys):
  workdir = _copy(finished[0], tmp_path)
  with pytest.raises(run_config.ConfigChangedError, match=r"train.seed: 0 -> 1"):
    train_lib.train_and_evaluate(tiny_config(**{"train.seed": 1}), workdir)
  longer = tiny_config(**{"train.num_steps": 10, "optimizer.lr": 5e-3})
  state = train_lib.train_and_evaluate(longer, workdir)
  assert int(state.step) == 10
  assert "changed run settings: optimizer.lr 0.01 -> 0.005" in capsys.readouterr().out
  history = workdir / run_config.HISTORY_DIR
  assert sorted(p.name for p in history.iterdir()) == ["0.json", "8.json"]
  assert json.loads((history / "0.json").read_text())["optimizer"]["lr"] == 0.01
  assert json.loads((workdir / "config.json").read_text())["optimizer"]["lr"] == 0.005


def test_machine_paths_may_change_but_data_may_not():
  saved = {"data": {"name": "x", "data_dir": "/a"}, "train": {"seed": 0, "num_steps": 5}}
  moved = {"data": {"name": "x", "data_dir": "/b"}, "train": {"seed": 0, "num_steps": 9}}
  assert run_config.check_resume(
      saved, moved, "here") == {"data.data_dir": ("/a", "/b"), "train.num_steps": (5, 9)}
  with pytest.raises(run_config.ConfigChangedError, match="data.name"):
    run_config.check_resume(saved, {**moved, "data": {"name": "y"}}, "here")


def test_the_evaluation_path_may_change_but_the_layer_may_not():
  saved = {"model": {"layer_config": {"impl": "scan", "chunk_size": 128, "state_size": 16}}}
  faster = {"model": {"layer_config": {"impl": "pallas", "chunk_size": 64, "state_size": 16}}}
  assert run_config.check_resume(saved, faster, "here") == {
      "model.layer_config.chunk_size": (128, 64), "model.layer_config.impl": ("scan", "pallas")
  }
  bigger = {"model": {"layer_config": {"impl": "scan", "chunk_size": 128, "state_size": 32}}}
  with pytest.raises(run_config.ConfigChangedError, match="model.layer_config.state_size"):
    run_config.check_resume(saved, bigger, "here")


def test_a_second_trainer_is_refused_and_a_stale_lock_taken_over(tmp_path):
  holder = subprocess.Popen([
      sys.executable, "-c", "import sys, time\nfrom ms_ssm_jax import workdir_lock\n"
      "with workdir_lock.WorkdirLock(sys.argv[1]):\n  print('held', flush=True)\n"
      "  time.sleep(60)\n",
      str(tmp_path)
  ], cwd=pathlib.Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(workdir_lock.WorkdirLockedError, match=rf"pid {holder.pid} on host"):
      train_lib.train_and_evaluate(tiny_config(), tmp_path)
    assert not (tmp_path / "checkpoints").exists()  # refused before touching the workdir
  finally:
    holder.kill()
    holder.wait()
  # Killed with SIGKILL, the holder left its lock behind: stale (dead pid, same host).
  assert (tmp_path / workdir_lock.LOCK_FILE).exists()
  with workdir_lock.WorkdirLock(tmp_path) as lock:
    assert json.loads(lock.path.read_text())["pid"] == os.getpid()
  assert not (tmp_path / workdir_lock.LOCK_FILE).exists()


def test_a_workdir_that_is_a_file_or_not_writable_is_named(tmp_path, monkeypatch):
  (tmp_path / "file").write_text("")
  with pytest.raises(workdir_lock.WorkdirError, match="is a file"):
    workdir_lock.WorkdirLock(tmp_path / "file").acquire()

  def read_only(*args, **kwargs):
    raise PermissionError(13, "Permission denied")

  monkeypatch.setattr(os, "open", read_only)  # tests may run as root, who may write anyway
  with pytest.raises(workdir_lock.WorkdirError, match="not writable"):
    workdir_lock.WorkdirLock(tmp_path).acquire()


def test_a_finished_run_rewrites_its_missing_results(finished, tmp_path):
  reference_dir, _ = finished
  workdir = _copy(reference_dir, tmp_path)
  (workdir / "results.json").unlink()
  train_lib.train_and_evaluate(tiny_config(), workdir)
  assert (json.loads((workdir / "results.json").read_text()) == json.loads(
      (reference_dir / "results.json").read_text()))


def test_a_torn_metrics_line_is_dropped_on_resume(tmp_path):
  train_lib.train_and_evaluate(tiny_config(**{"train.num_steps": 4}), tmp_path)
  metrics = tmp_path / "metrics" / "metrics.jsonl"
  lines = metrics.read_text().splitlines(keepends=True)
  metrics.write_text("".join(lines) + '{"stream": "train", "st')
  train_lib.train_and_evaluate(tiny_config(**{"train.num_steps": 6}), tmp_path)
  rows = [json.loads(line) for line in metrics.read_text().splitlines()]
  assert [r["step"] for r in rows if r["stream"] == "train"] == [4, 6]
