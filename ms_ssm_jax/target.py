"""The backend a model is traced for: JAX's default one, or the target of an ahead-of-time
compile.

The layers pick their evaluation path by backend (`impl="auto"`, the Pallas kernels' block
shapes, compiled or interpreted kernels). Tracing for a device this process does not have, e.g.
compiling the train step for an H100 on a CPU-only machine (`scripts/train_compile.py`), sets
the target with `compiling_for("gpu")` so that the layers trace the GPU's paths.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import jax

PLATFORMS: tuple[str, ...] = ("cpu", "gpu", "tpu")

_TARGET: contextvars.ContextVar[str | None] = contextvars.ContextVar("target_backend", default=None)


def backend() -> str:
  """`cpu`, `gpu` or `tpu`: the `compiling_for` target if one is set, else JAX's default."""
  return _TARGET.get() or jax.default_backend()


@contextlib.contextmanager
def compiling_for(platform: str) -> Iterator[None]:
  """Traces inside the block as for `platform` (one of `PLATFORMS`)."""
  if platform not in PLATFORMS:
    raise ValueError(f"unknown platform {platform!r}; choose one of {', '.join(PLATFORMS)}")
  token = _TARGET.set(platform)
  try:
    yield
  finally:
    _TARGET.reset(token)
