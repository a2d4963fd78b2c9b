r"""`train.py` with a record of the data each process reads; launched by test_multiprocess.py.

    python tests/multiprocess_worker.py --record=DIR <train.py flags>

Runs train.py's `main` unchanged (flags, `jax.distributed` initialization, the train loop)
and afterwards writes `DIR/process_<jax.process_index()>.npz`: for every iterator the run
opened, in order, its split, the `process_index` and `process_count` the loop passed to the
data pipeline, and the `inputs`, `labels` and `weights` of every batch this process consumed.

With --interleave_devices the mesh takes the devices round-robin over the processes, so that
each process holds every other block of rows of a batch, as `jax.make_mesh` lays out the
`data` axis of TPU v4 pods (it follows the chip torus, which crosses hosts).
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any, Iterator

from absl import app
from absl import flags
import jax
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import train  # noqa: E402  (needs the repository root on the path)
from ms_ssm_jax import cli  # noqa: E402
from ms_ssm_jax import data  # noqa: E402
from ms_ssm_jax import sharding  # noqa: E402

_RECORD = flags.DEFINE_string("record", None, "Directory for process_<i>.npz.", required=True)

_INTERLEAVE = flags.DEFINE_bool("interleave_devices", False,
                                "Order the mesh's devices round-robin over the processes.")

_RECORDED_KEYS = ("inputs", "labels", "weights")


class _Recorder:
  """Wraps `data.make_iterator` and keeps what every iterator yielded."""

  def __init__(self):
    self.iterators: list[dict[str, Any]] = []
    self._make_iterator = data.make_iterator

  def make_iterator(self, data_config, split: str, **kwargs) -> Iterator[dict[str, Any]]:
    record = {
        "split": split, "process_index": kwargs["process_index"],
        "process_count": kwargs["process_count"], "batches": []
    }
    self.iterators.append(record)
    for batch in self._make_iterator(data_config, split, **kwargs):
      record["batches"].append({key: batch[key] for key in _RECORDED_KEYS})
      yield batch

  def save(self, path: pathlib.Path) -> None:
    arrays = {}
    for i, record in enumerate(self.iterators):
      arrays[f"{i}/split"] = np.asarray(record["split"])
      arrays[f"{i}/shard"] = np.asarray([record["process_index"], record["process_count"]])
      for key in _RECORDED_KEYS:
        arrays[f"{i}/{key}"] = np.stack([batch[key] for batch in record["batches"]])
    np.savez(path, **arrays)


def _interleaved_mesh(mesh_config, devices=None):
  """`sharding.make_mesh` over the devices taken round-robin over the processes."""
  devices = list(jax.devices()) if devices is None else list(devices)
  rank = {
      d: sum(e.process_index == d.process_index and e.id < d.id for e in devices) for d in devices
  }
  return _MAKE_MESH(mesh_config, sorted(devices, key=lambda d: (rank[d], d.process_index)))


_MAKE_MESH = sharding.make_mesh


def main(argv: list[str]) -> None:
  recorder = _Recorder()
  data.make_iterator = recorder.make_iterator
  if _INTERLEAVE.value:
    sharding.make_mesh = _interleaved_mesh
  train.main(argv)
  record_dir = pathlib.Path(_RECORD.value)
  record_dir.mkdir(parents=True, exist_ok=True)
  recorder.save(record_dir / f"process_{jax.process_index()}.npz")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
