"""Timing and memory helpers shared by the benchmark scripts (not imported by the package)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

from ms_ssm_jax.provenance import device_description


@dataclasses.dataclass
class Timing:
  median_ms: float
  min_ms: float
  repeats: int
  temp_bytes: int | None  # XLA's compiled temp allocation
  peak_bytes: int | None  # device allocator peak during the timed calls (GPU/TPU only)
  flops: float | None  # XLA's cost analysis of the compiled program (device-independent count)
  bytes_accessed: float | None  # the same analysis's memory traffic estimate


def _peak_bytes() -> int | None:
  stats = jax.devices()[0].memory_stats()
  return None if not stats else stats.get("peak_bytes_in_use")


def _reset_peak() -> None:
  # Not all backends can reset the peak counter; where they cannot, the reported peak is the
  # process-wide maximum and is labelled as such by the callers.
  device = jax.devices()[0]
  reset = getattr(device, "reset_memory_stats", None)
  if reset is not None:
    try:
      reset()
    except Exception:  # noqa: BLE001 - backend-specific; the peak then covers the process.
      pass


def cost_analysis(compiled: Any) -> dict[str, float]:
  """XLA's cost analysis (flops, bytes accessed); empty where the backend gives none."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # one entry per program in older JAX versions
    cost = cost[0] if cost else None
  return dict(cost or {})


def time_fn(fn: Callable[..., Any], *args: Any, repeats: int = 20, warmup: int = 3) -> Timing:
  """Median wall time of `fn(*args)` after compilation and warm-up, with memory figures."""
  jitted = jax.jit(fn)
  compiled = jitted.lower(*args).compile()
  analysis = compiled.memory_analysis()
  temp = getattr(analysis, "temp_size_in_bytes", None) if analysis is not None else None
  cost = cost_analysis(compiled)
  for _ in range(warmup):
    jax.block_until_ready(compiled(*args))
  _reset_peak()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append((time.perf_counter() - start) * 1e3)
  return Timing(statistics.median(times), min(times), repeats, temp, _peak_bytes(),
                cost.get("flops"), cost.get("bytes accessed"))


def copy_bandwidth_gbs(num_bytes: int = 1 << 30) -> float:
  """Device copy bandwidth (bytes read + written per second, in GB/s) of an elementwise op."""
  x = jnp.ones((num_bytes // 4,), jnp.float32)
  timing = time_fn(lambda v: v * 1.0001, x, repeats=20)
  return 2 * num_bytes / (timing.median_ms * 1e-3) / 1e9


def write_results(name: str, rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
  """Writes `results/<name>.json` (or under $BENCH_RESULTS_DIR) and returns the path."""
  folder = os.environ.get("BENCH_RESULTS_DIR", "results")
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, f"{name}.json")
  meta = dict(meta, device=device_description(), jax=jax.__version__,
              python=platform.python_version(), date=time.strftime("%Y-%m-%d"))
  with open(path, "w") as f:
    json.dump({"meta": meta, "rows": rows}, f, indent=1)
  return path


class RowLog:
  """The rows of one benchmark run. Each added row is printed as a one-row table and the whole
  JSON (`write_results(name, rows, meta)`) rewritten, so a run stopped by a time limit keeps
  the rows it finished."""

  def __init__(self, name: str, meta: dict[str, Any]):
    self.name, self.meta = name, meta
    self.rows: list[dict[str, Any]] = []
    self.path: str | None = None

  def add(self, row: dict[str, Any]) -> None:
    self.rows.append(row)
    print(markdown_table([row], list(row)), flush=True)
    self.path = write_results(self.name, self.rows, self.meta)


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:

  def fmt(v: Any) -> str:
    if isinstance(v, float):
      return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"
    return "" if v is None else str(v)

  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
  return "\n".join(lines)
