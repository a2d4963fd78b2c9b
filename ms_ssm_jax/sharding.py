"""The device mesh, the sharding rules, and global batch assembly (the only mesh code).

The mesh has two axes: `data` (batch parallelism) and `model` (parameter sharding). With
`model == 1` training is pure data parallelism: parameters and optimizer state are replicated
and every batch is split along `data`. With `model > 1`, large arrays of the train state
(Dense kernels, embeddings, their optimizer moments) are split along their largest dimension
that `model` divides (FSDP-style); XLA inserts the gathers. The same code path runs on one
CPU, fake CPU devices, GPUs and multi-host TPU slices.
"""

from __future__ import annotations

import collections
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
MODEL_AXIS = "model"
# Arrays with fewer elements stay replicated: splitting them saves little memory and costs
# a collective per use.
MIN_SHARDED_SIZE = 2**14


def make_mesh(mesh_config: ml_collections.ConfigDict,
              devices: list[jax.Device] | None = None) -> Mesh:
  """Builds the (`data`, `model`) mesh of `mesh_config` over all (or the given) devices.

  Args:
    mesh_config: `data` (-1: all devices not used by `model`) and `model` (>= 1).
    devices: the devices to use; default all of them (every process's).

  Returns:
    A mesh with Auto axes, so that the compiler propagates shardings.
  """
  devices = list(jax.devices()) if devices is None else list(devices)
  num_devices = len(devices)
  data, model = int(mesh_config.data), int(mesh_config.model)
  if model < 1 or data == 0 or data < -1:
    raise ValueError(f"config.mesh: model must be >= 1 and data >= 1 or -1, got data={data} "
                     f"model={model}")
  if num_devices % model:
    raise ValueError(f"config.mesh.model={model} does not divide the {num_devices} devices; "
                     f"choose a divisor of {num_devices}")
  if data == -1:
    data = num_devices // model
  if data * model != num_devices:
    raise ValueError(f"config.mesh data={data} x model={model} = {data * model} must equal the "
                     f"{num_devices} devices; set config.mesh.data=-1 to use all of them")
  return jax.make_mesh((data, model), (DATA_AXIS, MODEL_AXIS),
                       axis_types=(AxisType.Auto, AxisType.Auto), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  """The sharding of an array every device holds whole."""
  return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """The sharding of batch arrays: the leading (batch) axis split along `data`."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(mesh: Mesh, global_batch_size: int, what: str) -> None:
  """Raises unless `global_batch_size` splits evenly over the data axis and the processes."""
  data = mesh.shape[DATA_AXIS]
  if global_batch_size <= 0 or global_batch_size % data:
    raise ValueError(f"{what}={global_batch_size} must be a positive multiple of the mesh's "
                     f"data axis ({data} devices); change {what} or config.mesh")
  _, num_shards = process_data_shard(mesh, global_batch_size)
  if global_batch_size % num_shards:
    raise ValueError(f"{what}={global_batch_size} must be a multiple of the {num_shards} "
                     "processes that read different data")


def array_partition_spec(shape: tuple[int, ...], model_size: int,
                         min_size: int = MIN_SHARDED_SIZE) -> PartitionSpec:
  """Where one array of the train state lives: split on `model` if large, else replicated.

  Args:
    shape: the array's shape.
    model_size: the size of the mesh's `model` axis.
    min_size: arrays with fewer elements stay replicated.

  Returns:
    `P()` or a spec with `model` on the largest dimension that `model_size` divides (the
    first such one on ties).
  """
  if model_size == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
    return PartitionSpec()
  candidates = [axis for axis, size in enumerate(shape) if size % model_size == 0]
  if not candidates:
    return PartitionSpec()
  axis = max(candidates, key=lambda a: (shape[a], -a))
  spec = [None] * len(shape)
  spec[axis] = MODEL_AXIS
  return PartitionSpec(*spec)


def state_shardings(mesh: Mesh, abstract_tree: Any, min_size: int = MIN_SHARDED_SIZE) -> Any:
  """`NamedSharding`s for every leaf of a (abstract) train-state pytree, by the rules above.

  Rules depend on shapes only, so parameters and their optimizer moments line up.
  """
  model_size = mesh.shape[MODEL_AXIS]
  return jax.tree.map(
      lambda leaf: NamedSharding(mesh, array_partition_spec(tuple(leaf.shape), model_size, min_size)
                                ), abstract_tree)


def with_shardings(abstract: Any, shardings: Any) -> Any:
  """`ShapeDtypeStruct`s of `abstract` carrying `shardings` (a restore target)."""
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract,
                      shardings)


def process_data_shard(mesh: Mesh, global_batch_size: int) -> tuple[int, int]:
  """Which part of each global batch this process must supply.

  Processes whose devices hold the same rows under `batch_sharding` (when `model` spans
  processes) form a group that reads the same data; groups hold disjoint sets of equally many
  rows. A group's rows need not be contiguous: on TPU pods `jax.make_mesh` orders the `data`
  axis by the chip topology, which can interleave the hosts. Each process then fills its rows,
  in row order, with consecutive examples of the stream (see `global_batch`), so every global
  batch holds the same examples whatever the layout, in a layout-dependent order.

  Returns:
    (shard index, number of shards): this process supplies examples
    `[index * B / count, (index + 1) * B / count)` of every global batch of size B of the
    stream. Pass them to the data iterator as `process_index` and `process_count`.
  """
  rows_of: dict[int, set[int]] = collections.defaultdict(set)
  for device, index in batch_sharding(mesh).devices_indices_map((global_batch_size,)).items():
    rows_of[device.process_index].update(range(*index[0].indices(global_batch_size)))
  groups = sorted({frozenset(rows) for rows in rows_of.values()}, key=min)
  if (len({len(rows) for rows in groups}) != 1 or
      sum(len(rows) for rows in groups) != global_batch_size):
    raise ValueError(f"the processes hold overlapping or unequal sets of rows of a global batch "
                     f"of {global_batch_size}; use a device order in which processes that "
                     "share any rows share all of them")
  return groups.index(frozenset(rows_of[jax.process_index()])), len(groups)


def global_batch(mesh: Mesh, local_batch: dict[str, np.ndarray],
                 global_batch_size: int) -> dict[str, jax.Array]:
  """Assembles global batch arrays from this process's rows (numpy, leading axis b).

  Args:
    mesh: the mesh.
    local_batch: this process's part, as given by `process_data_shard`; its rows go to the
      rows of the global batch that this process's devices hold, in order.
    global_batch_size: B.

  Returns:
    The batch as global `jax.Array`s of leading size B, sharded along `data`.
  """
  sharding = batch_sharding(mesh)
  return {
      key:
          jax.make_array_from_process_local_data(sharding, value,
                                                 (global_batch_size,) + value.shape[1:])
      for key, value in local_batch.items()
  }


def declared_process_count(environ: dict[str, str]) -> int:
  """How many processes the job's environment declares (1 if it declares none).

  Reads what JAX's cluster auto-detection reads: SLURM, Open MPI, and Cloud TPU worker lists.
  """
  counts = [1]
  for variable in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
    if environ.get(variable, "").isdigit():
      counts.append(int(environ[variable]))
  for variable in ("TPU_WORKER_HOSTNAMES", "TPU_PROCESS_ADDRESSES"):
    if environ.get(variable):
      counts.append(len(environ[variable].split(",")))
  return max(counts)


def initialize_distributed(environ: dict[str, str], *, coordinator_address: str | None,
                           num_processes: int | None, process_id: int | None, force: bool) -> bool:
  """Calls `jax.distributed.initialize` when the job has several processes.

  It must not be called in a single-process job on a non-TPU host (it fails there), so it
  runs only when the flags (`num_processes > 1` or a coordinator address), the environment
  (see `declared_process_count`) or `force` (e.g. a TPU pod whose workers the environment
  does not list) say so. Returns whether it initialized.
  """
  flagged = bool(coordinator_address) or (num_processes or 1) > 1
  if not (force or flagged or declared_process_count(environ) > 1):
    return False
  if flagged and (num_processes is None or process_id is None or not coordinator_address):
    raise ValueError("multi-process flags need all three of --coordinator_address, "
                     "--num_processes and --process_id (or none, for auto-detection)")
  jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                             process_id=process_id)
  return True
