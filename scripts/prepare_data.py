"""Builds a task's dataset ahead of training and prints its record counts per split.

    python scripts/prepare_data.py --task japanese_vowels --data_dir ~/tensorflow_datasets
    python scripts/prepare_data.py --task uea --dataset EigenWorms --manual_dir ~/uea_archive \\
        --protocol uea_70_15_15
    python scripts/prepare_data.py --task listops --data_dir /data/tfds --verify

Every field of the task's data config is a flag (`--task <name> --help` lists them). On a
pod, run this once on a shared `data_dir` before starting the job, so that processes do not
build the same dataset at once. `--verify` reads every example through the batch pipeline.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

import ml_collections
import tqdm

from ms_ssm_jax import data

_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _parse_bool(text: str) -> bool:
  if text.lower() not in _BOOLEANS:
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
  return _BOOLEANS[text.lower()]


def _flat_fields(config: ml_collections.ConfigDict,
                 prefix: str = "") -> list[tuple[str, type, Any]]:
  """(dotted key, type, default) of every leaf field of `config`."""
  fields = []
  for key in sorted(config.keys()):
    value = config[key]
    if isinstance(value, ml_collections.ConfigDict):
      fields.extend(_flat_fields(value, f"{prefix}{key}."))
    else:
      fields.append((f"{prefix}{key}", config.get_type(key), value))
  return fields


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, ml_collections.ConfigDict]:
  """Parses `--task`, the script's own flags and one flag per data config field."""
  task_parser = argparse.ArgumentParser(add_help=False)
  task_parser.add_argument("--task", choices=data.list_tasks(), required=True,
                           help="the task whose data to build")
  lenient = argparse.ArgumentParser(add_help=False)
  lenient.add_argument("--task")
  known, _ = lenient.parse_known_args(argv)
  if known.task not in data.list_tasks():  # --help, or no or an unknown --task: exits
    argparse.ArgumentParser(description=__doc__, parents=[task_parser],
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
  config = data.default_data_config(known.task)

  parser = argparse.ArgumentParser(description=__doc__, parents=[task_parser],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--verify", action="store_true",
                      help="read every example of every split through the batch pipeline")
  parser.add_argument("--batch_size", type=int, default=64, help="batch size of --verify")
  fields = parser.add_argument_group(f"data config fields of task {known.task!r}")
  for key, field_type, default in _flat_fields(config):
    if key == "name":
      continue
    parse = _parse_bool if field_type is bool else field_type
    fields.add_argument(f"--{key}", type=parse, default=default, metavar=field_type.__name__,
                        help=f"default: {default!r}")
  args = parser.parse_args(argv)
  for key, _, _ in _flat_fields(config):
    if key != "name":
      *parents, leaf = key.split(".")
      node = config
      for parent in parents:
        node = node[parent]
      node[leaf] = getattr(args, key)
  return args, config


def main(argv: Sequence[str]) -> None:
  args, config = parse_args(argv)
  splits = data.get_task_def(config.name).splits
  counts = {}
  for split in tqdm.tqdm(splits, desc=f"preparing {config.name}", unit="split"):
    counts[split] = data.num_examples(config, split)
  spec = data.get_task(config)
  print(f"\n{spec}")
  for split, count in counts.items():
    print(f"{split:>12}: {count} examples")
  if args.verify:
    for split in splits:
      batches = data.make_iterator(config, split, global_batch_size=args.batch_size, seed=0,
                                   shuffle=False, drop_remainder=False, process_index=0,
                                   process_count=1)
      seen = 0
      total = -(-counts[split] // args.batch_size)
      for batch in tqdm.tqdm(batches, total=total, desc=f"verifying {split}", unit="batch"):
        seen += int(batch["weights"].sum())
      if seen != counts[split]:
        raise RuntimeError(f"split {split!r}: read {seen} examples, expected {counts[split]}")
    print("every example read and batched")


if __name__ == "__main__":
  try:
    main(sys.argv[1:])
  except data.MissingDataError as error:
    sys.exit(f"error: {error}")
