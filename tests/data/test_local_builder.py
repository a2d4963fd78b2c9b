"""Preparing data once per machine: `local_builder.prepared` under concurrent callers."""

import concurrent.futures
import multiprocessing
import pathlib
import threading
import time

from ms_ssm_jax.data import local_builder
from ms_ssm_jax.data import uea


class FakeBuilder:
  """The two things `prepared` asks of a builder: its version folder and whether it is prepared."""

  def __init__(self, version_dir: pathlib.Path):
    self.data_dir = str(version_dir)

  def is_prepared(self) -> bool:
    return pathlib.Path(self.data_dir, "dataset_info.json").exists()


def test_threads_asking_at_once_prepare_once(tmp_path):
  version_dir = tmp_path / "fake" / "1.0.0"
  calls = []
  start = threading.Barrier(4)

  def prepare(builder: FakeBuilder) -> None:
    calls.append(builder)
    time.sleep(0.2)  # long enough for the other threads to find the data unprepared
    version_dir.mkdir(parents=True)
    (version_dir / "dataset_info.json").write_text("{}")

  def ask(_) -> bool:
    start.wait()
    return local_builder.prepared(lambda: FakeBuilder(version_dir), prepare).is_prepared()

  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    assert list(pool.map(ask, range(4))) == [True] * 4
  assert len(calls) == 1
  assert local_builder.prepared(lambda: FakeBuilder(version_dir), prepare).is_prepared()
  assert len(calls) == 1  # prepared data are not prepared again


def _test_split_size(data_dir: str, manual_dir: str) -> int:
  config = uea.default_config("uea", "Toy")
  config.data_dir, config.manual_dir = data_dir, manual_dir
  return len(uea.get_source(config, "test"))


def test_processes_preparing_one_dataset_at_once_all_read_it(tmp_path, toy_archive):
  # Without the lock, tfds lets them race and all but one fail on the final rename
  # ("FileExistsError: Cannot rename .../incomplete.XXXX_1.0.0").
  args = [(str(tmp_path / "tfds"), str(toy_archive))] * 3
  context = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(3, mp_context=context) as pool:
    assert list(pool.map(_test_split_size, *zip(*args))) == [9, 9, 9]
