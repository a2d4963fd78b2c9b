"""How long the fused MS-SSM kernel takes to compile for an H100, timed on this machine (no GPU).

The layers of `scripts/bench_fused_layer.py` (B=16, L=4,096, H=128, S=4, N=16) compiled for the
target of `scripts/train_compile.py`: the fused layer's forward and forward+backward and the
unfused path for both stream kinds, then the selective forward at other chunk lengths T (the
Triton kernel unrolls T steps of every stream). From the repository root, with the CUDA
compiler plugin (`bash scripts/setup_cuda_plugin.sh`):

    PYTHONPATH=.cuda_plugin:. python scripts/experiments/fused_compile_times.py
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bench_fused_layer  # noqa: E402
import train_compile  # noqa: E402
from ms_ssm_jax import target  # noqa: E402

# (chunk T, channels per program, warps) of the extra forward compiles; "fused fwd" is the
# default block, T=8 with 8 channels and 2 warps at this shape.
BLOCKS = ((4, 8, 2), (2, 8, 2))


def compile_seconds(fn, inputs) -> tuple[float, float]:
  """`(compile s, temp GiB)` of `jax.jit(fn)` for the GPU target."""
  with target.compiling_for("gpu"):
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(inputs).compile()
  return time.perf_counter() - start, compiled.memory_analysis().temp_size_in_bytes / 2**30


def main() -> None:
  devices, _ = train_compile.gpu_topology("h100")
  sharding = jax.sharding.SingleDeviceSharding(devices[0])
  print(f"target: {devices[0].device_kind}, jax {jax.__version__}")
  for selective in (True, False):
    kind = "s6" if selective else "s4d_real"
    inputs = bench_fused_layer.layer_inputs(jax.random.key(0), 16, 4096, 128, 4, 4, 16, selective)
    inputs = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                          inputs)
    variants = {
        "fused fwd": bench_fused_layer.fused,
        "fused fwd+bwd": bench_fused_layer.value_and_grads(bench_fused_layer.fused),
        "unfused fwd+bwd": bench_fused_layer.value_and_grads(bench_fused_layer.unfused),
    }
    if selective:
      for chunk, channels, warps in BLOCKS:
        variants[f"fused fwd, T={chunk} H_blk={channels} warps={warps}"] = (
            lambda i, c=chunk, h=channels, w=warps: bench_fused_layer.fused(i, c, h, w))
    for name, fn in variants.items():
      seconds, temp = compile_seconds(fn, inputs)
      print(f"{kind} {name}: compile {seconds:.1f} s, temp {temp:.2f} GiB", flush=True)


if __name__ == "__main__":
  main()
