"""Compile a config's train step for a GPU this machine does not have; report memory and traffic.

XLA compiles for a GPU described by a target config (`scripts/gpu_targets/<target>.txtpb`)
without the device: the layers trace their GPU paths (`ms_ssm_jax.target.compiling_for`), the
Pallas kernels lower to Triton, and XLA plans the step's buffers and fusions as on the device.
Per config it prints the compile time, XLA's memory plan (arguments, temporaries, outputs: does
the step fit the card?) and the bytes the step's ops move (`hlo_census.py`: by op category and
by model part, and that total over the card's bandwidth, a floor on a memory-bound step).
Use it before spending GPU time: whether a size fits without remat, which ops grow when a layer
changes. The plan is this JAX version's; the device may run another (RESULTS say which).

It needs JAX's CUDA compiler plugin at this machine's JAX version and nothing else of CUDA;
`scripts/setup_cuda_plugin.sh` installs it into .cuda_plugin (kept out of .venv):

    bash scripts/setup_cuda_plugin.sh
    PYTHONPATH=.cuda_plugin python scripts/train_compile.py --configs configs/listops.py:ms_ssm_s6 \
        --set train.remat=False
    PYTHONPATH=.cuda_plugin python scripts/train_compile.py \
        --configs configs/listops.py:s5,configs/listops.py:ms_ssm,size=s5 --hlo_dir /tmp/hlo

XLA 0.10.2 compiling without a device fails to tile some small matrix products for Triton
("Couldn't find output tile sizes", e.g. the default task's); `XLA_FLAGS=
--xla_gpu_enable_triton_gemm=false` compiles them with cuBLAS instead (other fusions then).

Results also go to results/train_compile.json (or $BENCH_RESULTS_DIR).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys
import time

# The CUDA plugin must not look for a GPU: the compile runs on the CPU client.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
from jax.experimental import topologies  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_common  # noqa: E402
import bench_train  # noqa: E402
import hlo_census  # noqa: E402
from ms_ssm_jax import target  # noqa: E402

TARGETS_DIR = pathlib.Path(__file__).parent / "gpu_targets"
GIB = 2**30


def gpu_topology(target_name: str) -> tuple[list[jax.Device], dict[str, float]]:
  """A compile-only device of one GPU, and the card's memory and bandwidth."""
  path = TARGETS_DIR / f"{target_name}.txtpb"
  if not path.exists():
    known = ", ".join(sorted(p.stem for p in TARGETS_DIR.glob("*.txtpb")))
    raise SystemExit(f"no GPU target {target_name!r}; known: {known} ({TARGETS_DIR})")
  text = path.read_text()
  try:
    topology = topologies.get_topology_desc("train_compile", "cuda", target_config=text,
                                            topology="1x1x1")
  except Exception as e:  # noqa: BLE001 - the plugin's absence surfaces as one of several errors
    raise SystemExit(
        f"cannot compile for CUDA here ({type(e).__name__}: {str(e)[:200]}); run "
        "bash scripts/setup_cuda_plugin.sh and put .cuda_plugin on PYTHONPATH") from None
  card = {
      key: float(re.search(rf"{key}: (\d+)", text).group(1))
      for key in ("device_memory_size", "memory_bandwidth")
  }
  return list(topology.devices), card


def compile_config(name: str, config, devices: list[jax.Device], card: dict[str, float],
                   hlo_dir: pathlib.Path | None, top: int) -> dict:
  """One config's row: compile time, memory plan and census totals (tables printed)."""
  with target.compiling_for("gpu"):
    step = bench_train.build_step(config, devices)
    state_shapes, batch = bench_train.abstract_inputs(step)
    start = time.perf_counter()
    compiled = step.step_fn.lower(state_shapes, batch).compile()
    compile_s = time.perf_counter() - start
  memory = compiled.memory_analysis()
  text = compiled.as_text()
  if hlo_dir is not None:
    hlo_dir.mkdir(parents=True, exist_ok=True)
    (hlo_dir / (re.sub(r"[^\w.=-]+", "_", name) + ".hlo.txt")).write_text(text)
  rows = hlo_census.census(text)
  print(f"\n## {name}\n\n{hlo_census.table(rows, 'category', top)}\n\n"
        f"{hlo_census.table(rows, 'part', top)}\n")
  traffic = sum(row.bytes for row in rows)
  total = (memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes -
           memory.alias_size_in_bytes)
  return {
      **bench_train.describe(name, config, step, state_shapes.params), "compile_s": compile_s,
      "args_GiB": memory.argument_size_in_bytes / GIB, "temp_GiB": memory.temp_size_in_bytes / GIB,
      "total_GiB": total / GIB, "card_GiB": card["device_memory_size"] / GIB,
      "traffic_GB": traffic / 1e9, "floor_ms": traffic / card["memory_bandwidth"] * 1e3
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--configs", required=True, help="comma-separated path[:arg] list")
  parser.add_argument("--set", action="append", default=[],
                      help="override for every config, e.g. train.remat=False")
  parser.add_argument("--target", default="h100", help="scripts/gpu_targets/<target>.txtpb")
  parser.add_argument("--top", type=int, default=12, help="census rows per table")
  parser.add_argument("--hlo_dir", type=pathlib.Path, help="write each compiled program here")
  parser.add_argument("--output_name", default="train_compile")
  args = parser.parse_args()
  devices, card = gpu_topology(args.target)
  overrides = dict(item.split("=", 1) for item in args.set)
  print(f"target: {args.target} ({devices[0].device_kind}), compiled on "
        f"{bench_common.device_description()}, jax {jax.__version__}")
  log = bench_common.RowLog(args.output_name, vars(args) | {"hlo_dir": str(args.hlo_dir)})
  for name in bench_train.split_configs(args.configs):
    config = bench_train.load_config(name)
    bench_train.apply_overrides(config, overrides)
    log.add(compile_config(name, config, devices, card, args.hlo_dir, args.top))
  columns = [
      "config", "params", "batch", "L", "compile_s", "args_GiB", "temp_GiB", "total_GiB",
      "card_GiB", "traffic_GB", "floor_ms"
  ]
  print(bench_common.markdown_table(log.rows, columns))
  print("wrote", log.path)


if __name__ == "__main__":
  main()
