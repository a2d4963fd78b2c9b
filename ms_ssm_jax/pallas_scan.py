"""A fused Pallas kernel for the diagonal selective scan: discretize, recur and read out on chip.

For G groups (MS-SSM streams) of H channels, each channel with N real states:

    x_t[d, n] = exp(delta_t[d] a[d, n]) x_{t-1}[d, n] + delta_t[d] u_t[d] b_t[n] b_ch[d, n]
    y_t[d]    = sum_n c_t[n] c_ch[d, n] x_t[d, n]

where `b_t`, `c_t` are shared by the channels of a group and vary over time (S6's `B_t`, `C_t`;
1 when omitted) and `b_ch`, `c_ch` are per-channel constants. This covers the selective case
(Mamba's S6 with the Euler input term) and the time-invariant one (MS-SSM's s4d_real streams
pass no delta, which stands for steps of 1, with `a = Delta A`, `b_ch = B_bar` (ZOH) and
`c_ch = C`).

The forward kernel keeps the `(H_blk, N_blk)` states of one batch element, channel block and
state block in registers, walks the sequence in chunks of T steps (unrolled), and writes only
its states' share of `y` plus the state entering every E-th chunk. The backward kernel (a
`jax.custom_vjp`) walks segments of E chunks in reverse: it recomputes their chunk entry states
from the saved one (into a scratch output, when E > 1), then walks the chunks in reverse,
recomputes a chunk's T states from its entry state, and runs the adjoint recurrence

    g_t = exp(delta_{t+1} a) g_{t+1} + c_t c_ch dy_t

back through them, emitting gradients for `u`, `delta`, `a`, `b_t`, `c_t`, `b_ch`, `c_ch`.
Memory: the `(B, L, G, H)` inputs and outputs, the `(B, L, G, N)` projections, and
`B G H N L / (T E)` saved entry states (with E = 1, 8 GB per direction and layer of Pathfinder's
S6 step: most of its memory). Sums over a program's channels are partial sums, one per channel
block (`b_t`, `c_t` gradients: `(B, G, H / H_blk, L, N)`), which XLA adds up; where the states
take several blocks, their programs add their parts of the sums over states (`y`, `du`,
`ddelta`) into one `(B, G, L, H)` array with atomic adds (partial sums per state block were a
quarter of that step's bytes: `scripts/train_compile.py`). No per-step state reaches GPU memory.

Layout: time-major blocks `(L, H_blk)` and `(L, N_blk)`, states `(H_blk, N_blk)` with the states
on the lane axis. Splitting N over programs (`block_states` < N) gives each program fewer
registers to hold, and the grid more programs. The kernel is written with generic Pallas ops
only (ref loads and stores, `fori_loop`, elementwise math and reductions) and Triton's atomic
add where states are split; it is compiled with Triton on GPUs and interpreted on the CPU
(`interpret=True`, used by the tests). It has not been run on TPU hardware.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from ms_ssm_jax import target

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class KernelOptions:
  """Static choices of the kernels.

  Attributes:
    chunk: T, steps unrolled per chunk.
    block_channels: H_blk, channels per program (a power of 2 dividing the padded H).
    block_states: N_blk, states held at once (a power of 2 dividing the padded N).
    num_warps: Triton warps per program (GPU only).
    has_delta: whether delta is given (else 1: the time-invariant case, no ddelta).
    has_b, has_c: whether time-varying `b_t`, `c_t` are given.
    split_states: whether the states take more than one block (N_blk < Np): the programs of a
      channel block then add their states' parts of `y`, `du`, `ddelta` with atomic adds.
    checkpoint_every: E, chunks per saved state: the backward recomputes the entry states of
      E chunks at a time from one saved state.
    interpret: run the kernels in the Pallas interpreter (CPU tests).
  """
  chunk: int
  block_channels: int
  block_states: int
  num_warps: int
  has_delta: bool
  has_b: bool
  has_c: bool
  split_states: bool
  checkpoint_every: int
  interpret: bool


def next_power_of_2(n: int) -> int:
  return 1 << max(0, (n - 1).bit_length())


def default_block(num_channels: int, num_states: int,
                  backend: str | None = None) -> tuple[int, int, int]:
  """`(chunk, block_channels, block_states)` for `backend` (default: `target.backend()`).

  GPU: T = 8, 32 channels and 16 states per program (with 2 warps, the fastest or within 1% of
  the fastest block shape on an H100 at the paper's ListOps size for N = 16 and N = 128:
  results/h100/kernels_on_gpu). TPU: 128 channels and all states, the tiling Mosaic accepts.
  """
  channels, states = next_power_of_2(num_channels), next_power_of_2(num_states)
  if (backend or target.backend()) == "tpu":
    return 8, 128, states
  return 8, min(channels, 32), min(states, 16)


# ----------------------------------------------------------------------------------------------
# Kernels. Refs seen by one program (batch element, group, channel block, state block):
#   u, delta, y, du, ddelta: (Lp, Hb)      b, c, db, dc: (Lp, Nb)
#   a, b_ch, c_ch and their gradients: (Hb, Nb)      entry states: (C, Hb, Nb)
# y, du and ddelta sum over the program's Nb states only; db and dc over its Hb channels only.


def column(v: Array, shape: tuple[int, int]) -> Array:
  """`(Hb,)` -> `(Hb, Nb)`, constant along the states."""
  return jax.lax.broadcast_in_dim(v, shape, (0,))


def row(v: Array, shape: tuple[int, int]) -> Array:
  """`(Nb,)` -> `(Hb, Nb)`, constant along the channels."""
  return jax.lax.broadcast_in_dim(v, shape, (1,))


def factor(v: Array | None, shape: tuple[int, int]):
  """A step's time-varying factor (`b_t` or `c_t`) as `(Hb, Nb)`, or 1 when there is none."""
  return row(v, shape) if v is not None else 1.0


class StepInputs(NamedTuple):
  """One step's inputs: u, delta (and dy) `(Hb,)`; b_t, c_t `(Nb,)`; None where not given."""
  u: Array
  delta: Array | None
  b: Array | None
  c: Array | None
  dy: Array | None


class Coefficients(NamedTuple):
  """A state block's constants `(Hb, Nb)`: a, b_ch, c_ch, and exp(a) when there is no delta."""
  a: Array
  b_ch: Array
  c_ch: Array
  exp_a: Array | None


def coefficients(a_ref, b_ch_ref, c_ch_ref, has_delta: bool) -> Coefficients:
  a = a_ref[...]
  return Coefficients(a, b_ch_ref[...], c_ch_ref[...], None if has_delta else jnp.exp(a))


def _loader(u_ref, delta_ref, b_ref, c_ref=None, dy_ref=None):
  """`load(t)`: step t's `StepInputs` from the refs.

  The kernels load a whole chunk's steps before its math and stores: a compiler that cannot
  prove two refs disjoint keeps a load after a store to another output, so per-step loads
  would each wait out a memory round trip (not yet timed against that order on a GPU).
  """
  maybe = lambda ref, t: None if ref is None else ref[t]
  return lambda t: StepInputs(u_ref[t], maybe(delta_ref, t), maybe(b_ref, t), maybe(c_ref, t),
                              maybe(dy_ref, t))


def step_decay(step: StepInputs, coef: Coefficients) -> Array:
  """`exp(delta_t a)` `(Hb, Nb)`; `exp(a)` without delta."""
  if step.delta is None:
    return coef.exp_a
  return jnp.exp(column(step.delta, coef.a.shape) * coef.a)


def scaled_input(step: StepInputs) -> Array:
  """`delta_t u_t` `(Hb,)`; `u_t` without delta."""
  return step.u if step.delta is None else step.delta * step.u


def next_state(x: Array, step: StepInputs, coef: Coefficients) -> Array:
  """`x_t` from `x_{t-1}` (the recurrence of the module docstring)."""
  shape = coef.a.shape
  drive = column(scaled_input(step), shape) * coef.b_ch * factor(step.b, shape)
  return step_decay(step, coef) * x + drive


def div(index, divisor: int):
  """`index // divisor` for a non-negative traced index (jnp's // adds sign fix-ups)."""
  return jax.lax.div(index, jax.lax.convert_element_type(divisor, index.dtype))


def _split_refs(refs, options: KernelOptions):
  """`(u, delta, a, b_ch, c_ch, b, c)` input refs (None where not given), and the rest."""
  refs = list(refs)
  u_ref = refs.pop(0)
  delta_ref = refs.pop(0) if options.has_delta else None
  a_ref, b_ch_ref, c_ch_ref = refs.pop(0), refs.pop(0), refs.pop(0)
  b_ref = refs.pop(0) if options.has_b else None
  c_ref = refs.pop(0) if options.has_c else None
  return (u_ref, delta_ref, a_ref, b_ch_ref, c_ch_ref, b_ref, c_ref), refs


def _sum_over_states(ref, t, value: Array, options: KernelOptions) -> None:
  """`ref[t] = value`, or `+=` with an atomic add where the states take several programs."""
  if options.split_states:
    plgpu.atomic_add(ref, t, value)
  else:
    ref[t] = value


def _forward_kernel(*refs, options: KernelOptions):
  inputs, rest = _split_refs(refs, options)
  y_ref, entry_ref = rest[options.split_states:]  # after the zeros y starts from, if any
  u_ref, delta_ref, a_ref, b_ch_ref, c_ch_ref, b_ref, c_ref = inputs
  chunk = options.chunk
  coef = coefficients(a_ref, b_ch_ref, c_ch_ref, options.has_delta)
  shape = coef.a.shape
  load = _loader(u_ref, delta_ref, b_ref, c_ref)

  def chunk_body(index, x):
    steps = [load(index * chunk + s) for s in range(chunk)]
    for s, step in enumerate(steps):
      x = next_state(x, step, coef)
      _sum_over_states(y_ref, index * chunk + s,
                       jnp.sum(x * coef.c_ch * factor(step.c, shape), axis=1), options)
    return x

  def segment_body(segment, x):
    entry_ref[segment] = x  # the backward recomputes the segment's states from it
    every = options.checkpoint_every
    return jax.lax.fori_loop(segment * every, (segment + 1) * every, chunk_body, x)

  jax.lax.fori_loop(0, entry_ref.shape[0], segment_body, jnp.zeros(shape, jnp.float32))


def _backward_kernel(*refs, options: KernelOptions):
  inputs, rest = _split_refs(refs, options)
  u_ref, delta_ref, a_ref, b_ch_ref, c_ch_ref, b_ref, c_ref = inputs
  entry_ref, dy_ref, *rest = rest
  rest = rest[_num_state_sums(options):]  # the zeros du and ddelta start from, if any
  du_ref, *rest = rest
  ddelta_ref = rest.pop(0) if options.has_delta else None
  da_ref, db_ch_ref, dc_ch_ref, *rest = rest
  db_ref = rest.pop(0) if options.has_b else None
  dc_ref = rest.pop(0) if options.has_c else None
  scratch_ref = rest.pop(0) if options.checkpoint_every > 1 else None
  chunk, every = options.chunk, options.checkpoint_every
  coef = coefficients(a_ref, b_ch_ref, c_ch_ref, options.has_delta)
  shape = coef.a.shape
  load = _loader(u_ref, delta_ref, b_ref, c_ref, dy_ref)

  def chunk_body(index, entry, carry):
    """The adjoint through chunk `index`, whose states start from `entry`."""
    g_next, da, db_ch, dc_ch = carry  # g_next = exp(delta_{t+1} a) g_{t+1}: the adjoint carry
    steps = [load(index * chunk + s) for s in range(chunk)]
    x_states = [entry]
    for step in steps:  # recompute the chunk's states from its entry state
      x_states.append(next_state(x_states[-1], step, coef))
    for s in reversed(range(chunk)):
      t, step = index * chunk + s, steps[s]
      b_t, c_t = factor(step.b, shape), factor(step.c, shape)
      x, x_prev = x_states[s + 1], x_states[s]
      dy = column(step.dy, shape)
      dy_x = dy * x
      g = g_next + dy * coef.c_ch * c_t  # dL/dx_t
      # Readout: y_t = sum_n c_t c_ch x_t.
      dc_ch = dc_ch + dy_x * c_t
      if dc_ref is not None:
        dc_ref[t] = jnp.sum(dy_x * coef.c_ch, axis=0)
      # Input term: delta_t u_t b_t b_ch.
      g_in = jnp.sum(g * coef.b_ch * b_t, axis=1)  # (Hb,)
      g_scaled = g * column(scaled_input(step), shape)
      db_ch = db_ch + g_scaled * b_t
      if db_ref is not None:
        db_ref[t] = jnp.sum(g_scaled * coef.b_ch, axis=0)
      # Decay exp(delta_t a): dL/d(delta_t a) = g_t x_{t-1} exp(delta_t a). Recomputed
      # rather than kept from the loop above, which would hold T more tiles in registers.
      decay = step_decay(step, coef)
      g_exponent = g * x_prev * decay
      if step.delta is None:
        da = da + g_exponent
        _sum_over_states(du_ref, t, g_in, options)
      else:
        da = da + g_exponent * column(step.delta, shape)
        _sum_over_states(du_ref, t, g_in * step.delta, options)
        _sum_over_states(ddelta_ref, t, g_in * step.u + jnp.sum(g_exponent * coef.a, axis=1),
                         options)
      g_next = decay * g
    return g_next, da, db_ch, dc_ch

  def advance(index, x):  # the state after chunk `index`
    for s in range(chunk):
      x = next_state(x, load(index * chunk + s), coef)
    return x

  zeros = jnp.zeros(shape, jnp.float32)
  _, da, db_ch, dc_ch = reverse_segments(entry_ref, scratch_ref, every, advance, chunk_body,
                                         (zeros,) * 4)
  da_ref[...] = da
  db_ch_ref[...] = db_ch
  dc_ch_ref[...] = dc_ch


# ----------------------------------------------------------------------------------------------
# pallas_call wrappers on the padded, group-major layout: u, delta (B, G, Lp, Hp); a, b_ch, c_ch
# (G, Hp, Np); b, c (B, G, Lp, Np); Lp a multiple of T, Hp of H_blk, Np a power of 2. Blocks end
# in (time, channels) or (channels, states), as TPU tiling wants.


def reverse_segments(entry_ref, scratch_ref, every: int, advance, chunk_body, carry):
  """A backward kernel's walk over the chunks in reverse, from one saved state per E chunks.

  For each segment of E = `every` chunks, last first: recomputes its chunk entry states from
  `entry_ref[segment]` with `advance(index, x)` (the state after chunk `index`) into
  `scratch_ref` (when E > 1), then runs `carry = chunk_body(index, entry state, carry)` over its
  chunks in reverse. Returns the last carry.
  """

  def segment_body(k, carry):
    segment = entry_ref.shape[0] - 1 - k
    if every == 1:
      return chunk_body(segment, entry_ref[segment], carry)

    def recompute(e, x):
      scratch_ref[e] = x
      return advance(segment * every + e, x)

    jax.lax.fori_loop(0, every, recompute, entry_ref[segment])

    def reverse(i, carry):
      e = every - 1 - i
      return chunk_body(segment * every + e, scratch_ref[e], carry)

    return jax.lax.fori_loop(0, every, reverse, carry)

  return jax.lax.fori_loop(0, entry_ref.shape[0], segment_body, carry)


def _num_entries(length: int, options: KernelOptions) -> int:
  """Saved states: one per E chunks of the padded length (a multiple of T E)."""
  return length // (options.chunk * options.checkpoint_every)


def _specs(batch: int, length: int, groups: int, channels: int, states: int,
           options: KernelOptions):
  """Grid and block specs shared by both kernels.

  One program per (batch element, group, channel block h, state block n); the last grid axis
  enumerates the (h, n) pairs, n fastest.
  """
  sq = pl.squeezed
  state_blocks = _grid_state_blocks(states, options)
  hb, nb = options.block_channels, states // state_blocks
  grid = (batch, groups, (channels // hb) * state_blocks)

  def spec(block_shape, index):

    def index_map(i, g, k):
      h = div(k, state_blocks)
      return index(i, g, h, k - h * state_blocks)

    return pl.BlockSpec(block_shape, index_map)

  specs = {
      "seq":
          spec((sq, sq, length, hb), lambda i, g, h, n: (i, g, 0, h)),
      "proj":
          spec((sq, sq, length, nb), lambda i, g, h, n: (i, g, 0, n)),
      "proj_partial":
          spec((sq, sq, sq, length, nb), lambda i, g, h, n: (i, g, h, 0, n)),
      "chan":
          spec((sq, hb, nb), lambda i, g, h, n: (g, h, n)),
      "chan_per_batch":
          spec((sq, sq, hb, nb), lambda i, g, h, n: (i, g, h, n)),
      "entry":
          spec((sq, sq, _num_entries(length, options), hb, nb), lambda i, g, h, n: (i, g, 0, h, n)),
      "scratch":
          spec((sq, sq, options.checkpoint_every, hb, nb), lambda i, g, h, n: (i, g, 0, h, n)),
  }
  return grid, specs


def _operands(spec, u, delta, a, b_ch, c_ch, b, c) -> tuple[list[Array], list[pl.BlockSpec]]:
  """The inputs both kernels read first, and their block specs (delta, b, c only when given)."""
  sequences = [x for x in (u, delta) if x is not None]
  projections = [x for x in (b, c) if x is not None]
  inputs = sequences + [a, b_ch, c_ch] + projections
  in_specs = ([spec["seq"]] * len(sequences) + [spec["chan"]] * 3 +
              [spec["proj"]] * len(projections))
  return inputs, in_specs


def compiler_params(num_warps: int, interpret: bool):
  """Triton's `num_warps` on a GPU (None when interpreted or on another backend)."""
  if interpret or target.backend() != "gpu":
    return None
  return plgpu.CompilerParams(num_warps=num_warps, num_stages=1)


def _grid_state_blocks(states: int, options: KernelOptions) -> int:
  """State blocks on the grid: Np / N_blk."""
  return states // options.block_states


def _num_state_sums(options: KernelOptions) -> int:
  """How many `(B, G, Lp, Hp)` outputs of the backward the state blocks add into (du and, given
  delta, ddelta; none when the states take one block)."""
  return options.split_states * (1 + options.has_delta)


def _state_sums(u: Array, count: int, spec: pl.BlockSpec) -> tuple[list[Array], list[Any]]:
  """The zeros that `count` outputs summed over state blocks start from (inputs aliased to
  them), with their specs."""
  return [jnp.zeros(u.shape, jnp.float32)] * count, [spec] * count


def _forward_call(options: KernelOptions, u, delta, a, b_ch, c_ch, b, c):
  """`(y (B, G, Lp, Hp), entry states (B, G, Lp / (T E), Hp, Np))`."""
  batch, groups, length, channels = u.shape
  states = a.shape[-1]
  grid, spec = _specs(batch, length, groups, channels, states, options)
  inputs, in_specs = _operands(spec, u, delta, a, b_ch, c_ch, b, c)
  zeros, zero_specs = _state_sums(u, int(options.split_states), spec["seq"])
  out_shape = (
      jax.ShapeDtypeStruct(u.shape, jnp.float32),
      jax.ShapeDtypeStruct((batch, groups, _num_entries(length, options), channels, states),
                           jnp.float32),
  )
  return pl.pallas_call(functools.partial(_forward_kernel, options=options), grid=grid,
                        in_specs=in_specs + zero_specs, out_specs=(spec["seq"], spec["entry"]),
                        out_shape=out_shape, input_output_aliases={len(inputs): 0} if zeros else {},
                        interpret=options.interpret,
                        compiler_params=compiler_params(options.num_warps, options.interpret),
                        name="selective_scan_forward")(*inputs, *zeros)


def _backward_call(options: KernelOptions, u, delta, a, b_ch, c_ch, b, c, entries, dy):
  """Gradients: du, ddelta `(B, G, Lp, Hp)` (ddelta only for a given delta); per-batch da,
  db_ch, dc_ch `(B, G, Hp, Np)`; per-channel-block db, dc `(B, G, Hp / H_blk, Lp, Np)` (only for
  the given b, c); with E > 1, the scratch of the recomputed chunk entry states `(B, G, E, Hp,
  Np)`."""
  batch, groups, length, channels = u.shape
  states = a.shape[-1]
  grid, spec = _specs(batch, length, groups, channels, states, options)
  inputs, in_specs = _operands(spec, u, delta, a, b_ch, c_ch, b, c)
  inputs += [entries, dy]
  in_specs += [spec["entry"], spec["seq"]]
  zeros, zero_specs = _state_sums(u, _num_state_sums(options), spec["seq"])
  num_partial = int(b is not None) + int(c is not None)
  per_batch = jax.ShapeDtypeStruct((batch, groups, channels, states), jnp.float32)
  partial_shape = jax.ShapeDtypeStruct(
      (batch, groups, channels // options.block_channels, length, states), jnp.float32)
  num_sequences = 1 + int(delta is not None)
  out_shape = ((jax.ShapeDtypeStruct(u.shape, jnp.float32),) * num_sequences + (per_batch,) * 3 +
               (partial_shape,) * num_partial)
  out_specs = ((spec["seq"],) * num_sequences + (spec["chan_per_batch"],) * 3 +
               (spec["proj_partial"],) * num_partial)
  if options.checkpoint_every > 1:
    out_shape += (jax.ShapeDtypeStruct((batch, groups, options.checkpoint_every, channels, states),
                                       jnp.float32),)
    out_specs += (spec["scratch"],)
  return pl.pallas_call(functools.partial(_backward_kernel, options=options), grid=grid,
                        in_specs=in_specs + zero_specs, out_specs=out_specs, out_shape=out_shape,
                        input_output_aliases={len(inputs) + j: j for j in range(len(zeros))
                                             }, interpret=options.interpret,
                        compiler_params=compiler_params(options.num_warps, options.interpret),
                        name="selective_scan_backward")(*inputs, *zeros)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused_scan(options: KernelOptions, u, delta, a, b_ch, c_ch, b, c):
  y, _ = _forward_call(options, u, delta, a, b_ch, c_ch, b, c)
  return y


def _fused_scan_forward(options, u, delta, a, b_ch, c_ch, b, c):
  y, entries = _forward_call(options, u, delta, a, b_ch, c_ch, b, c)
  return y, (u, delta, a, b_ch, c_ch, b, c, entries)


def _fused_scan_backward(options, residuals, dy):
  u, delta, a, b_ch, c_ch, b, c, entries = residuals
  du, *rest = _backward_call(options, u, delta, a, b_ch, c_ch, b, c, entries, dy)
  ddelta = rest.pop(0) if delta is not None else None
  da, db_ch, dc_ch, *partials = rest
  db = partials.pop(0).sum(axis=2) if b is not None else None
  dc = partials.pop(0).sum(axis=2) if c is not None else None
  return du, ddelta, da.sum(0), db_ch.sum(0), dc_ch.sum(0), db, dc


_fused_scan.defvjp(_fused_scan_forward, _fused_scan_backward)

# ----------------------------------------------------------------------------------------------
# The public entry point: checks, float32, padding, reverse.


def _check_shapes(u, delta, a, b, c, b_channel, c_channel) -> None:
  if u.ndim != 4:
    raise ValueError(f"u must have shape (B, L, G, H); got {u.shape}")
  if delta is not None and delta.shape != u.shape:
    raise ValueError(f"delta must have the shape of u {u.shape}; got {delta.shape}")
  groups, channels = u.shape[2:]
  if a.ndim != 3 or a.shape[:2] != (groups, channels):
    raise ValueError(f"a must have shape (G, H, N) = ({groups}, {channels}, N); got {a.shape}")
  for name, x in (("a", a), ("u", u), ("delta", delta)):
    if x is not None and jnp.iscomplexobj(x):
      raise ValueError(f"the fused selective scan supports real states only; {name} is complex "
                       "(use the associative scan for complex backbones)")
  for name, x in (("b_channel", b_channel), ("c_channel", c_channel)):
    if x is not None and x.shape != a.shape:
      raise ValueError(f"{name} must have the shape of a {a.shape}; got {x.shape}")
  projection_shape = u.shape[:3] + a.shape[-1:]
  for name, x in (("b", b), ("c", c)):
    if x is not None and x.shape != projection_shape:
      raise ValueError(f"{name} must have shape (B, L, G, N) = {projection_shape}; got {x.shape}")


def selective_scan(
    u: Array,
    delta: Array | None,
    a: Array,
    *,
    b: Array | None = None,
    c: Array | None = None,
    b_channel: Array | None = None,
    c_channel: Array | None = None,
    reverse: bool = False,
    chunk: int | None = None,
    block_channels: int | None = None,
    block_states: int | None = None,
    checkpoint_every: int | None = None,
    num_warps: int = 2,
    interpret: bool | None = None,
) -> Array:
  """Outputs `y` of the fused selective scan (module docstring), differentiable.

  Args:
    u: `(B, L, G, H)` inputs, G groups (streams) of H channels.
    delta: `(B, L, G, H)` positive steps, or None: steps of 1 (the time-invariant case with
      `a` the discretized `Delta A`), with no ddelta computed and no steps read.
    a: `(G, H, N)` real continuous-time eigenvalues (negative).
    b, c: `(B, L, G, N)` time-varying input/readout projections shared by a group's channels,
      or None (1).
    b_channel, c_channel: `(G, H, N)` per-channel input/readout factors, or None (1).
    reverse: run from the last step to the first.
    chunk: T, steps per chunk (default from `default_block`).
    block_channels: channels per program, a power of 2 (default from `default_block`).
    block_states: states held at once, a power of 2 no larger than N rounded up to a power of 2
      (default from `default_block`). TPU tiling wants all of them or a multiple of 128, and
      `block_channels` a multiple of 128.
    checkpoint_every: E, chunks per saved state: the backward keeps `B G H N L / (T E)` floats
      and recomputes the entry states of E chunks at a time. Default: the smallest E for which
      they take at most two `(B, L, G, H)` arrays, `ceil(Np / 2T)` (1 for N <= 2T).
    num_warps: Triton warps per program (GPU).
    interpret: run in the Pallas interpreter; default: on the CPU backend only.

  Returns:
    `(B, L, G, H)` float32.
  """
  _check_shapes(u, delta, a, b, c, b_channel, c_channel)
  batch, length, groups, channels = u.shape
  num_states = a.shape[-1]
  default_chunk, default_channels, default_states = default_block(channels, num_states)
  chunk = chunk or default_chunk
  block_channels = block_channels or default_channels
  block_states = block_states or default_states
  max_states = next_power_of_2(num_states)
  checkpoint_every = checkpoint_every or -(-max_states // (2 * chunk))
  is_power_of_2 = lambda n: n >= 1 and not n & (n - 1)
  if chunk < 1 or checkpoint_every < 1 or not is_power_of_2(block_channels):
    raise ValueError(f"chunk and checkpoint_every must be >= 1 and block_channels a power of 2; "
                     f"got {chunk}, {checkpoint_every}, {block_channels}")
  if not is_power_of_2(block_states) or block_states > max_states:
    raise ValueError(f"block_states must be a power of 2 no larger than {max_states} (N = "
                     f"{num_states} rounded up to a power of 2); got {block_states}")
  if interpret is None:
    interpret = target.backend() == "cpu"
  split_states = block_states < max_states
  if split_states and target.backend() == "tpu":
    raise ValueError(f"block_states={block_states} splits the {max_states} states over programs, "
                     "which add their parts with GPU atomics; on a TPU use all of them (the "
                     "default)")
  options = KernelOptions(chunk=chunk, block_channels=block_channels, block_states=block_states,
                          num_warps=num_warps, has_delta=delta is not None, has_b=b is not None,
                          has_c=c is not None, split_states=split_states,
                          checkpoint_every=checkpoint_every, interpret=interpret)

  f32 = lambda x: None if x is None else jnp.asarray(x, jnp.float32)
  u, delta, a, b, c = map(f32, (u, delta, a, b, c))
  b_channel = jnp.ones_like(a) if b_channel is None else f32(b_channel)
  c_channel = jnp.ones_like(a) if c_channel is None else f32(c_channel)
  # Group-major, time reversed for a reverse scan. Padded steps come after the last one and
  # have no input (and delta = 0: decay 1), so no valid output or gradient sees them; padded
  # channels and states have zero input and readout factors.
  pad_length = -length % (chunk * checkpoint_every)
  pad_channels = -channels % block_channels
  pad_states = max_states - num_states

  def to_kernel_layout(x: Array | None, pad_last: int) -> Array | None:
    if x is None:
      return None
    x = jnp.swapaxes(x, 1, 2)
    x = jnp.flip(x, 2) if reverse else x
    return jnp.pad(x, ((0, 0), (0, 0), (0, pad_length), (0, pad_last)))

  pad_chan = lambda x: jnp.pad(x, ((0, 0), (0, pad_channels), (0, pad_states)))
  y = _fused_scan(options, to_kernel_layout(u, pad_channels), to_kernel_layout(delta, pad_channels),
                  pad_chan(a), pad_chan(b_channel), pad_chan(c_channel),
                  to_kernel_layout(b, pad_states), to_kernel_layout(c, pad_states))
  y = y[:, :, :length, :channels]
  y = jnp.flip(y, 2) if reverse else y
  return jnp.swapaxes(y, 1, 2)
