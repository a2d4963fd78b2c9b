r"""Releases a finished run's checkpoint into the model zoo (`ms_ssm_jax/zoo.py`).

    python scripts/release_checkpoint.py --workdir workdirs/default \
        --name ms_ssm_japanese_vowels --description "MS-SSM (2 x 32) on JapaneseVowels"

Writes the checkpoint's variables as one file `<name>.msgpack` into the zoo directory
(`ms_ssm_jax/released/`, or `$MS_SSM_ZOO_DIR`), evaluates them on the whole test split and on
its first `--slice_examples` examples (on this machine's devices), and adds the manifest entry
with the run's config, the metrics, the file's size and sha256. An existing entry is only
replaced with `--overwrite`.

How the model was trained (command, device, date, JAX version) comes from the run's
`sessions.jsonl` (written by train.py); `--command`, `--device` and `--date` replace it, and
are required for runs that have no sessions file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
from typing import Any, Sequence

import jax

from ms_ssm_jax import checkpointing
from ms_ssm_jax import evaluation
from ms_ssm_jax import provenance
from ms_ssm_jax import zoo

TEST_SPLIT = "test"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="the finished training run")
  parser.add_argument("--name", required=True, help="the zoo name, e.g. ms_ssm_listops")
  parser.add_argument("--description", default="", help="one or two sentences for people")
  parser.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                      help="the run's best-validation checkpoint (default) or its latest")
  parser.add_argument("--slice_examples", type=int, default=200,
                      help="the fixed test slice that the zoo tests re-evaluate")
  parser.add_argument("--command", help="the training command (default: the run's)")
  parser.add_argument("--device", help="the training devices (default: the run's)")
  parser.add_argument("--date", help="the training date, YYYY-MM-DD (default: the run's)")
  parser.add_argument(
      "--data_dir", help="replaces the run's config.data.data_dir for the "
      "evaluation (the manifest keeps the run's config)")
  parser.add_argument("--batch_size", type=int, help="eval batch size (default: the run's)")
  parser.add_argument(
      "--zoo_dir", help=f"the zoo directory (default: ${zoo.ZOO_DIR_ENV} or "
      "the package's released/)")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing entry")
  return parser.parse_args(argv)


def training_facts(run_dir: pathlib.Path, step: int, args: argparse.Namespace) -> dict[str, Any]:
  """command, device, date and jax_version of the session that trained up to `step`, and the
  hours of the sessions that did (`provenance.training_hours`).

  Flags win over the run's sessions.jsonl; a fact that neither gives is an error.
  """
  sessions = provenance.read_sessions(run_dir)
  # The session that saved `step`: the last one that started before it.
  trained = [s for s in sessions if s["start_step"] < step]
  session = trained[-1] if trained else {}
  first = sessions[0] if sessions else {}
  facts = {
      "command": args.command or first.get("command"),
      "device": args.device or " + ".join(dict.fromkeys(s["device"] for s in trained)),
      "date": args.date or session.get("started", "")[:10],
      "jax_version": session.get("jax_version", "unknown"),
      "train_hours": provenance.training_hours(trained),
  }
  missing = [key for key in ("command", "device", "date") if not facts[key]]
  if missing:
    raise ValueError(f"{run_dir} does not record the training {', '.join(missing)} (no "
                     f"{provenance.SESSIONS_FILE}, or the run was not started by train.py); "
                     f"pass {' '.join('--' + key for key in missing)}")
  datetime.date.fromisoformat(facts["date"])  # a malformed --date is an error
  return facts


def selection(ref: checkpointing.CheckpointRef, metric: str, num_steps: int) -> str:
  """How the released checkpoint was chosen, for the manifest."""
  if ref.directory.name == checkpointing.BEST_DIR:
    score = checkpointing.load_meta(ref)["score"]
    return (f"best validation {metric} ({score:.4f}) at step {ref.step} of {num_steps}")
  return f"latest checkpoint, step {ref.step} of {num_steps}"


def _prefixed(prefix: str, result: dict[str, Any]) -> dict[str, Any]:
  return {(f"{prefix}_examples" if key == "num_examples" else f"{prefix}_{key}"): value
          for key, value in result.items()}


def release(args: argparse.Namespace) -> zoo.ZooEntry:
  """Evaluates the run's checkpoint and adds it to the zoo (see the module docstring)."""
  run_dir = pathlib.Path(args.workdir)
  results_path = run_dir / "results.json"
  if not results_path.is_file():
    raise ValueError(f"{run_dir} has no results.json: the run has not finished; resume it "
                     "(rerun its train command) before releasing")
  if args.slice_examples < 1:
    raise ValueError(f"--slice_examples must be >= 1, got {args.slice_examples}")
  zoo.check_new_name(args.name, overwrite=args.overwrite, directory=args.zoo_dir)
  ref = checkpointing.find_checkpoint(run_dir, prefer=args.checkpoint)
  facts = training_facts(run_dir, ref.step, args)
  config_json = checkpointing.load_config_json(ref)
  model = evaluation.SavedModel(
      config_json, lambda target: checkpointing.load_variables(ref, target), checkpoint=str(ref),
      step=ref.step, batch_size=args.batch_size,
      data_overrides={"data_dir": args.data_dir} if args.data_dir else None)
  test = model.evaluate(TEST_SPLIT)
  test_slice = model.evaluate(TEST_SPLIT, args.slice_examples)
  if test_slice["num_examples"] < args.slice_examples:
    raise ValueError(f"the test split has only {test_slice['num_examples']} examples; pass "
                     f"--slice_examples <= {test_slice['num_examples']}")
  num_steps = json.loads(results_path.read_text())["num_steps"]
  return zoo.add_entry(
      jax.device_get(model.variables), overwrite=args.overwrite, directory=args.zoo_dir,
      name=args.name, task=model.info["task"], model=model.info["layer"],
      description=args.description, config=config_json, metrics={
          **_prefixed("test", test),
          **_prefixed("slice", test_slice), "eval_device": provenance.device_description()
      }, steps=ref.step, selected_by=selection(ref, model.info["metric"], num_steps), **facts)


def main(argv: Sequence[str]) -> None:
  args = parse_args(argv)
  entry = release(args)
  path = zoo.zoo_dir(args.zoo_dir)
  print(f"released {entry.name} -> {path / entry.file} ({entry.size_bytes:,} bytes, "
        f"sha256 {entry.sha256})")
  print(json.dumps({k: v for k, v in entry.to_json().items() if k != "config"}, indent=2))


if __name__ == "__main__":
  try:
    main(sys.argv[1:])
  except (FileNotFoundError, ValueError, KeyError) as e:
    sys.exit(f"release failed: {e}")
