"""The base of our tfds builders: data generated or read on this machine, nothing downloaded."""

from __future__ import annotations

import tensorflow_datasets as tfds


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
