"""Prints one markdown row per training run directory, read from what `train.py` wrote there.

    python scripts/summarize_runs.py workdirs/listops_* [--json runs.json]

Columns: task, model, parameters, steps trained, median s/step, the last evaluation's test
accuracy, the best validation accuracy and the test accuracy at that step (the UEA protocol's
number), and the hours its training sessions took (`provenance.training_hours`: the sessions
that recorded their end). Runs that have not evaluated yet show "-"; directories that are not
runs (no `config.json`) are skipped with a warning.
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import re
import statistics
import sys
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from ms_ssm_jax import provenance  # noqa: E402


def _rows(path: pathlib.Path) -> list[dict[str, str]]:
  if not path.is_file():
    return []
  with path.open() as f:
    return list(csv.DictReader(f))


def summarize(workdir: pathlib.Path) -> dict[str, Any]:
  """The numbers of one run directory (see the module docstring)."""
  config = json.loads((workdir / "config.json").read_text())
  summary_text = (workdir / "model_summary.txt").read_text()
  params = re.match(r"parameters: ([\d,]+)", summary_text)
  train_rows = _rows(workdir / "metrics" / "train.csv")
  evals: dict[int, dict[str, float]] = {}
  for row in _rows(workdir / "metrics" / "eval.csv"):
    evals.setdefault(int(row["step"]), {})[row["split"]] = float(row["accuracy"])
  step_times = [float(r["step_time"]) for r in train_rows]
  result: dict[str, Any] = {
      "run": workdir.name,
      "task": ":".join(filter(None, (config["data"]["name"], config["data"].get("dataset")))),
      "model": config["model"]["layer"],
      "parameters": int(params.group(1).replace(",", "")) if params else None,
      "steps": int(train_rows[-1]["step"]) if train_rows else 0,
      "seconds_per_step": statistics.median(step_times) if step_times else None,
      "final_test": None,
      "best_validation": None,
      "test_at_best_validation": None,
      "best_step": None,
      "train_hours": provenance.training_hours(provenance.read_sessions(workdir)),
  }
  if evals:
    last = evals[max(evals)]
    result["final_test"] = last.get("test")
    scored = [(e["validation"], step) for step, e in evals.items() if "validation" in e]
    if scored:
      best_val, best_step = max(scored, key=lambda s: (s[0], -s[1]))  # earliest of ties
      result.update(best_validation=best_val, best_step=best_step,
                    test_at_best_validation=evals[best_step].get("test"))
  return result


def _percent(value: float | None) -> str:
  return "-" if value is None else f"{100 * value:.2f}"


def markdown(summaries: list[dict[str, Any]]) -> str:
  lines = [
      "| run | task | model | params | steps | s/step | test (last eval) | best validation "
      "(step) | test at best validation | hours |", "|" + "---|" * 10
  ]
  for s in summaries:
    seconds = "-" if s["seconds_per_step"] is None else f"{s['seconds_per_step']:.4f}"
    params = "-" if s["parameters"] is None else f"{s['parameters']:,}"
    best = ("-"
            if s["best_step"] is None else f"{_percent(s['best_validation'])} ({s['best_step']})")
    hours = "-" if s["train_hours"] is None else f"{s['train_hours']:.2f}"
    lines.append(
        f"| {s['run']} | {s['task']} | {s['model']} | {params} | {s['steps']} | {seconds} | "
        f"{_percent(s['final_test'])} | {best} | {_percent(s['test_at_best_validation'])} | "
        f"{hours} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdirs", nargs="+", type=pathlib.Path)
  parser.add_argument("--json", type=pathlib.Path, help="also write the numbers here")
  args = parser.parse_args()
  runs = []
  for workdir in args.workdirs:
    if (workdir / "config.json").is_file():
      runs.append(workdir)
    else:
      print(f"skipping {workdir}: not a train.py run directory (no config.json)", file=sys.stderr)
  if not runs:
    raise SystemExit(f"none of the {len(args.workdirs)} directories is a train.py run "
                     "(each has a config.json); pass run directories, e.g. workdirs/*")
  summaries = [summarize(w) for w in runs]
  print(markdown(summaries))
  if args.json:
    args.json.write_text(json.dumps(summaries, indent=2) + "\n")


if __name__ == "__main__":
  main()
