"""The fused Pallas selective scan against a float64 `lax.scan` reference: y and all gradients.

The ad-hoc check of the kernel's first GPU run (results/h100/pallas_first_run/, kept as it ran;
tests/test_pallas_scan.py is the maintained check). From the repository root, on a GPU:
    JAX_PLATFORMS=cuda python scripts/experiments/pallas_kernel_vs_float64.py
"""
import time
import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
from ms_ssm_jax import pallas_scan as ps  # noqa: E402 (after enabling float64)


def ref(u, delta, a, b=None, c=None, bch=None, cch=None, reverse=False):
  B, L, G, H = u.shape
  N = a.shape[-1]
  bch = jnp.ones_like(a) if bch is None else bch
  cch = jnp.ones_like(a) if cch is None else cch
  bt = jnp.ones((B, L, G, N), u.dtype) if b is None else b
  ct = jnp.ones((B, L, G, N), u.dtype) if c is None else c

  def step(x, inp):
    u_t, d_t, b_t, c_t = inp
    x = jnp.exp(d_t[..., None] * a) * x + (d_t * u_t)[..., None] * b_t[:, :, None, :] * bch
    return x, jnp.sum(x * c_t[:, :, None, :] * cch, -1)

  xs = tuple(jnp.moveaxis(v, 1, 0) for v in (u, delta, bt, ct))
  _, y = jax.lax.scan(step, jnp.zeros((B, G, H, N), u.dtype), xs, reverse=reverse)
  return jnp.moveaxis(y, 0, 1)


rng = np.random.default_rng(0)
B, L, G, H, N = 2, 13, 3, 5, 6
u = rng.normal(size=(B, L, G, H))
delta = np.exp(rng.uniform(-3, 0, size=(B, L, G, H)))
a = -np.exp(rng.uniform(-1, 1, size=(G, H, N)))
b = rng.normal(size=(B, L, G, N))
c = rng.normal(size=(B, L, G, N))
bch = rng.normal(size=(G, H, N))
cch = rng.normal(size=(G, H, N))
for rev in (False, True):
  t = time.time()
  y = ps.selective_scan(u, delta, a, b=b, c=c, b_channel=bch, c_channel=cch, reverse=rev, chunk=4,
                        block_channels=2)
  yr = ref(u, delta, a, b, c, bch, cch, reverse=rev)
  print(rev, np.abs(y - yr).max(), np.abs(yr).max(), time.time() - t)
  w = rng.normal(size=y.shape)
  f = lambda *args: jnp.sum(w * ps.selective_scan(*args[:3], b=args[3], c=args[4], b_channel=args[
      5], c_channel=args[6], reverse=rev, chunk=4, block_channels=2))
  fr = lambda *args: jnp.sum(w * ref(*args, reverse=rev))
  args = (u, delta, a, b, c, bch, cch)
  g = jax.grad(f, argnums=tuple(range(7)))(*args)
  gr = jax.grad(fr, argnums=tuple(range(7)))(*args)
  for name, x, xr in zip("u delta a b c bch cch".split(), g, gr):
    print(name, np.abs(x - xr).max() / np.abs(xr).max())
