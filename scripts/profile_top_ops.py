"""Where a profiled train step spends its device time: the top XLA ops of a `jax.profiler` trace.

    python train.py ... --config.train.profile_steps=5 --workdir=W
    python scripts/profile_top_ops.py W/profile --steps 5 [--top 25] [--json out.json]

Reads the Chrome-format trace (`*.trace.json.gz`) that `jax.profiler` writes beside its xplane,
takes the device's "XLA Ops" line (one event per executed HLO op; on a GPU, the plane
`/device:GPU:0`), and prints two markdown tables: the ops by total time (with the op's kind,
count and ms per step), and the same times summed by kind (the op name without its `.N`
suffix, e.g. `loop_transpose_fusion`, `fft`, `cublas-gemm`). `--steps` is the number of steps
in the window (`config.train.profile_steps`), so that "ms/step" is comparable with the step
times of `scripts/bench_train.py`.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import pathlib
import re
import sys
from typing import Any, Iterable, NamedTuple

OPS_THREAD = "XLA Ops"


class OpTime(NamedTuple):
  """One op's (or one kind's) share of the profiled window."""
  name: str
  kind: str
  count: int
  total_ms: float
  detail: str  # the op's HLO text where the trace has it, else ""


def find_trace(path: pathlib.Path) -> pathlib.Path:
  """The newest `*.trace.json.gz` at or under `path` (a file, or a profile directory)."""
  if path.is_file():
    return path
  traces = sorted(path.rglob("*.trace.json.gz"), key=lambda p: p.stat().st_mtime)
  if not traces:
    raise FileNotFoundError(f"no *.trace.json.gz under {path}; train with "
                            "--config.train.profile_steps=N and pass <workdir>/profile")
  return traces[-1]


def op_kind(name: str) -> str:
  """`loop_transpose_fusion.12` -> `loop_transpose_fusion`."""
  return re.sub(r"\.\d+$", "", name)


def device_op_events(trace: dict[str, Any], device: str) -> list[dict[str, Any]]:
  """The complete events ('X') on the `XLA Ops` line of every process whose name has `device`."""
  events = trace["traceEvents"]
  pids = {
      e["pid"]
      for e in events
      if e.get("ph") == "M" and e.get("name") == "process_name" and device in e["args"]["name"]
  }
  if not pids:
    names = sorted({
        e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"
    })
    raise ValueError(f"no process named like {device!r} in the trace; it has: {names}")
  threads = {(e["pid"], e["tid"])
             for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name" and e["pid"] in pids and
             e["args"]["name"] == OPS_THREAD}
  if not threads:
    raise ValueError(f"the {device!r} process has no {OPS_THREAD!r} line; is this a device "
                     "trace (a GPU or TPU run)?")
  return [e for e in events if e.get("ph") == "X" and (e["pid"], e.get("tid")) in threads]


def top_ops(events: Iterable[dict[str, Any]]) -> list[OpTime]:
  """Time per op name, largest first."""
  totals: dict[str, float] = collections.defaultdict(float)
  counts: dict[str, int] = collections.Counter()
  details: dict[str, str] = {}
  for event in events:
    totals[event["name"]] += event.get("dur", 0.0) / 1e3  # microseconds -> ms
    counts[event["name"]] += 1
    args = event.get("args", {})
    details.setdefault(event["name"], str(args.get("long_name", "")))
  return sorted((OpTime(name, op_kind(name), counts[name], total, details[name])
                 for name, total in totals.items()), key=lambda op: -op.total_ms)


def by_kind(ops: Iterable[OpTime]) -> list[OpTime]:
  """`ops` summed by kind, largest first."""
  totals: dict[str, float] = collections.defaultdict(float)
  counts: dict[str, int] = collections.Counter()
  for op in ops:
    totals[op.kind] += op.total_ms
    counts[op.kind] += op.count
  return sorted((OpTime(kind, kind, counts[kind], total, "") for kind, total in totals.items()),
                key=lambda op: -op.total_ms)


def table(ops: list[OpTime], steps: int, top: int, with_detail: bool) -> str:
  total = sum(op.total_ms for op in ops) or 1.0
  header = "| op | kind | count/step | ms/step | share |" if with_detail else (
      "| kind | count/step | ms/step | share |")
  rows = [header, "|---" * (header.count("|") - 1) + "|"]
  for op in ops[:top]:
    cells = [op.name, op.kind] if with_detail else [op.kind]
    cells += [
        f"{op.count / steps:g}", f"{op.total_ms / steps:.3f}", f"{100 * op.total_ms / total:.1f}%"
    ]
    rows.append("| " + " | ".join(cells) + " |")
  rows.append(f"\nall ops: {total / steps:.3f} ms/step over {steps} steps")
  return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("path", type=pathlib.Path, help="a trace.json.gz or a profile directory")
  parser.add_argument("--steps", type=int, required=True,
                      help="steps in the profiled window (config.train.profile_steps)")
  parser.add_argument("--device", default="/device:GPU:0", help="process name to read")
  parser.add_argument("--top", type=int, default=25)
  parser.add_argument("--json", type=pathlib.Path, help="also write the op times here")
  args = parser.parse_args(argv)
  if args.steps < 1:
    parser.error("--steps must be >= 1")
  trace_path = find_trace(args.path)
  with gzip.open(trace_path, "rt") as f:
    trace = json.load(f)
  ops = top_ops(device_op_events(trace, args.device))
  print(f"{trace_path}: {len(ops)} distinct ops on {args.device}\n")
  print(table(ops, args.steps, args.top, with_detail=True) + "\n")
  print(table(by_kind(ops), args.steps, args.top, with_detail=False))
  details = [op for op in ops[:10] if op.detail]
  if details:
    print("\nThe top ops' HLO:")
    for op in details:
      print(f"- {op.name}: {op.detail[:300]}")
  if args.json:
    args.json.write_text(json.dumps([op._asdict() for op in ops], indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
