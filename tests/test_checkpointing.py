"""Checkpoints: roundtrip, exact resume after a crash or SIGTERM, mismatches, fine-tuning."""

from __future__ import annotations

import os
import signal

import jax
import numpy as np
import pytest

from ms_ssm_jax import checkpointing
from ms_ssm_jax import data
from ms_ssm_jax import finetune
from ms_ssm_jax import provenance
from ms_ssm_jax import run_config
from ms_ssm_jax import sharding
from ms_ssm_jax import train_lib
from tests.test_train import persistent_compilation_cache  # noqa: F401  (autouse)
from tests.test_train import read_csv, tiny_config


def assert_trees_close(a, b, atol):
  a_paths, b_paths = checkpointing.tree_paths(a), checkpointing.tree_paths(b)
  assert a_paths.keys() == b_paths.keys()
  for path in a_paths:
    np.testing.assert_allclose(np.asarray(a_paths[path]), np.asarray(b_paths[path]), atol=atol,
                               rtol=0, err_msg=path)


def test_save_restore_roundtrip(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # a relative workdir, as users pass it (orbax needs absolute)
  mesh = sharding.make_mesh(tiny_config().mesh)
  tree = {
      "params": {"w": np.arange(12, dtype=np.float32).reshape(4, 3)},
      "batch_stats": {"mean": np.ones(3, np.float32)}
  }
  train = {
      "step": np.int32(7), "opt_state": (np.zeros(2, np.float32), None, {}),
      "rng": np.array([1, 2], np.uint32)
  }
  items = {"variables": tree, "train": train}
  shardings = sharding.state_shardings(mesh, items)
  items = jax.tree.map(jax.device_put, items, shardings)
  ckpt = checkpointing.RunCheckpoints("run", keep=2)
  for step in (1, 2, 3):
    ckpt.save(step, items, {"note": step})
  ckpt.wait_until_finished()
  assert ckpt.latest_step() == 3
  assert sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir()) == [2, 3]
  abstract = sharding.with_shardings(items, shardings)
  restored = ckpt.restore(3, abstract)
  ckpt.close()
  assert_trees_close(restored, items, atol=0)
  assert restored["variables"]["params"]["w"].sharding == shardings["variables"]["params"]["w"]
  ref = checkpointing.find_checkpoint("run/checkpoints/2")
  assert (ref.step, checkpointing.load_config_json(ref)) == (2, {"note": 2})


def test_restore_into_a_different_model_names_the_parameter(tmp_path):
  mesh = sharding.make_mesh(tiny_config().mesh)
  ckpt = checkpointing.RunCheckpoints(tmp_path, keep=1)
  saved = {
      "variables": {"params": {"head": {"kernel": np.zeros((8, 9), np.float32)}}},
      "train": {"step": np.int32(1)}
  }
  ckpt.save(1, saved, {})
  ckpt.wait_until_finished()
  wanted = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding.replicated(mesh)),
      {**saved, "variables": {"params": {"head": {"kernel": np.zeros((8, 5), np.float32)}}}})
  with pytest.raises(checkpointing.CheckpointMismatchError,
                     match=r"params/head/kernel: checkpoint \(8, 9\) vs model \(8, 5\)"):
    ckpt.restore(1, wanted)
  ckpt.close()


def _interrupting(fail_at: int, how: str):
  """A data.make_iterator whose train stream crashes or sends SIGTERM at batch `fail_at`."""
  make_iterator = data.make_iterator

  def iterator(data_config, split, **kwargs):
    for step, batch in enumerate(make_iterator(data_config, split, **kwargs),
                                 start=kwargs["start_step"] + 1):
      if split == "train" and step == fail_at:
        if how == "crash":
          raise RuntimeError("simulated crash")
        os.kill(os.getpid(), signal.SIGTERM)
      yield batch

  return iterator


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  return workdir, train_lib.train_and_evaluate(tiny_config(), workdir)


def test_resume_after_crash_equals_uninterrupted(uninterrupted, tmp_path, monkeypatch):
  reference_dir, reference = uninterrupted
  with monkeypatch.context() as patch:
    patch.setattr(data, "make_iterator", _interrupting(6, "crash"))
    with pytest.raises(RuntimeError, match="simulated crash"):
      train_lib.train_and_evaluate(tiny_config(), tmp_path)
  # The crash lost step 5; the checkpoint at step 4 survives.
  assert checkpointing.find_checkpoint(tmp_path, prefer="latest").step == 4
  resumed = train_lib.train_and_evaluate(tiny_config(), tmp_path)
  assert int(resumed.step) == 8
  assert_trees_close(resumed.params, reference.params, atol=1e-6)
  assert_trees_close(resumed.opt_state, reference.opt_state, atol=1e-6)
  # The logs describe one run: the rows of the lost steps are not duplicated.
  steps = [int(r["step"]) for r in read_csv(tmp_path / "metrics" / "train.csv")]
  assert steps == [int(r["step"]) for r in read_csv(reference_dir / "metrics" / "train.csv")]


def test_sigterm_saves_at_the_next_step_and_resumes_exactly(uninterrupted, tmp_path, monkeypatch):
  _, reference = uninterrupted
  with monkeypatch.context() as patch:
    patch.setattr(data, "make_iterator", _interrupting(3, "sigterm"))
    stopped = train_lib.train_and_evaluate(tiny_config(), tmp_path)
  assert int(stopped.step) == 3
  assert checkpointing.find_checkpoint(tmp_path, prefer="latest").step == 3
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is uninstalled
  resumed = train_lib.train_and_evaluate(tiny_config(), tmp_path)
  assert_trees_close(resumed.params, reference.params, atol=1e-6)
  # Each session records where it started and where it ended.
  sessions = provenance.read_sessions(tmp_path)
  assert [(s["start_step"], s["end_step"]) for s in sessions] == [(0, 3), (3, int(resumed.step))]
  assert provenance.training_hours(sessions) >= 0


def test_resume_with_another_model_names_the_field(uninterrupted):
  workdir, _ = uninterrupted
  with pytest.raises(run_config.ConfigChangedError,
                     match=r"different model.d_model \(model.d_model: 8 -> 16\)"):
    train_lib.train_and_evaluate(tiny_config(**{"model.d_model": 16}), workdir)


def _recall_config(num_keys: int, num_values: int, **updates):
  # Same vocabulary (2 + keys + values) and inputs, a different number of classes.
  return tiny_config(
      "associative_recall", **{
          "data.length": 8, "data.num_keys": num_keys, "data.num_values": num_values,
          "data.num_train": 64, "data.num_validation": 32, "data.num_test": 32,
          "train.num_steps": 2, "train.checkpoint_every": 2, "optimizer.warmup_steps": 0, **updates
      })


@pytest.mark.slow
def test_fine_tune_with_a_new_head(tmp_path):
  source_dir = tmp_path / "source"
  source = train_lib.train_and_evaluate(_recall_config(10, 4), source_dir)
  with pytest.raises(checkpointing.CheckpointMismatchError,
                     match=r"params/head/kernel: checkpoint \(8, 4\) vs model \(8, 6\)"):
    train_lib.train_and_evaluate(_recall_config(8, 6, init_from=str(source_dir)), tmp_path / "keep")
  config = _recall_config(8, 6, init_from=str(source_dir), init_head="reinit", freeze="encoder/.*",
                          **{"train.num_steps": 1})
  tuned = train_lib.train_and_evaluate(config, tmp_path / "tuned")
  assert tuned.params["head"]["kernel"].shape == (8, 6)
  # The frozen encoder is the source's; the trained blocks moved away from it.
  assert_trees_close(tuned.params["encoder"], source.params["encoder"], atol=0)
  block = checkpointing.tree_paths(tuned.params["blocks_0"])
  source_block = checkpointing.tree_paths(source.params["blocks_0"])
  assert any(not np.array_equal(block[p], source_block[p]) for p in block)


def test_missing_init_from_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    train_lib.train_and_evaluate(tiny_config(init_from=str(tmp_path / "nowhere")), tmp_path)


def test_unknown_init_head_is_rejected(tmp_path):
  with pytest.raises(ValueError, match="init_head"):
    finetune.fine_tune_variables({}, str(tmp_path), "replace")
