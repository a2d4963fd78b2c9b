"""Where a profiled train step spends its GPU time: the top kernels of a `jax.profiler` trace.

    python train.py ... --config.train.profile_steps=5 --workdir=W
    python scripts/profile_top_ops.py W/profile --steps 5 [--top 25] [--json ops.json]
    python scripts/profile_top_ops.py ops.json --steps 5   # the tables again from a saved list

Reads the Chrome-format trace (`*.trace.json.gz`) that `jax.profiler` writes beside its xplane,
takes the kernels on the device's `Stream #...` lines (the plane `/device:GPU:0`; XLA fusions
by their fusion name, library kernels such as cuFFT's and cuBLAS's by theirs), and prints two
markdown tables: the kernels by total time (count and ms per step), and the same times summed
by kind (the name without its `_N` suffix or template arguments, e.g. `loop_transpose_fusion`,
`vector_fft_symm_c2r`). `--steps` is the number of steps in the window
(`config.train.profile_steps`), so that "ms/step" compares with `scripts/bench_train.py`'s step
times (kernel time only: gaps between kernels are not counted).
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

import bench_common  # scripts/ is on the path when this runs as a script

KERNEL_THREAD_PREFIX = "Stream"  # a GPU plane's lines of kernels, one per CUDA stream


class OpTime(NamedTuple):
  """One op's (or one kind's) share of the profiled window."""
  name: str
  kind: str
  count: int
  total_ms: float
  detail: str  # the kernel's launch details (grid, registers) where the trace has them, else ""


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
  """A kernel's kind: `loop_transpose_fusion_12` -> `loop_transpose_fusion`, a templated CUDA
  kernel `void vector_fft_symm_c2r<4096u, ...>(...)` -> `vector_fft_symm_c2r`."""
  name = re.sub(r"^void ", "", name)
  name = re.split(r"[<(]", name, maxsplit=1)[0]
  return re.sub(r"[._]\d+$", "", name)


def short(name: str, width: int = 70) -> str:
  """`name` cut to `width` characters for a table cell."""
  return name if len(name) <= width else name[:width - 3] + "..."


def device_op_events(trace: dict[str, Any], device: str) -> list[dict[str, Any]]:
  """The kernels ('X' events on the `Stream #...` lines) of every process named like `device`."""
  events = trace["traceEvents"]
  names = {
      e["pid"]: e["args"]["name"]
      for e in events
      if e.get("ph") == "M" and e.get("name") == "process_name"
  }
  pids = {pid for pid, name in names.items() if device in name}
  if not pids:
    raise ValueError(f"no process named like {device!r} in the trace; it has: "
                     f"{sorted(names.values())}")
  threads = {(e["pid"], e["tid"])
             for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name" and e["pid"] in pids and
             e["args"]["name"].startswith(KERNEL_THREAD_PREFIX)}
  if not threads:
    raise ValueError(f"the {device!r} process has no {KERNEL_THREAD_PREFIX!r} lines of kernels; "
                     "is this a GPU run's trace?")
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
    details.setdefault(event["name"], str(args.get("kernel_details", "")))
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


def table(ops: list[OpTime], steps: int, top: int, by_name: bool) -> str:
  """The first `top` of `ops` per step, with their share of all ops' time; `by_name` adds the
  op name before its kind."""
  total = sum(op.total_ms for op in ops) or 1.0
  columns = (["op"] if by_name else []) + ["kind", "count/step", "ms/step", "share"]
  rows = [{
      "op": short(op.name), "kind": short(op.kind), "count/step": f"{op.count / steps:g}",
      "ms/step": f"{op.total_ms / steps:.3f}", "share": f"{100 * op.total_ms / total:.1f}%"
  } for op in ops[:top]]
  return (bench_common.markdown_table(rows, columns) +
          f"\n\nall ops: {total / steps:.3f} ms/step over {steps} steps")


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("path", type=pathlib.Path,
                      help="a trace.json.gz, a profile directory, or an op list from --json")
  parser.add_argument("--steps", type=int, required=True,
                      help="steps in the profiled window (config.train.profile_steps)")
  parser.add_argument("--device", default="/device:GPU:0", help="process name to read")
  parser.add_argument("--top", type=int, default=25)
  parser.add_argument("--json", type=pathlib.Path, help="also write the op times here")
  args = parser.parse_args(argv)
  if args.steps < 1:
    parser.error("--steps must be >= 1")
  if args.path.suffix == ".json":  # an op list this script wrote with --json
    ops = [
        OpTime(**{**op, "kind": op_kind(op["name"])}) for op in json.loads(args.path.read_text())
    ]
    print(f"{args.path}: {len(ops)} distinct ops\n")
  else:
    trace_path = find_trace(args.path)
    with gzip.open(trace_path, "rt") as f:
      trace = json.load(f)
    ops = top_ops(device_op_events(trace, args.device))
    print(f"{trace_path}: {len(ops)} distinct ops on {args.device}\n")
  print(table(ops, args.steps, args.top, by_name=True) + "\n")
  print(table(by_kind(ops), args.steps, args.top, by_name=False))
  details = [op for op in ops[:10] if op.detail]
  if details:
    print("\nThe top kernels' launch details:")
    for op in details:
      print(f"- {op.name}: {op.detail[:300]}")
  if args.json:
    args.json.write_text(json.dumps([op._asdict() for op in ops], indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
