"""Runs a discretized diagonal SSM: the one evaluation path of every layer in the package.

Every layer (S4D, S5, LRU, S6, the MS-SSM streams) builds its discretized system from its
parameters and calls `evaluate`; only this module imports the implementations (`scan`,
`pallas_scan`, `pallas_recurrence`, `fft_conv`). Inputs are `u` `(B, L, H, G)`: H channels in G
groups (the MS-SSM streams; G = 1 for a plain layer), outputs `(B, L, H, G)`. Three kinds of
system:

    Siso       x_t = a_bar * x_{t-1} + b_bar u_t        a_bar, b_bar, c: (H, G, n)
               y_t = s Re(c . x_t)                      (n states per channel and group)
    Mimo       x_t = a_bar * x_{t-1} + b_bar u_t        a_bar (G, n), b_bar (G, n, H)
               y_t = s Re(c x_t)                        c (G, H, n): states shared by a group
    Selective  x_t = exp(step_t a) x_{t-1} + step_t b_t u_t    a (H, G, N); step_t (H, G);
               y_t = c_t . x_t                                 b_t, c_t (G, N) per step (S6)

`s` is 2 when each complex state stands for a conjugate pair, else 1 (real states: no `Re`).
A system with a reverse readout `c_reverse` is bidirectional: a second recurrence runs from the
last step to the first over the inputs zeroed beyond `lengths` (so that padding never reaches a
valid step) with the same coefficients, and the two readouts are added.

Implementations (`impl`, the layers' field; `IMPLS`):
  scan     one associative scan over all L steps (`scan.linear_recurrence`): memory B L P.
  chunked  associative scans over chunks of `chunk_size` steps, each chunk's states read out
           and recomputed in the backward pass (`scan.chunked_linear_recurrence`): memory B T P.
  pallas   real per-channel states (real Siso with `log_a_bar`, Selective): the fused kernel
           (`pallas_scan.selective_scan`) discretizes, recurs and reads out on chip, no per-step
           state in memory. Mimo: the complex recurrence kernel (`pallas_recurrence`, real
           pairs), with the input and readout as real matmuls around it: memory B L P.
  conv     FFT convolutions with the kernels `c diag(a_bar^l) b_bar` (`fft_conv`); no states;
           time-invariant systems only.
  auto     `pallas` on GPU and TPU backends where the system allows it, else `chunked`
           (the choice is logged once per layer and backend).
`check_impl` is the one validation of the choice; its errors name the choices of the layer.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp

from ms_ssm_jax import fft_conv
from ms_ssm_jax import pallas_recurrence
from ms_ssm_jax import pallas_scan
from ms_ssm_jax import scan
from ms_ssm_jax import target
from ms_ssm_jax.ssm import common
from ms_ssm_jax.ssm.discretize import discretize

Array = jax.Array
PyTree = Any

IMPLS: tuple[str, ...] = ("auto", "scan", "chunked", "pallas", "conv")
# T of `chunked`: 128 steps keep B T P states per layer small at the paper's sizes and the
# `lax.scan` over chunks short (docs/PAPER.md, "Memory").
DEFAULT_CHUNK_SIZE = 128
_PALLAS_BACKENDS: tuple[str, ...] = ("gpu", "tpu")


def _real_output(y: Array, scale: float) -> Array:
  """`scale Re(y)` for complex readouts (or kernels); real ones are returned as they are."""
  return scale * y.real if jnp.iscomplexobj(y) else y


@dataclasses.dataclass(frozen=True)
class Siso:
  """A time-invariant system with n states per channel and group.

  Attributes:
    a_bar: `(H, G, n)` discrete decays, real or complex.
    b_bar: `(H, G, n)` input scales.
    c: `(H, G, n)` readout.
    c_reverse: the reverse recurrence's readout, same shape, or None (causal).
    readout_scale: s in `y = s Re(c . x)` (complex states).
    log_a_bar: `(H, G, n)` real `Delta A` with `a_bar = exp(log_a_bar)`, which the fused
      kernel takes, or None (complex states, or discretized otherwise).
  """
  a_bar: Array
  b_bar: Array
  c: Array
  c_reverse: Array | None = None
  readout_scale: float = 1.0
  log_a_bar: Array | None = None

  time_invariant = True

  @property
  def fusable(self) -> bool:
    return self.log_a_bar is not None and self.readout_scale == 1.0

  def inputs(self, u: Array) -> PyTree:
    return {"u": u}

  def coefficients(self, xs: PyTree) -> tuple[Array, Array]:
    """`(a (P,), b (B, T, P))`, `P = H G n` channel-major."""
    b = xs["u"][..., None] * self.b_bar
    return self.a_bar.reshape(-1), b.reshape(b.shape[:2] + (-1,))

  def readout(self, states: Array, xs: PyTree, *, reverse: bool) -> Array:
    del xs
    c = self.c_reverse if reverse else self.c
    y = jnp.einsum("bthgn,hgn->bthg", states.reshape(states.shape[:2] + c.shape), c)
    return _real_output(y, self.readout_scale)

  def fused(self, xs: PyTree, *, reverse: bool) -> Array:
    per_group = lambda x: jnp.swapaxes(x, 0, 1)  # (H, G, n) -> the kernel's (G, H, n)
    y = pallas_scan.selective_scan(
        jnp.swapaxes(xs["u"], 2, 3),
        None,
        per_group(self.log_a_bar),  # steps of 1: Delta A
        b_channel=per_group(self.b_bar),
        c_channel=per_group(self.c_reverse if reverse else self.c),
        reverse=reverse)
    return jnp.swapaxes(y, 2, 3)

  def kernel(self, length: int, *, reverse: bool) -> Array:
    """Real per-channel kernels `(H, G, length)`."""
    c = self.c_reverse if reverse else self.c
    return _real_output(fft_conv.siso_kernel(self.a_bar, self.b_bar, c, length), self.readout_scale)

  def convolve(self, u: Array, *, reverse: bool) -> Array:
    conv = fft_conv.anticausal_conv if reverse else fft_conv.causal_conv
    return conv(u, self.kernel(u.shape[1], reverse=reverse))


@dataclasses.dataclass(frozen=True)
class Mimo:
  """A time-invariant system whose n states per group are shared by the group's H channels.

  Attributes:
    a_bar: `(G, n)` discrete decays (complex).
    b_bar: `(G, n, H)` input matrices.
    c: `(G, H, n)` readouts.
    c_reverse: the reverse recurrence's readouts, same shape, or None (causal).
    readout_scale: s in `y = s Re(c x)`.
  """
  a_bar: Array
  b_bar: Array
  c: Array
  c_reverse: Array | None = None
  readout_scale: float = 1.0

  time_invariant = True
  fusable = True

  def inputs(self, u: Array) -> PyTree:
    return {"u": u}

  def coefficients(self, xs: PyTree) -> tuple[Array, Array]:
    """`(a (P,), b (B, T, P))`, `P = G n` group-major."""
    b = jnp.einsum("bthg,gnh->btgn", xs["u"], self.b_bar)
    return self.a_bar.reshape(-1), b.reshape(b.shape[:2] + (-1,))

  def readout(self, states: Array, xs: PyTree, *, reverse: bool) -> Array:
    del xs
    c = self.c_reverse if reverse else self.c
    y = jnp.einsum("btgn,ghn->bthg", states.reshape(states.shape[:2] + self.a_bar.shape), c)
    return _real_output(y, self.readout_scale)

  def fused(self, xs: PyTree, *, reverse: bool) -> Array:
    """The recurrence in real pairs (`pallas_recurrence`): inputs and readout as real matmuls."""
    pairs = lambda z: jnp.stack([z.real, z.imag])
    b = jnp.einsum("bthg,cgnh->bctgn", xs["u"], pairs(self.b_bar))  # (B, 2, T, G, n)
    x = pallas_recurrence.linear_recurrence(
        pairs(self.a_bar).reshape(2, -1), b.reshape(b.shape[:3] + (-1,)), reverse=reverse)
    c = self.c_reverse if reverse else self.c
    c_pairs = jnp.stack([c.real, -c.imag])  # Re(c x) = c_re x_re - c_im x_im
    y = jnp.einsum("bctgn,cghn->bthg", x.reshape(b.shape), c_pairs)
    return self.readout_scale * y

  def kernel(self, length: int, *, reverse: bool) -> Array:
    """Real MIMO kernels `(G, length, H, H)`."""
    c = self.c_reverse if reverse else self.c
    kernels = jax.vmap(functools.partial(fft_conv.mimo_kernel, length=length))(self.a_bar,
                                                                               self.b_bar, c)
    return _real_output(kernels, self.readout_scale)

  def convolve(self, u: Array, *, reverse: bool) -> Array:
    conv = fft_conv.anticausal_conv_mimo if reverse else fft_conv.causal_conv_mimo
    return jax.vmap(conv, in_axes=(3, 0), out_axes=3)(u, self.kernel(u.shape[1], reverse=reverse))


@dataclasses.dataclass(frozen=True)
class Selective:
  """S6: decay, input and readout per step, with Mamba's discretization (`euler_b`).

  Attributes:
    a: `(H, G, N)` continuous-time eigenvalues (negative).
    step: `(B, L, H, G)` positive steps Delta_t.
    b: `(B, L, G, N)` input projections B_t, shared by a group's channels.
    c: `(B, L, G, N)` readouts C_t.
    c_reverse: the reverse recurrence's readouts, same shape, or None (causal).
  """
  a: Array
  step: Array
  b: Array
  c: Array
  c_reverse: Array | None = None

  time_invariant = False
  fusable = True

  def inputs(self, u: Array) -> PyTree:
    xs = {"u": u, "step": self.step, "b": self.b, "c": self.c}
    if self.c_reverse is not None:
      xs["c_reverse"] = self.c_reverse
    return xs

  def coefficients(self, xs: PyTree) -> tuple[Array, Array]:
    """`(a (B, T, P), b (B, T, P))`, `P = H G N` channel-major."""
    a_bar, b_scale = discretize(self.a, xs["step"][..., None], "euler_b")  # (B, T, H, G, N)
    b = b_scale * xs["b"][:, :, None] * xs["u"][..., None]
    flat = a_bar.shape[:2] + (-1,)
    return a_bar.reshape(flat), b.reshape(flat)

  def readout(self, states: Array, xs: PyTree, *, reverse: bool) -> Array:
    c = xs["c_reverse" if reverse else "c"]
    return jnp.einsum("bthgn,btgn->bthg", states.reshape(states.shape[:2] + self.a.shape), c)

  def fused(self, xs: PyTree, *, reverse: bool) -> Array:
    to_kernel = lambda x: jnp.swapaxes(x, 2, 3)  # (B, L, H, G) <-> (B, L, G, H)
    y = pallas_scan.selective_scan(to_kernel(xs["u"]), to_kernel(xs["step"]),
                                   jnp.swapaxes(self.a, 0, 1), b=xs["b"],
                                   c=xs["c_reverse" if reverse else "c"], reverse=reverse)
    return to_kernel(y)


System = Siso | Mimo | Selective


def supported_impls(*, time_invariant: bool, fusable: bool) -> tuple[str, ...]:
  """The `impl` choices of a system: `conv` needs time invariance, `pallas` a kernel."""
  return tuple(impl for impl in IMPLS
               if (impl != "conv" or time_invariant) and (impl != "pallas" or fusable))


def check_impl(impl: str, chunk_size: int = DEFAULT_CHUNK_SIZE, *, time_invariant: bool,
               fusable: bool, layer: str) -> None:
  """Raises a one-line ValueError naming `layer`'s valid choices when it cannot run `impl`."""
  choices = supported_impls(time_invariant=time_invariant, fusable=fusable)
  if impl not in choices:
    why = ""
    if impl == "conv":
      why = " (a selective system has no convolution form)"
    elif impl == "pallas":
      why = " (the kernels run real per-channel states and MIMO complex ones only)"
    raise ValueError(f"impl={impl!r} is not supported by {layer}{why}; choose one of "
                     f"{', '.join(choices)}")
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1 (steps per chunk of impl='chunked'); got "
                     f"{chunk_size}")


def resolve_impl(impl: str, *, fusable: bool, layer: str) -> str:
  """What `impl` runs on `target.backend()`: `auto` becomes `pallas` or `chunked`."""
  if impl != "auto":
    return impl
  return _auto_impl(target.backend(), fusable, layer)


@functools.cache
def _auto_impl(backend: str, fusable: bool, layer: str) -> str:
  chosen = "pallas" if backend in _PALLAS_BACKENDS and fusable else "chunked"
  logging.info("impl='auto' runs %s for %s on the %s backend", chosen, layer, backend)
  return chosen


def _one_direction(system: System, xs: PyTree, *, impl: str, chunk_size: int,
                   reverse: bool) -> Array:
  if impl == "conv":
    return system.convolve(xs["u"], reverse=reverse)
  if impl == "pallas":
    return system.fused(xs, reverse=reverse)
  readout: Callable[[Array, PyTree], Array] = functools.partial(system.readout, reverse=reverse)
  if impl == "chunked":
    outputs, _ = scan.chunked_linear_recurrence(system.coefficients, readout, xs,
                                                chunk_size=chunk_size, reverse=reverse)
    return outputs
  a, b = system.coefficients(xs)
  return readout(scan.linear_recurrence(a, b, reverse=reverse), xs)


def evaluate(system: System, u: Array, *, impl: str, chunk_size: int = DEFAULT_CHUNK_SIZE,
             lengths: Array | None = None, layer: str = "the layer") -> Array:
  """The outputs `(B, L, H, G)` of `system` driven by `u` `(B, L, H, G)`.

  Args:
    system: the discretized system.
    u: inputs.
    impl: one of `IMPLS` that the system supports (`check_impl`).
    chunk_size: T of `impl="chunked"` (and of `auto` where it runs chunked).
    lengths: `(B,)` valid lengths for the reverse recurrence, or None (all L steps valid).
    layer: the layer's name for errors and the log of `auto`'s choice.

  Returns:
    `(B, L, H, G)` in the state dtype (u's promoted with the system's, at least float32).
  """
  check_impl(impl, chunk_size, time_invariant=system.time_invariant, fusable=system.fusable,
             layer=layer)
  if u.ndim != 4:
    raise ValueError(f"u must have shape (B, L, H, G); got {u.shape}")
  impl = resolve_impl(impl, fusable=system.fusable, layer=layer)
  run = functools.partial(_one_direction, system, impl=impl, chunk_size=chunk_size)
  y = run(system.inputs(u), reverse=False)
  if system.c_reverse is not None:
    y = y + run(system.inputs(common.zero_beyond_lengths(u, lengths)), reverse=True)
  return y
