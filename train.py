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

import os
import pathlib
import re
import shlex
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from ms_ssm_jax import checkpointing
from ms_ssm_jax import data
from ms_ssm_jax import quiet_logs
from ms_ssm_jax import run_config
from ms_ssm_jax import sharding
from ms_ssm_jax import train_lib
from ms_ssm_jax import workdir_lock
from ms_ssm_jax import zoo

_DEFAULT_CONFIG = str(pathlib.Path(__file__).resolve().parent / "configs" / "default.py")

_CONFIG = config_flags.DEFINE_config_file(
    "config", _DEFAULT_CONFIG, "Config file (`path.py` or `path.py:arg`); override fields "
    "with --config.a.b=value.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0, for multi-process jobs.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Show the Python traceback of errors (by "
                             "default a bad config, data or workdir prints one message).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Initialize jax.distributed with auto-detection even when the "
    "environment does not list several processes (e.g. some TPU pod launchers).")


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing whose errors are one line (a mistyped config key is named)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"FATAL Flags parsing error: {e}\nPass --helpshort or --helpfull to see help.")
  except (KeyError, AttributeError) as e:
    # ml_collections wraps the KeyError (with its "did you mean") in an AttributeError.
    cause = e
    while cause.args and isinstance(cause.args[0], (KeyError, AttributeError)):
      cause = cause.args[0]
    message = " ".join(str(cause.args[0] if cause.args else cause).split())
    key = re.match(r"'([\w.]+)'", message)
    culprits = [arg.split("=", 1)[0] for arg in argv
                if key and arg.startswith("--config.")
                and key.group(1) in arg.split("=", 1)[0].split(".")]
    where = f" {', '.join(culprits)}" if culprits else ""
    sys.exit(f"FATAL Flags parsing error: unknown config key{where}: {message}")
  except (OSError, ValueError) as e:  # a missing config file, a bad config arg
    sys.exit(f"FATAL Flags parsing error: {type(e).__name__}: {e}")


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
  if sharding.initialize_distributed(
      os.environ, coordinator_address=_COORDINATOR.value, num_processes=_NUM_PROCESSES.value,
      process_id=_PROCESS_ID.value, force=_DISTRIBUTED.value):
    logging.info("jax.distributed: process %d of %d", jax.process_index(), jax.process_count())
  if jax.process_index() == 0:
    print(f"JAX {jax.__version__}: {jax.device_count()} devices "
          f"({jax.local_device_count()} local, {jax.process_count()} processes): "
          f"{jax.devices()[0].device_kind}", flush=True)
  try:
    train_lib.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                 command="python " + shlex.join(sys.argv))
  except _USER_ERRORS as e:
    if _VERBOSE.value:
      raise
    sys.exit(f"training stopped: {error_message(e)}")


# What a user can cause: a bad config value, missing or mismatched data, a workdir or
# checkpoint that cannot be used. Their messages say what to do; a traceback adds nothing.
_USER_ERRORS = (train_lib.NonFiniteError, data.MissingDataError,
                checkpointing.CheckpointMismatchError, checkpointing.CorruptCheckpointError,
                zoo.ZooIntegrityError, run_config.ConfigChangedError,
                workdir_lock.WorkdirLockedError, KeyError, ValueError, OSError)


def error_message(error: Exception) -> str:
  """`Type: message` of a user error, pointing to --verbose for the traceback."""
  # str(KeyError) is the repr of its message, quotes and escapes included.
  text = error.args[0] if isinstance(error, KeyError) and error.args else error
  return f"{type(error).__name__}: {text} (rerun with --verbose for the traceback)"


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
