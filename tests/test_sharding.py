"""Mesh, sharding rules, batch assembly, and sharded training equal to one device."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ms_ssm_jax import data
from ms_ssm_jax import model as model_lib
from ms_ssm_jax import optim
from ms_ssm_jax import sharding
from ms_ssm_jax import train_lib
from tests.test_train import persistent_compilation_cache  # noqa: F401  (autouse)
from tests.test_train import tiny_config


def mesh_config(data_size: int, model_size: int) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({"data": data_size, "model": model_size})


def test_make_mesh_uses_all_devices_with_auto_axes():
  mesh = sharding.make_mesh(mesh_config(-1, 2))
  assert dict(mesh.shape) == {"data": 4, "model": 2}
  assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


@pytest.mark.parametrize("data_size, model_size, message", [
    (-1, 3, "model=3 does not divide the 8 devices"),
    (2, 2, "data=2 x model=2 = 4 must equal the 8 devices"),
    (0, 1, "data >= 1 or -1"),
])
def test_make_mesh_rejects_bad_shapes(data_size, model_size, message):
  with pytest.raises(ValueError, match=message):
    sharding.make_mesh(mesh_config(data_size, model_size))


def test_batch_size_must_split_over_the_data_axis():
  mesh = sharding.make_mesh(mesh_config(-1, 1))
  sharding.check_batch_size(mesh, 16, "config.train.global_batch_size")
  with pytest.raises(
      ValueError, match="global_batch_size=12 must be a positive multiple of "
      "the mesh's data axis \\(8 devices\\)"):
    sharding.check_batch_size(mesh, 12, "config.train.global_batch_size")


def test_partition_spec_rules():
  assert sharding.array_partition_spec((512, 64), 1, 16) == P()  # pure data parallel
  assert sharding.array_partition_spec((8,), 2, 16) == P()  # small: replicated
  assert sharding.array_partition_spec((64, 512), 2, 16) == P(None, "model")  # largest dim
  assert sharding.array_partition_spec((63, 512), 4, 16) == P(None, "model")
  assert sharding.array_partition_spec((512, 63), 4, 16) == P("model", None)
  assert sharding.array_partition_spec((63, 7), 4, 16) == P()  # nothing divides


def test_process_data_shard_single_process():
  mesh = sharding.make_mesh(mesh_config(-1, 2))
  assert sharding.process_data_shard(mesh, 16) == (0, 1)


def test_global_batch_is_split_along_data():
  mesh = sharding.make_mesh(mesh_config(4, 2))
  local = {
      "inputs": np.arange(8 * 3, dtype=np.float32).reshape(8, 3),
      "labels": np.arange(8, dtype=np.int32)
  }
  batch = sharding.global_batch(mesh, local, 8)
  assert batch["inputs"].sharding.spec == P("data")
  np.testing.assert_array_equal(np.asarray(batch["inputs"]), local["inputs"])
  shard_rows = {tuple(np.asarray(s.data)[:, 0]) for s in batch["inputs"].addressable_shards}
  assert len(shard_rows) == 4  # 4 data shards, each replicated over the 2 model devices


def test_declared_process_count():
  assert sharding.declared_process_count({}) == 1
  assert sharding.declared_process_count({"SLURM_NTASKS": "4"}) == 4
  assert sharding.declared_process_count({"TPU_WORKER_HOSTNAMES": "a,b,c,d"}) == 4
  assert not sharding.initialize_distributed({}, coordinator_address=None, num_processes=None,
                                             process_id=None, force=False)
  with pytest.raises(ValueError, match="need all three"):
    sharding.initialize_distributed({}, coordinator_address="host:1234", num_processes=2,
                                    process_id=None, force=False)


def _train_losses(devices, mesh_shape, min_size, config, batches, spec):
  """Losses of 3 train steps on a mesh over `devices`, and the final parameters."""
  mesh = sharding.make_mesh(mesh_config(*mesh_shape), devices=devices)
  model = model_lib.build_model(config.model, spec)
  tx, _ = optim.make_optimizer(config.optimizer, 3, 0)
  init_state = train_lib.make_init_fn(model, tx, spec, seed=0)
  shardings = sharding.state_shardings(mesh, jax.eval_shape(init_state), min_size)
  state = jax.jit(init_state, out_shardings=shardings)()
  step = train_lib.jit_train_step(mesh, shardings, model=model, tx=tx, target=spec.target)
  losses = []
  for local in batches:
    state, metrics = step(state, sharding.global_batch(mesh, local, 16))
    losses.append(float(metrics["loss_sum"]) / float(metrics["weight_sum"]))
  return losses, jax.device_get(state.params), state


# Pure data parallelism (with -m slow), and data x model with every array big enough split on
# `model`.
@pytest.mark.parametrize("mesh_shape", [pytest.param((8, 1), marks=pytest.mark.slow), (4, 2)])
def test_sharded_training_matches_one_device(mesh_shape):
  # A large Adam eps makes updates proportional to gradients: parameters whose gradient is
  # zero up to rounding (biases before a BatchNorm) would otherwise move by +-lr at random.
  config = tiny_config(**{"optimizer.eps": 1.0})
  spec = data.get_task(config.data)
  iterator = data.make_iterator(config.data, "train", global_batch_size=16, seed=0, shuffle=True,
                                drop_remainder=True)
  batches = [next(iterator) for _ in range(3)]
  devices = jax.devices()
  single, single_params, _ = _train_losses(devices[:1], (1, 1), 16, config, batches, spec)
  losses, params, state = _train_losses(devices, mesh_shape, 1, config, batches, spec)
  np.testing.assert_allclose(losses, single, rtol=1e-5)
  for path, value in jax.tree_util.tree_leaves_with_path(params):
    np.testing.assert_allclose(value, _leaf(single_params, path), atol=1e-6, rtol=1e-5,
                               err_msg=jax.tree_util.keystr(path))
  if mesh_shape[1] > 1:  # the state really is split on `model` (FSDP-style), not replicated
    kernel = state.params["blocks_0"]["gate"]["kernel"]
    assert kernel.sharding.spec in (P("model", None), P(None, "model"))


def _leaf(tree, path):
  for key in path:
    tree = tree[key.key]
  return tree
