"""Our ListOps test accuracy of each ablation row beside the paper's (configs/ablations.py).

    python scripts/ablation_table.py OUT/summary.json [--json table.json]

Reads `summarize_runs.py --json` of the run directories `ablation_<row>` that
scripts/experiments/ablations_gpu.sh trains; other runs in it are skipped with a note. Columns:
row, steps trained, our test accuracy at the last evaluation and the paper's ListOps accuracy
(its Table 5, `ablations.PAPER`), each with its difference to the `full` row in brackets, and
the paper's PTB-XL AUROC. Rows of `ablations.ROWS` that have not run or not evaluated show "-",
rows that do not apply to ListOps's base (`ablations.S6_ROWS`) "S6 only".
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from configs import ablations  # noqa: E402

RUN_PREFIX = "ablation_"


def ablation_rows(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """One row per `ablations.ROWS` entry, in its order, from `summarize_runs.summarize` dicts."""
  runs = {}
  for summary in summaries:
    name = summary["run"]
    if not name.startswith(RUN_PREFIX):
      print(f"skipping run {name!r}: not an ablation run ({RUN_PREFIX}<row>)", file=sys.stderr)
      continue
    row = name[len(RUN_PREFIX):]
    if row not in ablations.ROWS:
      raise ValueError(f"run {name!r} names no row of configs/ablations.py "
                       f"({', '.join(ablations.ROWS)}); rename or remove it")
    if summary["task"] != "listops":
      raise ValueError(f"run {name!r} trained on {summary['task']!r}; the table compares "
                       "ListOps runs (configs/ablations.py's default task)")
    runs[row] = summary
  table = []
  listops_rows = ablations.task_rows("listops")
  for row in ablations.ROWS:
    run = runs.get(row, {})
    paper = ablations.PAPER.get(row)
    final_test = run.get("final_test")
    table.append({
        "row": row,
        "applies": row in listops_rows,
        "steps": run.get("steps"),
        "test_accuracy": None if final_test is None else 100 * final_test,
        "paper_listops_accuracy": paper.listops_accuracy if paper else None,
        "paper_ptbxl_auroc": paper.ptbxl_auroc if paper else None,
    })
  return table


def _with_difference(value: float | None, full: float | None) -> str:
  if value is None:
    return "-"
  if full is None:
    return f"{value:.2f}"
  return f"{value:.2f} ({value - full:+.2f})"


def markdown(table: list[dict[str, Any]]) -> str:
  full = next(row for row in table if row["row"] == "full")
  lines = [
      "| row | steps | ours: ListOps test accuracy (vs full) | paper: ListOps (vs full) "
      "| paper: PTB-XL AUROC |", "|" + "---|" * 5
  ]
  for row in table:
    ours = (_with_difference(row["test_accuracy"], None if row is full else full["test_accuracy"])
            if row["applies"] else "S6 only")
    paper = _with_difference(row["paper_listops_accuracy"],
                             None if row is full else full["paper_listops_accuracy"])
    steps = "-" if row["steps"] is None else f"{row['steps']:,}"
    auroc = "-" if row["paper_ptbxl_auroc"] is None else f"{row['paper_ptbxl_auroc']:.3f}"
    lines.append(f"| {row['row']} | {steps} | {ours} | {paper} | {auroc} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("summary", type=pathlib.Path, help="summarize_runs.py's --json output")
  parser.add_argument("--json", type=pathlib.Path, help="also write the rows here")
  args = parser.parse_args()
  table = ablation_rows(json.loads(args.summary.read_text()))
  print(markdown(table))
  if args.json:
    args.json.write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
  main()
