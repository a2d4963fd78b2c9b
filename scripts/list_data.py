"""Lists every task (shipped, generated or provided by you) and every shipped data set.

    python scripts/list_data.py

Shipped data sets are the classification problems inside the installed aeon (or sktime) and
scikit-learn wheels: name, channels, classes, lengths, train and test examples, and the task
that loads them (`--config.data.name=<task>`, or `uea` with `--config.data.dataset=<name>`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ms_ssm_jax.data import catalog


def main(argv: Sequence[str]) -> None:
  argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
  print("| task | kind |\n|---|---|")
  for task, kind in catalog.task_kinds().items():
    print(f"| {task} | {kind} |")
  rows, rejected = catalog.shipped_datasets()
  print("\nShipped data sets (train / test: the archive's TRAIN / TEST files; sdigits: our "
        "seeded split, train includes validation)\n")
  print("| data set | from | channels | classes | length | train | test | load with |")
  print("|" + "---|" * 8)
  for row in rows:
    length = (f"{row.min_length}"
              if row.min_length == row.max_length else f"{row.min_length}-{row.max_length}")
    print(f"| {row.name} | {row.source} | {row.channels} | {row.classes} | {length} | "
          f"{row.train} | {row.test} | {row.load_with} |")
  for name, why in rejected.items():
    print(f"not listed: {name}: {why}", file=sys.stderr)


if __name__ == "__main__":
  main(sys.argv[1:])
