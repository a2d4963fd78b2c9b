"""What the mains (`train.py`, `eval.py`) share: the multi-process flags, one-line flag and
user errors, and the data overrides of `eval.py`.

Only the mains import this module (it defines absl flags).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from typing import Any, Iterator

from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags

from ms_ssm_jax import checkpointing
from ms_ssm_jax import data
from ms_ssm_jax import sharding
from ms_ssm_jax import zoo

COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                  "host:port of process 0, for multi-process jobs.")
NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Initialize jax.distributed with auto-detection even when the "
    "environment does not list several processes (e.g. some TPU pod launchers).")
VERBOSE = flags.DEFINE_bool(
    "verbose", False, "Show the Python traceback of errors (by "
    "default a bad config, data, run or checkpoint prints one message).")

# What a user can cause: a bad config value, missing or mismatched data, a checkpoint that
# cannot be used. Their messages say what to do; a traceback adds nothing.
USER_ERRORS = (data.MissingDataError, checkpointing.CheckpointMismatchError,
               checkpointing.CorruptCheckpointError, zoo.ZooIntegrityError, KeyError, ValueError,
               OSError)

# `--config.data.<field>=value` (or `--[no]config.data.<field>` for booleans).
_DATA_OVERRIDE = re.compile(r"--(no)?config\.data\.")


def initialize_distributed() -> None:
  """`jax.distributed.initialize` when the flags or the environment declare several processes
  (`sharding.initialize_distributed`)."""
  if sharding.initialize_distributed(os.environ, coordinator_address=COORDINATOR.value,
                                     num_processes=NUM_PROCESSES.value, process_id=PROCESS_ID.value,
                                     force=DISTRIBUTED.value):
    logging.info("jax.distributed: process %d of %d", jax.process_index(), jax.process_count())


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing whose errors are one line (a mistyped config key is named)."""
  with _one_line_flag_errors(argv):
    return flags.FLAGS(argv)


@contextlib.contextmanager
def _one_line_flag_errors(argv: list[str]) -> Iterator[None]:
  """Exits with one line on a flag error (ml_collections raises while defining its override
  flags too)."""
  try:
    yield
  except flags.Error as e:
    sys.exit(f"FATAL Flags parsing error: {_without_traceback(str(e))}\n"
             "Pass --helpshort or --helpfull to see help.")
  except (KeyError, AttributeError) as e:
    # ml_collections wraps the KeyError (with its "did you mean") in an AttributeError.
    cause = e
    while cause.args and isinstance(cause.args[0], (KeyError, AttributeError)):
      cause = cause.args[0]
    message = " ".join(str(cause.args[0] if cause.args else cause).split())
    key = re.match(r"'([\w.]+)'", message)
    culprits = [
        arg.split("=", 1)[0]
        for arg in argv
        if key and arg.startswith("--config.") and key.group(1) in arg.split("=", 1)[0].split(".")
    ]
    where = f" {', '.join(culprits)}" if culprits else ""
    sys.exit(f"FATAL Flags parsing error: unknown config key{where}: {message}")
  except (OSError, ValueError) as e:  # a missing config file, a bad config arg
    sys.exit(f"FATAL Flags parsing error: {type(e).__name__}: {e}")


def _without_traceback(message: str) -> str:
  """A flag error's message on one line: ml_collections embeds the traceback of an error
  raised in a config file's `get_config`; its last line names the error."""
  head, traceback_sep, rest = message.partition("Traceback (most recent call last):")
  if not traceback_sep:
    return message
  return f"{' '.join(head.split())} {rest.strip().splitlines()[-1]}"


def split_data_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
  """(the other arguments, the `--config.data.*` ones) of a command line."""
  overrides = [arg for arg in argv[1:] if _DATA_OVERRIDE.match(arg)]
  others = [arg for i, arg in enumerate(argv) if i == 0 or not _DATA_OVERRIDE.match(arg)]
  return others, overrides


def parse_data_overrides(overrides: list[str], saved_task: str) -> dict[str, Any]:
  """`--config.data.<field>=value` arguments as {field: value}, typed as train.py types them.

  The values are parsed against the default data config of the task they select: the one of
  `--config.data.name` if given, else `saved_task` (the task the model was trained on).
  """
  names = [arg.split("=", 1)[1] for arg in overrides if arg.startswith("--config.data.name=")]
  schema = data.default_data_config(names[-1] if names else saved_task)
  argv = [sys.argv[0], *overrides]
  flag_values = flags.FlagValues()
  # ml_collections defines a flag for each field that `sys_argv` overrides.
  with _one_line_flag_errors(argv):
    config_flags.DEFINE_config_dict("config", ml_collections.ConfigDict({"data": schema}),
                                    flag_values=flag_values, sys_argv=argv)
    flag_values(argv)
  values = config_flags.get_override_values(flag_values["config"])
  return {path.split(".", 1)[1]: value for path, value in values.items()}


def error_message(error: Exception) -> str:
  """`Type: message` of a user error, pointing to --verbose for the traceback."""
  # str(KeyError) is the repr of its message, quotes and escapes included.
  text = error.args[0] if isinstance(error, KeyError) and error.args else error
  return f"{type(error).__name__}: {text} (rerun with --verbose for the traceback)"
