"""The base of our tfds builders: data generated or read on this machine, nothing downloaded."""

from __future__ import annotations

import contextlib
import fcntl
import pathlib
from typing import Callable, Iterator, TypeVar

import tensorflow_datasets as tfds

Builder = TypeVar("Builder", bound="LocalBuilder")


class LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A GeneratorBasedBuilder that announces its one-time preparation in one plain line.

  tfds announces every preparation as "Downloading and preparing dataset Unknown size
  (download: Unknown size, ...)" and then "downloaded and prepared"; for data made from local
  files or a generator both are wrong.
  """

  def _log_download_bytes(self) -> None:
    # Overrides tfds's announcement (a private hook; its only caller is download_and_prepare).
    print(
        f"preparing {self.name}/{self.builder_config.name} in {self.data_dir} (once; later "
        "runs reuse it)", flush=True)

  def _log_download_done(self) -> None:
    pass


@contextlib.contextmanager
def _exclusive(lock_path: pathlib.Path) -> Iterator[None]:
  lock_path.parent.mkdir(parents=True, exist_ok=True)
  with open(lock_path, "a") as lock_file:  # closing it releases the lock
    fcntl.flock(lock_file, fcntl.LOCK_EX)  # waits for a process preparing the same data
    yield


def prepared(
    make_builder: Callable[[], Builder],
    prepare: Callable[[Builder], None] = lambda builder: builder.download_and_prepare()
) -> Builder:
  """`make_builder()` once its data are prepared: `prepare(builder)` first if they are not.

  Processes of one machine that ask for the same unprepared data at once (seeds started side
  by side) take turns on `<version dir>.lock`: the first prepares, the others wait and then
  read its data (tfds alone lets them race, and all but one fail on the final rename). A
  data_dir on remote storage (`gs://...`) gets no such lock: prepare it once beforehand
  (`scripts/prepare_data.py`) when several hosts or processes start on it.
  """
  builder = make_builder()
  if builder.is_prepared():
    return builder
  version_dir = str(builder.data_dir)
  if "://" in version_dir:
    prepare(builder)
  else:
    with _exclusive(pathlib.Path(version_dir + ".lock")):
      if not builder.is_prepared():
        prepare(builder)
  return make_builder()  # made again: a new builder reads the prepared data's info from disk
