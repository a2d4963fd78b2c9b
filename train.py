r"""Trains one model on one task: `python train.py --config=configs/x.py --workdir=DIR`.

    python train.py --config=configs/default.py --workdir=/tmp/run \
        --config.optimizer.lr=1e-3 --config.train.num_steps=1000

Rerunning the same command resumes from the latest checkpoint in the workdir.
`--config.init_from` fine-tunes a run's checkpoint or a released model by its zoo name
(`ms_ssm_jax/zoo.py`). Multi-process jobs (TPU pods, SLURM, Open MPI) initialize
`jax.distributed` from their environment; other launchers pass --coordinator_address,
--num_processes and --process_id to every process.
"""

from __future__ import annotations

import pathlib
import re
import shlex
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from ms_ssm_jax import cli
from ms_ssm_jax import quiet_logs
from ms_ssm_jax import run_config
from ms_ssm_jax import train_lib
from ms_ssm_jax import workdir_lock

_DEFAULT_CONFIG = str(pathlib.Path(__file__).resolve().parent / "configs" / "default.py")

_CONFIG = config_flags.DEFINE_config_file(
    "config", _DEFAULT_CONFIG, "Config file (`path.py` or `path.py:arg`); override fields "
    "with --config.a.b=value.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics).")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    # Progress goes to stdout; orbax's per-save INFO lines would bury it.
    logging.set_verbosity(logging.WARNING)
    quiet_logs.quiet_dependency_logs()
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  if re.match(r"[a-zA-Z][\w+.-]*://", _WORKDIR.value):
    # pathlib turns gs://b/run into the local directory gs:/b/run: each host would keep its
    # own part of every checkpoint on its own disk.
    raise app.UsageError(f"--workdir={_WORKDIR.value}: URLs are not supported yet; mount the "
                         "bucket on every host (gcsfuse, docs/SCALING.md) and pass the mounted "
                         "path")
  cli.initialize_distributed()
  if jax.process_index() == 0:
    print(
        f"JAX {jax.__version__}: {jax.device_count()} devices "
        f"({jax.local_device_count()} local, {jax.process_count()} processes): "
        f"{jax.devices()[0].device_kind}", flush=True)
  try:
    train_lib.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                 command="python " + shlex.join(sys.argv))
  except (*cli.USER_ERRORS, train_lib.NonFiniteError, run_config.ConfigChangedError,
          workdir_lock.WorkdirLockedError) as e:
    if cli.VERBOSE.value:
      raise
    sys.exit(f"training stopped: {cli.error_message(e)}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
