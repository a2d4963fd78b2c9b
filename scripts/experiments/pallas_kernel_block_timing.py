"""Forward and forward+backward time of the fused Pallas scan for a few block shapes.

The ad-hoc timing of the kernel's first GPU run (results/h100/pallas_first_run/, kept as it
ran; `scripts/bench_layers.py --section kernels` is the maintained benchmark). From the
repository root, on a GPU:
    python scripts/experiments/pallas_kernel_block_timing.py
"""
import time
import jax
import jax.numpy as jnp
import numpy as np
from ms_ssm_jax import pallas_scan as ps

print(jax.devices(), jax.__version__)


def timeit(f, *args, n=10):
  out = f(*args)
  jax.block_until_ready(out)
  ts = []
  for _ in range(n):
    t = time.perf_counter()
    jax.block_until_ready(f(*args))
    ts.append(time.perf_counter() - t)
  return np.median(ts) * 1e3


B, L, G, H = 50, 2048, 5, 128
for N in (16, 128):
  k = jax.random.split(jax.random.PRNGKey(0), 6)
  u = jax.random.normal(k[0], (B, L, G, H))
  delta = jnp.exp(jax.random.uniform(k[1], (B, L, G, H), minval=-5, maxval=-1))
  a = -jnp.arange(1, N + 1, dtype=jnp.float32) * jnp.ones((G, H, 1))
  b = jax.random.normal(k[2], (B, L, G, N))
  c = jax.random.normal(k[3], (B, L, G, N))
  for chunk, hb, nw in [(None, None, 4), (16, 32, 4), (8, 32, 4), (16, 16, 2), (8, 8, 4),
                        (16, 64, 4), (8, 16, 4)]:
    try:
      fwd = jax.jit(lambda u, d, a, b, c: ps.selective_scan(u, d, a, b=b, c=c, chunk=chunk,
                                                            block_channels=hb, num_warps=nw))
      loss = jax.jit(
          jax.grad(
              lambda u, d, a, b, c: jnp.sum(
                  ps.selective_scan(u, d, a, b=b, c=c, chunk=chunk, block_channels=hb, num_warps=nw)
                  **2), argnums=(0, 1, 2, 3, 4)))
      tf = timeit(fwd, u, delta, a, b, c)
      tb = timeit(loss, u, delta, a, b, c)
      print(f"N={N} chunk={chunk} hb={hb} warps={nw}: fwd {tf:.2f} ms, fwd+bwd {tb:.2f} ms",
            flush=True)
    except Exception as e:
      print(f"N={N} chunk={chunk} hb={hb}: FAILED {type(e).__name__}: {str(e)[:1500]}", flush=True)
