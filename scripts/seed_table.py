"""Mean +- std over seeds of the runs that `summarize_runs.py --json` summarized.

    python scripts/seed_table.py runs/summary.json [--json table.json]

Runs named `<group>_seed<N>` form one row per group (e.g. `GunPoint_s5_seed0..2` -> `GunPoint_s5`):
the number of seeds, parameters, steps, and the mean and sample standard deviation (n - 1) in
percent of the last evaluation's test accuracy and of the test accuracy at the best validation
step. A group whose runs differ in parameters or steps is an error (unfinished or mixed runs).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import statistics
from typing import Any

_SEED_SUFFIX = re.compile(r"^(?P<group>.+)_seed(?P<seed>\d+)$")


def _mean_std(values: list[float]) -> dict[str, float | None]:
  percents = [100 * v for v in values]
  return {
      "mean": statistics.fmean(percents),
      "std": statistics.stdev(percents) if len(percents) > 1 else None
  }


def group_by_seed(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """One row per `<group>`, in first-seen order, from `summarize_runs.summarize` dicts."""
  groups: dict[str, list[dict[str, Any]]] = {}
  for summary in summaries:
    match = _SEED_SUFFIX.match(summary["run"])
    if match is None:
      raise ValueError(f"run {summary['run']!r} is not named <group>_seed<N>; name each seed's "
                       "run directory that way")
    groups.setdefault(match["group"], []).append(summary)
  rows = []
  for group, runs in groups.items():
    for field in ("task", "parameters", "steps"):
      values = {run[field] for run in runs}
      if len(values) > 1:
        raise ValueError(f"{group}: its runs differ in {field} ({sorted(map(str, values))}); "
                         "finish or remove the odd runs first")
    unevaluated = [
        run["run"]
        for run in runs
        if run["final_test"] is None or run["test_at_best_validation"] is None
    ]
    if unevaluated:
      raise ValueError(f"{group}: {unevaluated} have no test evaluation yet; finish them first")
    rows.append({
        "group": group,
        "task": runs[0]["task"],
        "seeds": len(runs),
        "parameters": runs[0]["parameters"],
        "steps": runs[0]["steps"],
        "final_test": _mean_std([run["final_test"] for run in runs]),
        "test_at_best_validation": _mean_std([run["test_at_best_validation"] for run in runs]),
    })
  return rows


def _cell(stats: dict[str, float | None]) -> str:
  std = "-" if stats["std"] is None else f"{stats['std']:.2f}"
  return f"{stats['mean']:.2f} ± {std}"


def markdown(rows: list[dict[str, Any]]) -> str:
  lines = [
      "| runs | task | seeds | params | steps | test, last step | test at best validation |",
      "|" + "---|" * 7
  ]
  for row in rows:
    lines.append(f"| {row['group']} | {row['task']} | {row['seeds']} | {row['parameters']:,} | "
                 f"{row['steps']} | {_cell(row['final_test'])} | "
                 f"{_cell(row['test_at_best_validation'])} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("summary", type=pathlib.Path, help="summarize_runs.py's --json output")
  parser.add_argument("--json", type=pathlib.Path, help="also write the rows here")
  args = parser.parse_args()
  rows = group_by_seed(json.loads(args.summary.read_text()))
  print(markdown(rows))
  if args.json:
    args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
  main()
