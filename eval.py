r"""Evaluates trained models: one run, a released (zoo) model, or several runs side by side.

    python eval.py --workdir=/tmp/run --split=test           # writes eval_best_test.{json,csv}
    python eval.py --zoo=ms_ssm_japanese_vowels              # a released model, by name
    python eval.py --zoo=ms_ssm_japanese_vowels --max_examples=200   # its first 200 examples
    python eval.py --compare=/tmp/ms_ssm,/tmp/s5 --split=test --output_dir=/tmp/cmp
    python eval.py --zoo=ms_ssm_listops --config.data.name=lra_listops \
        --config.data.data_dir=/data/lra_release    # another data source of the task

Each model is rebuilt from the config saved with its checkpoint (for a zoo entry, the config
in the zoo manifest). `--workdir` and `--compare` take run workdirs, checkpoint directories or
step directories. `--config.data.<field>=value` replaces fields of the saved data config, typed
as train.py types them; `--config.data.name` evaluates on another task, whose other fields
keep the saved values where the saved task has them and take the task's defaults otherwise
(`evaluation.override_data_config`).
"""

from __future__ import annotations

import csv
import json
import pathlib
import re
import sys
from typing import Any

from absl import app
from absl import flags
from absl import logging
import jax

from ms_ssm_jax import checkpointing
from ms_ssm_jax import cli
from ms_ssm_jax import evaluation
from ms_ssm_jax import quiet_logs
from ms_ssm_jax import zoo

_WORKDIR = flags.DEFINE_string("workdir", None, "The run (or checkpoint) to evaluate.")
_ZOO = flags.DEFINE_string("zoo", None, "The name of a released model (ms_ssm_jax/zoo.py) to "
                           "evaluate.")
_COMPARE = flags.DEFINE_list("compare", None, "Runs to evaluate on the same task, as a table.")
_SPLIT = flags.DEFINE_string("split", "test", "The split to evaluate.")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", None,
                                     "Evaluate only the split's first N examples.")
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "best", ["best", "latest"],
                                "Which checkpoint of a run workdir.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None,
                                   "Global eval batch size (default: the run's).")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where results go (default: the run's workdir; with --zoo and "
    "--compare, results are only printed unless this is set).")
# The `--config.data.*` arguments, kept aside by `_parse_flags` (their types depend on the task).
_DATA_OVERRIDE_ARGS: list[str] = []

# Data config fields that depend on the machine, not on the task.
_PATH_SUFFIXES = ("_dir", "_path", "_file")


def _parse_flags(argv: list[str]) -> list[str]:
  """`cli.parse_flags` of all but the `--config.data.*` arguments, which are kept aside."""
  others, overrides = cli.split_data_overrides(argv)
  _DATA_OVERRIDE_ARGS[:] = overrides
  misplaced = [arg for arg in others[1:] if re.match(r"--(no)?config\b", arg)]
  if misplaced:
    sys.exit(f"FATAL Flags parsing error: {misplaced[0]}: eval.py overrides only data fields "
             "(--config.data.<field>=value); the model and its training settings come from "
             "the saved config")
  return cli.parse_flags(others)


def _evaluate(path: str) -> dict[str, Any]:
  ref = checkpointing.find_checkpoint(path, prefer=_CHECKPOINT.value)
  saved_task = checkpointing.load_config_json(ref)["data"]["name"]
  result, info = evaluation.evaluate_checkpoint(path, _SPLIT.value, prefer=_CHECKPOINT.value,
                                                batch_size=_BATCH_SIZE.value,
                                                data_overrides=_data_overrides(saved_task),
                                                max_examples=_MAX_EXAMPLES.value)
  return {"run": path, "split": _SPLIT.value, **info, **result}


def _evaluate_zoo(name: str) -> dict[str, Any]:
  saved_task = zoo.get_entry(name).config["data"]["name"]
  model = evaluation.SavedModel.from_zoo(name, batch_size=_BATCH_SIZE.value,
                                         data_overrides=_data_overrides(saved_task))
  result = model.evaluate(_SPLIT.value, _MAX_EXAMPLES.value)
  return {"run": f"zoo:{name}", "split": _SPLIT.value, **model.info, **result}


def _data_overrides(saved_task: str) -> dict[str, Any] | None:
  if not _DATA_OVERRIDE_ARGS:
    return None
  return cli.parse_data_overrides(_DATA_OVERRIDE_ARGS, saved_task)


def _task_overridden() -> bool:
  return any(arg.startswith("--config.data.name=") for arg in _DATA_OVERRIDE_ARGS)


def _stem(prefix: str, row: dict[str, Any]) -> str:
  """A results file name; evaluations on another task than the trained one name it."""
  return f"{prefix}_{_SPLIT.value}" + (f"_on_{row['task']}" if _task_overridden() else "")


def _check_same_task(rows: list[dict[str, Any]]) -> None:
  """Raises unless every run was trained and evaluated on the same task data."""

  def task_fields(row):
    return {k: v for k, v in row["config"].data.items() if not k.endswith(_PATH_SUFFIXES)}

  reference = task_fields(rows[0])
  for row in rows[1:]:
    fields = task_fields(row)
    differing = sorted(k for k in set(reference) | set(fields) if reference.get(k) != fields.get(k))
    if differing:
      raise ValueError(f"--compare needs runs on the same task; {row['run']} differs from "
                       f"{rows[0]['run']} in data fields {differing}")


def _columns(rows: list[dict[str, Any]]) -> list[str]:
  metric_columns = ["loss", "accuracy"] + (["auroc"] if "auroc" in rows[0] else [])
  return ["run", "layer", "params", "step", "split", *metric_columns, "num_examples"]


def markdown_table(rows: list[dict[str, Any]]) -> str:
  columns = _columns(rows)

  def cell(value):
    return f"{value:.4f}" if isinstance(value, float) else str(value)

  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
  return "\n".join(lines)


def _write(rows: list[dict[str, Any]], directory: pathlib.Path, stem: str) -> None:
  directory.mkdir(parents=True, exist_ok=True)
  plain = [{k: v for k, v in row.items() if k != "config"} for row in rows]
  (directory / f"{stem}.json").write_text(json.dumps(plain, indent=2) + "\n")
  with open(directory / f"{stem}.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=_columns(rows), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(plain)
  print(f"wrote {directory / stem}.json and .csv")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    # Progress goes to stdout; orbax's per-save INFO lines would bury it.
    logging.set_verbosity(logging.WARNING)
    quiet_logs.quiet_dependency_logs()
  if sum(bool(flag.value) for flag in (_WORKDIR, _ZOO, _COMPARE)) != 1:
    raise app.UsageError("pass exactly one of --workdir, --zoo and --compare")
  cli.initialize_distributed()
  is_writer = jax.process_index() == 0
  if _WORKDIR.value:
    row = _evaluate(_WORKDIR.value)
    if is_writer:
      print(markdown_table([row]))
      directory = pathlib.Path(_OUTPUT_DIR.value or _WORKDIR.value)
      try:
        _write([row], directory, _stem(f"eval_{_CHECKPOINT.value}", row))
      except OSError as e:
        if _OUTPUT_DIR.value:
          raise
        raise OSError(f"cannot write the results into the run's workdir {directory} "
                      f"({e.strerror}); pass --output_dir=<a writable directory>") from None
    return
  if _ZOO.value:
    row = _evaluate_zoo(_ZOO.value)
    if is_writer:
      print(markdown_table([row]))
      stored = zoo.get_entry(_ZOO.value).metrics
      if not _task_overridden():  # the manifest's numbers are on the trained task
        print(f"manifest: test accuracy {stored['test_accuracy']:.4f} on "
              f"{stored['test_examples']} examples, {stored['slice_accuracy']:.4f} on the "
              f"first {stored['slice_examples']} (evaluated on {stored['eval_device']})")
      if _OUTPUT_DIR.value:
        _write([row], pathlib.Path(_OUTPUT_DIR.value), _stem(f"eval_zoo_{_ZOO.value}", row))
    return
  if len(_COMPARE.value) < 2:
    raise app.UsageError("--compare needs at least two runs")
  rows = [_evaluate(path) for path in _COMPARE.value]
  _check_same_task(rows)
  if is_writer:
    table = markdown_table(rows)
    print(f"task {rows[0]['task']}, split {_SPLIT.value} ({_CHECKPOINT.value} checkpoints):")
    print(table)
    if _OUTPUT_DIR.value:
      stem = _stem("compare", rows[0])
      _write(rows, pathlib.Path(_OUTPUT_DIR.value), stem)
      (pathlib.Path(_OUTPUT_DIR.value) / f"{stem}.md").write_text(table + "\n")


def _main_with_errors(argv: list[str]) -> None:
  try:
    main(argv)
  except cli.USER_ERRORS as e:
    if cli.VERBOSE.value:
      raise
    sys.exit(f"eval failed: {cli.error_message(e)}")


if __name__ == "__main__":
  app.run(_main_with_errors, flags_parser=_parse_flags)
