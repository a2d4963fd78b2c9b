"""The causal MS-SSM layer in one Pallas kernel: bands, streams, mixer and skip on chip.

Karami et al., MS-SSM (COLM 2025, arXiv 2512.23824), sec. 3, per channel h and stream j < G:

    v^j_t = act(sum_{m < R_j} f_j[m] u_{t-m})       band (composed wavelet filter; act: SiLU
                                                     or none, the layer's band_activation)
    x^j_t = exp(delta^j_t a^j) x^j_{t-1} + delta^j_t v^j_t b^j_t b_ch^j       (N real states)
    y^j_t = sum_n c^j_t[n] c_ch^j[n] x^j_t[n]
    z_t   = sum_j (w_j u_t + b_j) y^j_t + D u_t                 per-channel mixer and skip

`f_j` are the composed filters of `decomposition.stream_filters` (the raw stream a unit
impulse), `b^j_t`, `c^j_t` the selective streams' projections, and their steps are computed in
the kernel from the rank-R projection of S6 (Mamba),

    delta^j_t = softplus(sum_r dt_low^j_t[r] dt_proj^j[r] + dt_bias^j),

so that no `(B, L, G, H)` steps reach memory either. Without steps (and with factors 1) the
streams are time-invariant with `a = Delta A`: the s4d_real streams. `w` is None for the static
and `none` mixers. The step math is `pallas_scan`'s (the same recurrence for one stream).

Forward: one program per (batch element, channel block) walks the sequence in chunks of T
steps; a chunk loads `T + R - 1` input rows (a halo of `R - 1 = (K-1)(2^S - 1)` earlier steps),
computes every stream's band from them, advances the G streams' states and writes the mixed
output. Only `z` `(B, L, H)` (and, for the layer's mixer metric, z's input-dependent part) and
the state entering every E-th chunk `(B, L / (T E), G, H, N)` reach memory: no bands, no
steps, no stream outputs.

Backward (`jax.custom_vjp`): one program per (batch element, stream, channel block) walks the
segments of E chunks in reverse. It recomputes a segment's chunk entry states from the saved
one (into a scratch output, when E > 1), then walks its chunks in reverse: it recomputes a
chunk's band and states from the chunk's entry state and runs the adjoint of `pallas_scan`,
with the mixer's cotangent `dz (w_j u + b_j)` as the stream's output cotangent. The band's
transpose, `du_{t-m} += f_j[m] dv_t`, reaches up to `R - 1` steps into earlier chunks: those
rows are carried to the next (earlier) chunk. The programs write per-stream partial sums of
`du` `(B, G, L, H)` (XLA adds the G streams and `D dz`), per-batch-element sums of the
filter, mixer, step projection and state-coefficient gradients, and add their channels' part of
the per-step `d dt_low`, `db_t`, `dc_t` (shared by a stream's channels) with atomic adds.

Causal layers only (the bidirectional layer's centered bands and reverse scan are not here).
Like `pallas_scan`, written with generic Pallas ops, but for the atomic adds of the backward
(Triton's): compiled by Triton on GPUs, interpreted on the CPU (`interpret=True`, the tests);
not run on a TPU.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from ms_ssm_jax import pallas_scan as ps
from ms_ssm_jax import target

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class FusedOptions:
  """Static choices of the kernels.

  Attributes:
    chunk: T, steps unrolled per chunk.
    checkpoint_every: E, chunks per saved state: the forward saves the state entering every
      E-th chunk, and the backward recomputes a segment's E chunk entry states (into a scratch
      output) before walking it in reverse.
    block_channels: H_blk, channels per program (a power of 2 dividing the padded H).
    taps: R_j, the taps of each stream's filter (the forward skips the zero padding to R).
    num_warps: Triton warps per program (GPU only).
    has_steps: whether the steps are given (by their rank-R projection), else 1.
    has_b, has_c: whether time-varying projections `b_t`, `c_t` are given.
    has_input_weight: whether the mixer has input-dependent weights `w`.
    band_silu: whether SiLU acts on the bands (the S6 variant's `band_activation="silu"`).
    input_term_out: also write the input-dependent part of z, `sum_j w_j u_t y^j_t`.
    interpret: run the kernels in the Pallas interpreter (CPU tests).
  """
  chunk: int
  checkpoint_every: int
  block_channels: int
  taps: tuple[int, ...]
  num_warps: int
  has_steps: bool
  has_b: bool
  has_c: bool
  has_input_weight: bool
  band_silu: bool
  input_term_out: bool
  interpret: bool

  @property
  def halo(self) -> int:
    """Earlier input rows a chunk reads: R - 1 for the longest filter."""
    return max(self.taps) - 1


# Programs to aim for: about two per streaming multiprocessor of an H100 (132).
_MIN_PROGRAMS = 256


def default_block(batch: int, num_channels: int, num_streams: int,
                  num_states: int) -> tuple[int, int, int]:
  """`(chunk, block_channels, num_warps)` for the forward's (B, H / H_blk) programs.

  T = 8. Channels per program: at most 32, such that the G streams hold at most 4096 state
  floats (32 registers a thread at 4 warps), then halved (down to 4) until there are
  `_MIN_PROGRAMS` programs; warps by the state floats a program holds. Not yet tuned on a GPU
  (`pallas_scan`'s measured best for one stream at N = 16 is T = 8, 32 channels, 2 warps).
  E.g. 8 channels and 2 warps at issue 26's shape (B = 16, H = 128, G = 6, N = 16); 4 channels
  and 4 warps for the paper's ListOps S6 variant (B = 50, H = 128, G = 5, N = 128).
  """
  states = num_streams * ps.next_power_of_2(num_states)
  channels = max(1, min(32, ps.next_power_of_2(num_channels), 4096 // states))
  channels = 1 << (channels.bit_length() - 1)  # a power of 2
  while channels > 4 and batch * -(-num_channels // channels) < _MIN_PROGRAMS:
    channels //= 2
  held = states * channels
  return 8, channels, 4 if held >= 2048 else 2 if held >= 512 else 1


# ----------------------------------------------------------------------------------------------
# Kernels. Refs of one forward program (batch element, channel block):
#   u (halo + Lp, Hb); filters (G, R, Hb); dt_low (G, Lp, Rp); dt_proj (G, Rp, Hb);
#   dt_bias (G, Hb); a, b_ch, c_ch (G, Hb, Np); b, c (G, Lp, Np); mixer w, b (G, Hb);
#   skip (Hb,); z (Lp, Hb); entry states (C, G, Hb, Np).
# A backward program (batch element, stream, channel block) sees the same refs of its stream,
# without the G axis.


def _band(window: list[Array], taps: list[Array], s: int, halo: int) -> Array:
  """Step s of a chunk's band before its activation, `sum_m taps[m] u_{t0+s-m}` `(Hb,)`;
  `window[r]` is `u_{t0-halo+r}`."""
  out = taps[0] * window[halo + s]
  for m in range(1, len(taps)):
    out = out + taps[m] * window[halo + s - m]
  return out


def _sigmoid(x: Array) -> Array:
  return 1.0 / (1.0 + jnp.exp(-x))


def _activated(band: Array, silu: bool) -> Array:
  """The band the stream reads: `SiLU(band)` or the band itself."""
  return band * _sigmoid(band) if silu else band


def _activation_grad(band: Array) -> Array:
  """`d SiLU(v) / d v = sigmoid(v) (1 + v (1 - sigmoid(v)))` at the band v."""
  gate = _sigmoid(band)
  return gate * (1.0 + band * (1.0 - gate))


_INPUT_NAMES = ("u", "filters", "dt_low", "dt_proj", "dt_bias", "a", "b_ch", "c_ch", "b", "c",
                "mix_w", "mix_b", "skip")
_STEP_NAMES = ("dt_low", "dt_proj", "dt_bias")


def _split_refs(refs, options: FusedOptions):
  """The input refs by name (None where not given), and the rest."""
  refs = list(refs)
  names = ["u", "filters"] + (list(_STEP_NAMES) if options.has_steps else [])
  names += ["a", "b_ch", "c_ch"]
  names += (["b"] if options.has_b else []) + (["c"] if options.has_c else [])
  names += (["mix_w"] if options.has_input_weight else []) + ["mix_b", "skip"]
  named = {name: refs.pop(0) for name in names}
  return {name: named.get(name) for name in _INPUT_NAMES}, refs


def _step_logit(low: Array, proj: Array, bias: Array) -> Array:
  """`sum_r low[r] proj[r] + bias` `(Hb,)`: a step before its softplus; low `(Rp,)`, proj
  `(Rp, Hb)`."""
  return jnp.sum(jax.lax.broadcast_in_dim(low, proj.shape, (0,)) * proj, axis=0) + bias


def _softplus(x: Array) -> Array:
  return jnp.maximum(x, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


def _coefficients(a: Array, b_ch: Array, c_ch: Array, has_steps: bool) -> ps.Coefficients:
  return ps.Coefficients(a, b_ch, c_ch, None if has_steps else jnp.exp(a))


def _forward_kernel(*refs, options: FusedOptions):
  ins, rest = _split_refs(refs, options)
  z_ref, entry_ref, *rest = rest
  input_term_ref = rest[0] if options.input_term_out else None
  chunk, halo = options.chunk, options.halo
  shape = ins["a"].shape[1:]
  maybe = lambda name, j, t: None if ins[name] is None else ins[name][j, t]

  def steps_of(j, t0):
    """Stream j's steps over the chunk from t0, `(Hb,)` each (None without steps)."""
    if not options.has_steps:
      return [None] * chunk
    proj, bias = ins["dt_proj"][j], ins["dt_bias"][j]
    return [_softplus(_step_logit(ins["dt_low"][j, t0 + s], proj, bias)) for s in range(chunk)]

  def chunk_body(index, states):
    t0 = index * chunk
    window = [ins["u"][t0 + r] for r in range(chunk + halo)]
    inputs = window[halo:]
    skip = ins["skip"][...]
    z = [skip * u_t for u_t in inputs]
    input_term = [jnp.zeros_like(u_t) for u_t in inputs]
    new_states = []
    for j, x in enumerate(states):
      coef = _coefficients(ins["a"][j], ins["b_ch"][j], ins["c_ch"][j], options.has_steps)
      taps = [ins["filters"][j, m] for m in range(options.taps[j])]
      deltas = steps_of(j, t0)
      steps = [
          ps.StepInputs(_activated(_band(window, taps, s, halo), options.band_silu), deltas[s],
                        maybe("b", j, t0 + s), maybe("c", j, t0 + s), None) for s in range(chunk)
      ]
      mix_b = ins["mix_b"][j]
      mix_w = None if ins["mix_w"] is None else ins["mix_w"][j]
      for s, step in enumerate(steps):
        x = ps.next_state(x, step, coef)
        y = jnp.sum(x * coef.c_ch * ps.factor(step.c, shape), axis=1)
        if mix_w is None:
          z[s] = z[s] + mix_b * y
        else:
          input_term[s] = input_term[s] + mix_w * inputs[s] * y
          z[s] = z[s] + (mix_b + mix_w * inputs[s]) * y
      new_states.append(x)
    for s in range(chunk):
      z_ref[t0 + s] = z[s]
      if input_term_ref is not None:
        input_term_ref[t0 + s] = input_term[s]
    return tuple(new_states)

  def segment_body(segment, states):
    for j, x in enumerate(states):
      entry_ref[segment, j] = x  # the backward recomputes the segment's states from it
    every = options.checkpoint_every
    return jax.lax.fori_loop(segment * every, (segment + 1) * every, chunk_body, states)

  zeros = jnp.zeros(shape, jnp.float32)
  jax.lax.fori_loop(0, entry_ref.shape[0], segment_body, (zeros,) * len(options.taps))


def _backward_kernel(*refs, options: FusedOptions):
  ins, rest = _split_refs(refs, options)
  entry_ref, dz_ref, *rest = rest
  rest = rest[_num_shared_gradients(options):]  # the zeros the shared gradients start from
  du_ref, *rest = rest
  ddt_low_ref = rest.pop(0) if options.has_steps else None
  da_ref, db_ch_ref, dc_ch_ref, *rest = rest
  db_ref = rest.pop(0) if options.has_b else None
  dc_ref = rest.pop(0) if options.has_c else None
  dfilters_ref, *rest = rest
  dmix_w_ref = rest.pop(0) if options.has_input_weight else None
  dmix_b_ref, *rest = rest
  ddt_proj_ref, ddt_bias_ref = (rest.pop(0), rest.pop(0)) if options.has_steps else (None, None)
  scratch_ref = rest.pop(0) if options.checkpoint_every > 1 else None
  chunk, halo, every = options.chunk, options.halo, options.checkpoint_every
  num_taps = ins["filters"].shape[0]  # R: the stream is a grid index, so its R_j is not static
  coef = _coefficients(ins["a"][...], ins["b_ch"][...], ins["c_ch"][...], options.has_steps)
  shape = coef.a.shape
  taps = [ins["filters"][m] for m in range(num_taps)]
  mix_b = ins["mix_b"][...]
  mix_w = None if ins["mix_w"] is None else ins["mix_w"][...]
  maybe = lambda name, t: None if ins[name] is None else ins[name][t]
  if options.has_steps:
    dt_proj, dt_bias = ins["dt_proj"][...], ins["dt_bias"][...]

  def load_chunk(t0, with_dy: bool):
    """The chunk's input window, bands before their activation, step projections, step logits
    and `StepInputs`."""
    window = [ins["u"][t0 + r] for r in range(chunk + halo)]
    bands = [_band(window, taps, s, halo) for s in range(chunk)]
    lows, logits, deltas = [None] * chunk, [None] * chunk, [None] * chunk
    if options.has_steps:
      lows = [ins["dt_low"][t0 + s] for s in range(chunk)]
      logits = [_step_logit(low, dt_proj, dt_bias) for low in lows]
      deltas = [_softplus(logit) for logit in logits]
    steps = [
        ps.StepInputs(_activated(bands[s], options.band_silu), deltas[s], maybe("b", t0 + s),
                      maybe("c", t0 + s), dz_ref[t0 + s] if with_dy else None) for s in range(chunk)
    ]
    return window, bands, lows, logits, steps

  def chunk_body(index, entry, carry):
    """The adjoint through chunk `index`, whose states start from `entry`."""
    g_next, da, db_ch, dc_ch, dmix_w, dmix_b, dfilters, pending, ddt_proj, ddt_bias = carry
    t0 = index * chunk
    window, bands, lows, logits, steps = load_chunk(t0, with_dy=True)
    inputs = window[halo:]
    x_states = [entry]
    for step in steps:  # recompute the chunk's states from its entry state
      x_states.append(ps.next_state(x_states[-1], step, coef))
    band_grads, mixer_grads = [None] * chunk, [None] * chunk
    for s in reversed(range(chunk)):
      t, step = t0 + s, steps[s]
      b_t, c_t = ps.factor(step.b, shape), ps.factor(step.c, shape)
      x, x_prev = x_states[s + 1], x_states[s]
      readout = coef.c_ch * c_t
      # Mixer: z_t = sum_j (w_j u_t + b_j) y^j_t; step.dy holds dz_t.
      y = jnp.sum(x * readout, axis=1)
      dmix_b = dmix_b + step.dy * y
      if mix_w is None:
        weight = mix_b
      else:
        weight = mix_b + mix_w * inputs[s]
        dmix_w = dmix_w + step.dy * inputs[s] * y
        mixer_grads[s] = step.dy * mix_w * y
      dy = ps.column(step.dy * weight, shape)
      # The stream's adjoint, as pallas_scan's backward kernel.
      dy_x = dy * x
      g = g_next + dy * readout
      dc_ch = dc_ch + dy_x * c_t
      if dc_ref is not None:
        plgpu.atomic_add(dc_ref, t, jnp.sum(dy_x * coef.c_ch, axis=0))
      g_in = jnp.sum(g * coef.b_ch * b_t, axis=1)
      g_scaled = g * ps.column(ps.scaled_input(step), shape)
      db_ch = db_ch + g_scaled * b_t
      if db_ref is not None:
        plgpu.atomic_add(db_ref, t, jnp.sum(g_scaled * coef.b_ch, axis=0))
      decay = ps.step_decay(step, coef)
      g_exponent = g * x_prev * decay
      if step.delta is None:
        da = da + g_exponent
        band_grads[s] = g_in
      else:
        da = da + g_exponent * ps.column(step.delta, shape)
        band_grads[s] = g_in * step.delta
        ddelta = g_in * step.u + jnp.sum(g_exponent * coef.a, axis=1)
        dlogit = ddelta * _sigmoid(logits[s])  # softplus' = sigmoid
        proj_shape = dt_proj.shape
        plgpu.atomic_add(
            ddt_low_ref, t,
            jnp.sum(jax.lax.broadcast_in_dim(dlogit, proj_shape, (1,)) * dt_proj, axis=1))
        ddt_proj = ddt_proj + (jax.lax.broadcast_in_dim(lows[s], proj_shape, (0,)) *
                               jax.lax.broadcast_in_dim(dlogit, proj_shape, (1,)))
        ddt_bias = ddt_bias + dlogit
      g_next = decay * g
      if options.band_silu:
        band_grads[s] = band_grads[s] * _activation_grad(bands[s])
    # The band's transpose: acc[r] collects du at t0 - halo + r; its last `halo` rows (times
    # t0 + T - halo ..) start from what the later chunks left there.
    acc = [jnp.zeros_like(inputs[0])] * chunk + list(pending)
    dfilters = list(dfilters)
    for s, dv in enumerate(band_grads):
      for m in range(num_taps):
        acc[halo + s - m] = acc[halo + s - m] + taps[m] * dv
        dfilters[m] = dfilters[m] + window[halo + s - m] * dv
    for s in range(chunk):
      du_ref[t0 + s] = acc[halo + s] if mixer_grads[s] is None else acc[halo + s] + mixer_grads[s]
    return (g_next, da, db_ch, dc_ch, dmix_w, dmix_b, tuple(dfilters), tuple(acc[:halo]), ddt_proj,
            ddt_bias)

  def advance(index, x):  # the state after chunk `index`
    for step in load_chunk(index * chunk, with_dy=False)[-1]:
      x = ps.next_state(x, step, coef)
    return x

  zeros, row = jnp.zeros(shape, jnp.float32), jnp.zeros(shape[:1], jnp.float32)
  proj_zeros = jnp.zeros(dt_proj.shape, jnp.float32) if options.has_steps else None
  init = (zeros, zeros, zeros, zeros, row, row, (row,) * num_taps, (row,) * halo, proj_zeros, row)
  _, da, db_ch, dc_ch, dmix_w, dmix_b, dfilters, _, ddt_proj, ddt_bias = ps.reverse_segments(
      entry_ref, scratch_ref, every, advance, chunk_body, init)
  da_ref[...] = da
  db_ch_ref[...] = db_ch
  dc_ch_ref[...] = dc_ch
  for m in range(num_taps):
    dfilters_ref[m] = dfilters[m]
  if dmix_w_ref is not None:
    dmix_w_ref[...] = dmix_w
  dmix_b_ref[...] = dmix_b
  if options.has_steps:
    ddt_proj_ref[...] = ddt_proj
    ddt_bias_ref[...] = ddt_bias


# ----------------------------------------------------------------------------------------------
# pallas_call wrappers on the kernel layout: u (B, halo + Lp, Hp) (halo zero rows first);
# filters (G, R, Hp); dt_low (B, G, Lp, Rp); dt_proj (G, Rp, Hp); dt_bias (G, Hp); a, b_ch, c_ch
# (G, Hp, Np); b, c (B, G, Lp, Np); mixer w, b (G, Hp); skip (Hp,). Lp a multiple of T, Hp of
# H_blk, Np and Rp powers of 2.


def _rank(inputs: dict[str, Array | None]) -> int:
  """Rp, the padded rank of the step projection (1 where there are no steps)."""
  return 1 if inputs["dt_low"] is None else inputs["dt_low"].shape[-1]


def _given(inputs: dict[str, Array | None]) -> list[Array]:
  return [inputs[name] for name in _INPUT_NAMES if inputs[name] is not None]


def _forward_call(options: FusedOptions, inputs: dict[str, Array | None]):
  """`(z (B, Lp, Hp), saved states (B, Lp / (T E), G, Hp, Np))`, then the input term of z
  `(B, Lp, Hp)` when asked for."""
  batch, padded_length, channels = inputs["u"].shape
  groups, num_taps, _ = inputs["filters"].shape
  states, rank = inputs["a"].shape[-1], _rank(inputs)
  length, hb, sq = padded_length - options.halo, options.block_channels, pl.squeezed
  num_chunks = length // (options.chunk * options.checkpoint_every)
  block = {
      "u": pl.BlockSpec((sq, padded_length, hb), lambda i, h: (i, 0, h)),
      "filters": pl.BlockSpec((groups, num_taps, hb), lambda i, h: (0, 0, h)),
      "dt_low": pl.BlockSpec((sq, groups, length, rank), lambda i, h: (i, 0, 0, 0)),
      "dt_proj": pl.BlockSpec((groups, rank, hb), lambda i, h: (0, 0, h)),
      "b": pl.BlockSpec((sq, groups, length, states), lambda i, h: (i, 0, 0, 0)),
      "mix_w": pl.BlockSpec((groups, hb), lambda i, h: (0, h)),
      "skip": pl.BlockSpec((hb,), lambda i, h: (h,)),
  }
  block["c"] = block["b"]
  block["mix_b"] = block["dt_bias"] = block["mix_w"]
  for name in ("a", "b_ch", "c_ch"):
    block[name] = pl.BlockSpec((groups, hb, states), lambda i, h: (0, h, 0))
  in_specs = [block[name] for name in _INPUT_NAMES if inputs[name] is not None]
  sequence = jax.ShapeDtypeStruct((batch, length, channels), jnp.float32)
  sequence_spec = pl.BlockSpec((sq, length, hb), lambda i, h: (i, 0, h))
  out_shape = [
      sequence,
      jax.ShapeDtypeStruct((batch, num_chunks, groups, channels, states), jnp.float32)
  ]
  out_specs = [
      sequence_spec,
      pl.BlockSpec((sq, num_chunks, groups, hb, states), lambda i, h: (i, 0, 0, h, 0))
  ]
  if options.input_term_out:
    out_shape.append(sequence)
    out_specs.append(sequence_spec)
  return pl.pallas_call(functools.partial(_forward_kernel, options=options),
                        grid=(batch, channels // hb), in_specs=in_specs, out_specs=out_specs,
                        out_shape=out_shape, interpret=options.interpret,
                        compiler_params=ps.compiler_params(options.num_warps, options.interpret),
                        name="ms_ssm_layer_forward")(*_given(inputs))


def _num_shared_gradients(options: FusedOptions) -> int:
  """How many gradients the channel blocks share (d dt_low, db, dc as given): each program adds
  its channels' part to them atomically, from zeros passed in and aliased to the output."""
  return options.has_steps + options.has_b + options.has_c


def _backward_call(options: FusedOptions, inputs: dict[str, Array | None], entries: Array,
                   dz: Array):
  """Per-stream du `(B, G, Lp, Hp)`; d dt_low `(B, G, Lp, Rp)` (given steps); per-batch da,
  db_ch, dc_ch `(B, G, Hp, Np)`; db, dc `(B, G, Lp, Np)` (given b, c); per-batch dfilters
  `(B, G, R, Hp)`, dmix_w (given w) and dmix_b `(B, G, Hp)`; per-batch d dt_proj `(B, G, Rp,
  Hp)` and d dt_bias `(B, G, Hp)` (given steps); with E > 1, the scratch of the recomputed
  chunk entry states `(B, G, E, Hp, Np)`.

  d dt_low, db and dc sum over channels: every channel block's program adds into the same
  `(Lp, Rp)` or `(Lp, Np)` block with atomic adds (their order, and so the float32 rounding,
  varies from run to run). Partial sums per channel block instead would write `Hp / H_blk`
  times that: 16.8 GB per layer for db and for dc at the paper's ListOps size (64 blocks), most
  of the backward's memory and traffic (`scripts/train_compile.py`)."""
  batch, padded_length, channels = inputs["u"].shape
  groups, num_taps, _ = inputs["filters"].shape
  states, rank = inputs["a"].shape[-1], _rank(inputs)
  length, hb, sq = padded_length - options.halo, options.block_channels, pl.squeezed
  every = options.checkpoint_every
  num_chunks = length // (options.chunk * every)
  seq = pl.BlockSpec((sq, sq, length, hb), lambda i, g, h: (i, g, 0, h))
  proj_spec = lambda width: pl.BlockSpec((sq, sq, length, width), lambda i, g, h: (i, g, 0, 0))
  proj = proj_spec(states)
  chan = pl.BlockSpec((sq, hb, states), lambda i, g, h: (g, h, 0))
  mix = pl.BlockSpec((sq, hb), lambda i, g, h: (g, h))
  block = {
      "u": pl.BlockSpec((sq, padded_length, hb), lambda i, g, h: (i, 0, h)),
      "filters": pl.BlockSpec((sq, num_taps, hb), lambda i, g, h: (g, 0, h)),
      "dt_low": proj_spec(rank),
      "dt_proj": pl.BlockSpec((sq, rank, hb), lambda i, g, h: (g, 0, h)),
      "dt_bias": mix,
      "a": chan,
      "b_ch": chan,
      "c_ch": chan,
      "b": proj,
      "c": proj,
      "mix_w": mix,
      "mix_b": mix,
      "skip": pl.BlockSpec((hb,), lambda i, g, h: (h,)),
  }
  in_specs = [block[name] for name in _INPUT_NAMES if inputs[name] is not None]
  in_specs += [
      pl.BlockSpec((sq, num_chunks, sq, hb, states), lambda i, g, h: (i, 0, g, h, 0)),
      pl.BlockSpec((sq, length, hb), lambda i, g, h: (i, 0, h))
  ]
  sequence = jax.ShapeDtypeStruct((batch, groups, length, channels), jnp.float32)
  per_batch = jax.ShapeDtypeStruct((batch, groups, channels, states), jnp.float32)
  per_channel = jax.ShapeDtypeStruct((batch, groups, channels), jnp.float32)
  per_channel_spec = pl.BlockSpec((sq, sq, hb), lambda i, g, h: (i, g, h))
  shared = [(jax.ShapeDtypeStruct(
      (batch, groups, length, rank), jnp.float32), proj_spec(rank))] * options.has_steps
  shared += [(jax.ShapeDtypeStruct(
      (batch, groups, length, states), jnp.float32), proj)] * (options.has_b + options.has_c)
  outputs = [(sequence, seq)] + shared[:options.has_steps]
  outputs += [(per_batch, pl.BlockSpec((sq, sq, hb, states), lambda i, g, h: (i, g, h, 0)))] * 3
  outputs += shared[options.has_steps:]
  outputs.append((jax.ShapeDtypeStruct((batch, groups, num_taps, channels), jnp.float32),
                  pl.BlockSpec((sq, sq, num_taps, hb), lambda i, g, h: (i, g, 0, h))))
  outputs += [(per_channel, per_channel_spec)] * (1 + options.has_input_weight)
  if options.has_steps:
    outputs += [(jax.ShapeDtypeStruct((batch, groups, rank, channels), jnp.float32),
                 pl.BlockSpec((sq, sq, rank, hb), lambda i, g, h: (i, g, 0, h))),
                (per_channel, per_channel_spec)]
  if every > 1:
    outputs.append((jax.ShapeDtypeStruct((batch, groups, every, channels, states), jnp.float32),
                    pl.BlockSpec((sq, sq, every, hb, states), lambda i, g, h: (i, g, 0, h, 0))))
  operands = _given(inputs) + [entries, dz] + [jnp.zeros(x.shape, x.dtype) for x, _ in shared]
  # Each zeros operand aliases its gradient's output, found by position (d dt_low, db, dc).
  shared_outputs = [i for i, output in enumerate(outputs) if any(output is x for x in shared)]
  aliases = {len(operands) - len(shared) + j: out for j, out in enumerate(shared_outputs)}
  return pl.pallas_call(functools.partial(_backward_kernel,
                                          options=options), grid=(batch, groups, channels // hb),
                        in_specs=in_specs + [spec for _, spec in shared],
                        out_specs=[spec for _, spec in outputs
                                  ], out_shape=[shape for shape, _ in outputs],
                        input_output_aliases=aliases, interpret=options.interpret,
                        compiler_params=ps.compiler_params(options.num_warps, options.interpret),
                        name="ms_ssm_layer_backward")(*operands)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused_layer(options: FusedOptions, inputs: dict[str, Array | None]) -> tuple[Array, ...]:
  """`(z,)`, or `(z, input term)` with `options.input_term_out` (the input term's cotangent is
  not used: `fused_layer` returns it under `stop_gradient`)."""
  z, _, *input_term = _forward_call(options, inputs)
  return (z, *input_term)


def _fused_layer_forward(options, inputs):
  z, entries, *input_term = _forward_call(options, inputs)
  return (z, *input_term), (inputs, entries)


def _fused_layer_backward(options, residuals, cotangents):
  inputs, entries = residuals
  dz = cotangents[0]
  du, *rest = _backward_call(options, inputs, entries, dz)
  grads = {"dt_low": rest.pop(0) if options.has_steps else None}
  da, db_ch, dc_ch, *rest = rest
  grads.update(a=da.sum(0), b_ch=db_ch.sum(0), c_ch=dc_ch.sum(0))
  grads["b"] = rest.pop(0) if options.has_b else None
  grads["c"] = rest.pop(0) if options.has_c else None
  grads["filters"] = rest.pop(0).sum(0)
  grads["mix_w"] = rest.pop(0).sum(0) if options.has_input_weight else None
  grads["mix_b"] = rest.pop(0).sum(0)
  grads["dt_proj"], grads["dt_bias"] = ((rest[0].sum(0), rest[1].sum(0)) if options.has_steps else
                                        (None, None))
  u = inputs["u"][:, options.halo:]
  grads["skip"] = jnp.sum(dz * u, axis=(0, 1))
  grads["u"] = jnp.pad(du.sum(1) + dz * inputs["skip"], ((0, 0), (options.halo, 0), (0, 0)))
  return ({name: grads[name] for name in _INPUT_NAMES},)


_fused_layer.defvjp(_fused_layer_forward, _fused_layer_backward)

# ----------------------------------------------------------------------------------------------
# The public entry point: checks, float32, padding.


def _check_shapes(u, filters, steps, a, b, c, b_channel, c_channel, mix_weight, mix_bias,
                  skip) -> None:
  if u.ndim != 3:
    raise ValueError(f"u must have shape (B, L, H); got {u.shape}")
  batch, length, channels = u.shape
  groups = len(filters)
  if groups < 1 or any(f.ndim != 2 or f.shape[1] != channels for f in filters):
    raise ValueError(f"filters must be G >= 1 arrays of shape (R_j, H = {channels}); got "
                     f"{[f.shape for f in filters]}")
  if a.ndim != 3 or a.shape[:2] != (groups, channels):
    raise ValueError(f"a must have shape (G, H, N) = ({groups}, {channels}, N); got {a.shape}")
  if any(x is None for x in steps) and any(x is not None for x in steps):
    raise ValueError("give all of dt_low, dt_proj and dt_bias (selective streams) or none "
                     "(time-invariant streams)")
  for name, x in (("u", u), ("a", a), ("dt_low", steps[0])):
    if x is not None and jnp.iscomplexobj(x):
      raise ValueError(f"the fused MS-SSM kernel supports real states only; {name} is complex "
                       "(use the layer's associative scan for complex backbones)")
  rank = None if steps[0] is None else steps[0].shape[-1]
  num_states = a.shape[2]
  expected = {
      "dt_low": (batch, length, groups, rank), "dt_proj": (groups, rank, channels),
      "dt_bias": (channels, groups), "b": (batch, length, groups, num_states),
      "c": (batch, length, groups, num_states), "b_channel": a.shape, "c_channel": a.shape,
      "mix_weight": (channels, groups), "mix_bias": (channels, groups), "skip": (channels,)
  }
  given = dict(zip(_STEP_NAMES, steps), b=b, c=c, b_channel=b_channel, c_channel=c_channel,
               mix_weight=mix_weight, mix_bias=mix_bias, skip=skip)
  for name, x in given.items():
    if x is not None and x.shape != expected[name]:
      raise ValueError(f"{name} must have shape {expected[name]}; got {x.shape}")


def fused_layer(
    u: Array,
    filters: Sequence[Array],
    a: Array,
    *,
    mix_bias: Array,
    skip: Array,
    dt_low: Array | None = None,
    dt_proj: Array | None = None,
    dt_bias: Array | None = None,
    b: Array | None = None,
    c: Array | None = None,
    b_channel: Array | None = None,
    c_channel: Array | None = None,
    mix_weight: Array | None = None,
    band_activation: str = "none",
    return_input_term: bool = False,
    chunk: int | None = None,
    checkpoint_every: int | None = None,
    block_channels: int | None = None,
    num_warps: int | None = None,
    interpret: bool | None = None,
) -> Array:
  """The causal MS-SSM layer's output `z` (module docstring), differentiable in every array.

  Args:
    u: `(B, L, H)` layer input.
    filters: G causal band filters `(R_j, H)` in stream order (`decomposition.stream_filters`
      with `centered=False`; the raw stream's is `ones((1, H))`).
    a: `(G, H, N)` real eigenvalues: continuous-time with steps, `Delta A` without.
    mix_bias: `(H, G)` the mixer's constant weights b (`ScaleMixer.channel_weights`).
    skip: `(H,)` the D skip.
    dt_low: `(B, L, G, R)` the steps' low-rank projection of the input (S6), or None (steps of
      1: time-invariant streams).
    dt_proj: `(G, R, H)` its expansion to the channels (given with dt_low).
    dt_bias: `(H, G)` the steps' bias (given with dt_low): `delta = softplus(dt_low dt_proj +
      dt_bias)`.
    b, c: `(B, L, G, N)` time-varying projections shared by a stream's channels, or None (1).
    b_channel, c_channel: `(G, H, N)` per-channel factors, or None (1).
    mix_weight: `(H, G)` the mixer's input weights w, or None (static and `none` mixers).
    band_activation: `none` or `silu`, on every band before its stream (`MSSSMLayer`'s).
    return_input_term: also return z's input-dependent part `sum_j w_j u_t y^j_t` `(B, L, H)`
      (one more write; for the layer's `mixer_input_ratio` metric), under `stop_gradient`.
    chunk, block_channels: T and H_blk (defaults from `default_block`).
    checkpoint_every: E, chunks per saved state: the backward keeps `B G H N L / (T E)` floats
      and recomputes the states of E chunks at a time. Default: the smallest E for which
      they take at most two `(B, L, G, H)` arrays, `ceil(N / 2T)` (N padded to a power of 2).
    num_warps: Triton warps per program (GPU; default from `default_block`).
    interpret: run in the Pallas interpreter; default: on the CPU backend only.

  Returns:
    `z` `(B, L, H)` float32, or `(z, input term)` with `return_input_term`.
  """
  steps = (dt_low, dt_proj, dt_bias)
  if band_activation not in ("none", "silu"):
    raise ValueError(f"band_activation must be 'none' or 'silu'; got {band_activation!r}")
  if return_input_term and mix_weight is None:
    raise ValueError("return_input_term needs mix_weight: the static and none mixers have no "
                     "input-dependent term")
  _check_shapes(u, filters, steps, a, b, c, b_channel, c_channel, mix_weight, mix_bias, skip)
  batch, length, channels = u.shape
  num_states = a.shape[2]
  default_chunk, default_channels, default_warps = default_block(batch, channels, len(filters),
                                                                 num_states)
  chunk = chunk or default_chunk
  block_channels = block_channels or default_channels
  num_warps = num_warps or default_warps
  padded_states = ps.next_power_of_2(num_states)
  checkpoint_every = checkpoint_every or -(-padded_states // (2 * chunk))
  if chunk < 1 or checkpoint_every < 1 or block_channels < 1 or block_channels & (block_channels -
                                                                                  1):
    raise ValueError(f"chunk and checkpoint_every must be >= 1 and block_channels a power of 2; "
                     f"got {chunk}, {checkpoint_every}, {block_channels}")
  if interpret is None:
    interpret = target.backend() == "cpu"
  options = FusedOptions(chunk=chunk, checkpoint_every=checkpoint_every,
                         block_channels=block_channels, taps=tuple(f.shape[0] for f in filters),
                         num_warps=num_warps, has_steps=dt_low is not None, has_b=b is not None,
                         has_c=c is not None, has_input_weight=mix_weight is not None,
                         band_silu=band_activation == "silu", input_term_out=return_input_term,
                         interpret=interpret)
  # Padded steps come after the last one (no valid output or gradient sees them); padded
  # channels, states and ranks have zero filters, inputs and factors.
  pad_length, pad_channels = -length % (chunk * checkpoint_every), -channels % block_channels
  pad_states = padded_states - num_states
  pad_rank = 0 if dt_low is None else ps.next_power_of_2(dt_low.shape[-1]) - dt_low.shape[-1]
  f32 = lambda x: None if x is None else jnp.asarray(x, jnp.float32)
  num_taps = max(options.taps)
  ones = jnp.ones_like(a)
  chan = lambda x: jnp.pad(f32(x), ((0, 0), (0, pad_channels), (0, pad_states)))
  per_stream = lambda x, pad_last: None if x is None else jnp.pad(jnp.swapaxes(f32(x), 1, 2), (
      (0, 0), (0, 0), (0, pad_length), (0, pad_last)))
  per_channel = lambda x: None if x is None else jnp.pad(f32(x).T, ((0, 0), (0, pad_channels)))
  inputs = {
      "u":
          jnp.pad(f32(u), ((0, 0), (options.halo, pad_length), (0, pad_channels))),
      "filters":
          jnp.stack(
              [jnp.pad(f32(f), ((0, num_taps - f.shape[0]), (0, pad_channels))) for f in filters]),
      "dt_low":
          per_stream(dt_low, pad_rank),
      "dt_proj":
          None if dt_proj is None else jnp.pad(f32(dt_proj),
                                               ((0, 0), (0, pad_rank), (0, pad_channels))),
      "dt_bias":
          per_channel(dt_bias),
      "a":
          chan(a),
      "b_ch":
          chan(ones if b_channel is None else b_channel),
      "c_ch":
          chan(ones if c_channel is None else c_channel),
      "b":
          per_stream(b, pad_states),
      "c":
          per_stream(c, pad_states),
      "mix_w":
          per_channel(mix_weight),
      "mix_b":
          per_channel(mix_bias),
      "skip":
          jnp.pad(f32(skip), (0, pad_channels)),
  }
  outputs = [x[:, :length, :channels] for x in _fused_layer(options, inputs)]
  if return_input_term:
    return outputs[0], jax.lax.stop_gradient(outputs[1])
  return outputs[0]
