"""MSSSMLayer: the multi-scale state space layer.

Karami, Behrouz, Zhong, Pascanu, Mirrokni, "MS-SSM: A Multi-Scale State Space Model for
Efficient Sequence Modeling", COLM 2025, arXiv 2512.23824, sec. 3. Per channel h:

    bands    v^j = WSWT(u)^j, j = 1..S'         learned stationary wavelet transform (S levels,
                                                kernel K, dilation 2^(s-1)): a^S, d^S..d^1, x
    streams  y^j_t = SSM^j(v^j)_t               one diagonal SSM per band, S4D-real (the
                                                paper's MS-SSM (S4)) or S6 (MS-SSM (S6))
    mixer    z_t[h] = sum_j E_t[h, j] y^j_t[h]   E_t[h, j] = w[h, j] u_t[h] + b[h, j], per channel
    output   out_t[h] = z_t[h] + D[h] u_t[h]

Shapes: u `(B, L, H)` -> `(B, L, H)` in the dtype of u; bands and stream outputs
`(B, L, H, S')`; states `(B, L, H S' N)` (SISO) or `(B, L, S' N / 2)` (s5), float32 or wider.
With `num_levels = 0` there is no decomposition and the layer is its plain backbone (one stream
on the raw input).

The paper's choices: S=3, K=4, per-level per-channel learned filters, S+2 streams including the
raw input, S4D-real A with ZOH (or S6 conditioned on the raw input), scale-dependent A init,
an input-dependent linear mixer without softmax.

Our choices (fields, defaults in parentheses; docs: docs/PAPER.md sec. 2):
- stream order slowest -> fastest `a^S, d^S, ..., d^1, x`, and the stratified init giving
  stream j `A = -(jN+1) .. -(jN+N)` (`scale_init="stratified_a"`);
- random filters LeCun-uniform, one pair per level and channel; `approx_only` streams are
  `a^S..a^1`;
- Delta log-uniform in [dt_min, dt_max] per channel, the same on every stream;
- mixer bias `1/S'` and a small input weight `w` (the layer starts as the average of its
  streams);
- the D skip (per channel, init 1) is added after the mixer, so the input-dependent weights
  never scale it;
- S6 streams project their step with rank ceil(H / 16), as Mamba;
- `decomposition="conv1d"` (the paper's "plain Conv1D" ablation) replaces each band by one
  learned depthwise causal convolution of u as long as the widest band's receptive field;
- `band_activation="silu"` applies SiLU to the bands before the SSMs (Mamba-block variant);
  S6 projections and the skip still read the raw input u;
- bidirectional: the centered decomposition, and a second scan in reverse with the same
  coefficients and its own readout C_reverse; the inputs beyond `lengths` are zeroed, and so
  are the reverse recurrence's bands (`ssm.diagonal`), so that padding never reaches a valid
  output;
- a per-stream s5 backbone (MIMO streams; the `ms_ssm_s5` model), stratified on its own
  log-step range;
- `impl` (`ssm.diagonal`): how the streams run. `scan` (default), `chunked` (memory B T P
  instead of B L P), `pallas` (s4d_real, s6: causal wavelet layers with a per-channel mixer run
  whole in one kernel, `pallas_ms_ssm`, which reads u and writes only the output; other layers
  run their streams in `pallas_scan`'s, which discretizes, recurs and reads out all streams in
  one launch; neither stores per-step states; s5: the complex recurrence kernel,
  `pallas_recurrence`), `conv` (time-invariant backbones:
  no states; SISO streams fold the decomposition and the mixer into their kernels,
  `folded_conv`, s5 streams convolve each band; at the paper's sizes much faster than the
  chunked scan, docs/PAPER.md, "Memory") or `auto`. Every impl has the same parameters, so a
  checkpoint trained with one loads with any other.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ms_ssm_jax import pallas_ms_ssm
from ms_ssm_jax import target
from ms_ssm_jax.ms_ssm import decomposition
from ms_ssm_jax.ms_ssm import folded_conv
from ms_ssm_jax.ms_ssm import mixer as mixer_lib
from ms_ssm_jax.ms_ssm import recurrent
from ms_ssm_jax.ms_ssm import streams as streams_lib
from ms_ssm_jax.ssm import common
from ms_ssm_jax.ssm import diagonal

Array = jax.Array

BAND_ACTIVATIONS: tuple[str, ...] = ("none", "silu")
# The paper's S+2 streams: a^S, d^S, ..., d^1 and the raw input (`decomposition.STREAM_LAYOUTS`).
STREAM_LAYOUT = "details+approx+raw"


class MSSSMLayer(nn.Module):
  """Multi-scale SSM layer, `(B, L, H) -> (B, L, H)`; see the module docstring.

  Attributes:
    d_model: H, the number of channels.
    num_levels: S, wavelet levels (0: the plain backbone).
    kernel_size: K >= 2, taps per wavelet filter.
    backbone: one of `streams.BACKBONES`; `none` mixes the bands themselves (no SSM, no
      state: leave `state_per_stream` unset; `impl="scan"`).
    state_per_stream: N per stream.
    scale_init: one of `streams.SCALE_INITS`.
    dt_min, dt_max: range of the log-uniform step init.
    s6_condition_on: `raw` or `band` (s6).
    s5_blocks: HiPPO-N blocks per stream (s5).
    mixer: one of `mixer.MIXERS`. With a linear-input mixer, applying the layer with the
      `intermediates` collection mutable sows `mixer_input_ratio`: mean |input-dependent
      term| / mean |bias term + D u| (`mixer.input_ratio`), the train loop's stability metric.
    band_activation: one of `BAND_ACTIVATIONS`, between decomposition and SSMs.
    decomposition: one of `decomposition.DECOMPOSITIONS`: `wavelet` (the paper's layer) or
      `conv1d` (the paper's "plain Conv1D" ablation: each band one learned depthwise causal
      convolution reaching as far as the widest wavelet band, `Conv1DDecomposition`; no
      `step`).
    bidirectional: centered decomposition and a reverse scan over the valid length.
    impl: how the streams run, one of `diagonal.IMPLS` (`conv` for time-invariant backbones,
      `pallas` for s4d_real, s6 and s5; `scan` with backbone `none`).
    chunk_size: T, steps per chunk of `impl="chunked"`.
  """

  d_model: int
  num_levels: int = 3
  kernel_size: int = 4
  backbone: str = "s4d_real"
  state_per_stream: int | None = None
  scale_init: str = "stratified_a"
  dt_min: float = 1e-3
  dt_max: float = 1e-1
  s6_condition_on: str = "raw"
  s5_blocks: int = 1
  mixer: str = "linear_input"
  band_activation: str = "none"
  decomposition: str = "wavelet"
  bidirectional: bool = False
  impl: str = "scan"
  chunk_size: int = diagonal.DEFAULT_CHUNK_SIZE

  def __post_init__(self):
    super().__post_init__()
    self._check_config()

  def _check_config(self) -> None:
    if self.d_model < 1:
      raise ValueError(f"d_model must be >= 1, got {self.d_model}")
    if self.kernel_size < 2:
      raise ValueError(f"kernel_size must be >= 2 (a 1-tap filter has no scale), "
                       f"got {self.kernel_size}")
    decomposition.check_layout(self.num_levels, STREAM_LAYOUT)
    common.check_choice("backbone", self.backbone, streams_lib.BACKBONES)
    common.check_choice("scale_init", self.scale_init, streams_lib.SCALE_INITS)
    common.check_choice("s6_condition_on", self.s6_condition_on, streams_lib.S6_CONDITIONS)
    common.check_choice("band_activation", self.band_activation, BAND_ACTIVATIONS)
    common.check_choice("decomposition", self.decomposition, decomposition.DECOMPOSITIONS)
    if self.decomposition == "conv1d" and self.num_levels < 1:
      raise ValueError("decomposition='conv1d' replaces the bands of num_levels >= 1 wavelet "
                       f"levels; got num_levels={self.num_levels}")
    mixer_lib.check_mixer(self.mixer)
    if self.backbone == "none":
      self._check_no_ssm()
    else:
      self._check_state()
      diagonal.check_impl(self.impl, self.chunk_size, time_invariant=self.backbone
                          in streams_lib.LTI_BACKBONES, fusable=self.backbone
                          in streams_lib.PALLAS_BACKBONES,
                          layer=f"MSSSMLayer(backbone={self.backbone!r})")
    if not 0.0 < self.dt_min <= self.dt_max:
      raise ValueError(f"need 0 < dt_min <= dt_max, got [{self.dt_min}, {self.dt_max}]")
    if self.impl == "conv" and self.band_activation != "none":
      raise ValueError(f"band_activation={self.band_activation!r} acts between the decomposition "
                       "and the streams, so the layer is no convolution: use another impl with "
                       "it, or band_activation='none' with impl='conv'")

  def _check_state(self) -> None:
    n = self.state_per_stream
    if n is None or n < 1:
      raise ValueError(f"backbone={self.backbone!r} needs state_per_stream (N per stream) >= 1; "
                       f"got {n}")
    if self.backbone == "s5" and n % 2:
      raise ValueError(f"backbone={self.backbone!r} keeps conjugate pairs: the state per "
                       f"stream must be even, got {n}")
    if self.backbone == "s5" and n % (2 * self.s5_blocks):
      raise ValueError(f"s5 needs the state per stream ({n}) divisible by 2 * s5_blocks "
                       f"({2 * self.s5_blocks})")

  def _check_no_ssm(self) -> None:
    if self.state_per_stream is not None:
      raise ValueError("backbone='none' has no stream states: leave state_per_stream unset "
                       f"(got {self.state_per_stream})")
    if self.impl != "scan":
      raise ValueError(f"backbone='none' runs no SSM: leave impl='scan' (got {self.impl!r})")

  @property
  def num_streams(self) -> int:
    """S' = S+2; 1 when num_levels = 0."""
    return decomposition.num_streams(self.num_levels, STREAM_LAYOUT)

  @property
  def stream_state_size(self) -> int:
    """N, the state per stream (0 for backbone `none`)."""
    return 0 if self.backbone == "none" else self.state_per_stream

  def state_counts(self) -> common.StateCounts:
    """States per channel (S' N, the number the paper matches against baselines), in total,
    and the real numbers carried per sequence and step (both directions)."""
    per_channel = self.num_streams * self.stream_state_size
    mimo = self.backbone in streams_lib.MIMO_BACKBONES
    total = per_channel if mimo else self.d_model * per_channel
    directions = 2 if self.bidirectional else 1  # s5 carries N/2 pairs: N floats
    return common.StateCounts(per_channel=per_channel, total=total,
                              carried_floats=directions * total)

  @nn.compact
  def __call__(self, u: Array, lengths: Array | None = None) -> Array:
    """u `(B, L, H)`, lengths `(B,)` (bidirectional only; causal layers ignore it)."""
    common.check_inputs(u, lengths, self.d_model)
    if self.bidirectional:
      u = common.zero_beyond_lengths(u, lengths)
    front_end = (decomposition.WaveletDecomposition
                 if self.decomposition == "wavelet" else decomposition.Conv1DDecomposition)
    decomp = front_end(num_levels=self.num_levels, kernel_size=self.kernel_size,
                       streams=STREAM_LAYOUT, centered=self.bidirectional, name="decomposition")
    stream_ssms = streams_lib.StreamSSMs(backbone=self.backbone,
                                         state_per_stream=self.stream_state_size,
                                         scale_init=self.scale_init, dt_min=self.dt_min,
                                         dt_max=self.dt_max, s6_condition_on=self.s6_condition_on,
                                         s5_blocks=self.s5_blocks, bidirectional=self.bidirectional,
                                         impl=self.impl, chunk_size=self.chunk_size, name="streams")
    mixer = mixer_lib.ScaleMixer(mixer=self.mixer, name="mixer")
    d = self.param("D", nn.initializers.ones, (self.d_model,), jnp.float32)
    if self._runs_fused_kernel():
      return self._fused_layer(u, decomp, stream_ssms, mixer, d)
    # MIMO (s5) streams stay band-wise: their folded kernels `(L, H, H)` per stream make
    # the time-domain composition and the boundary corrections cost more than the S' FFT
    # products they save (XLA cost analysis, B=16, L=4096, H=128, S=4, causal static mixer,
    # forward+backward: 269 GFLOP / 755 GB folded against 225 GFLOP / 95 GB band-wise).
    if self.impl == "conv" and self.backbone not in streams_lib.MIMO_BACKBONES:
      input_term, z = self._folded_terms(u, lengths, decomp, stream_ssms, mixer, d)
    else:
      bands = decomp(u)
      if self.band_activation == "silu":
        bands = jax.nn.silu(bands)
      # Centered bands are nonzero a few steps past the end; `diagonal` zeroes the reverse
      # recurrence's inputs there, so that it starts from a zero state at the last valid step.
      y = bands if self.backbone == "none" else stream_ssms(bands, u, lengths)
      input_term, z = mixer.terms(y.astype(u.dtype), u)
      z = z + d.astype(u.dtype) * u
    if input_term is not None:
      if self.is_mutable_collection("intermediates"):
        self.sow("intermediates", "mixer_input_ratio",
                 mixer_lib.input_ratio(input_term, z, lengths))
      z = z + input_term
    return z.astype(u.dtype)

  def _runs_fused_kernel(self) -> bool:
    """Whether the whole layer runs in `pallas_ms_ssm`'s kernel: `impl` `pallas` (or `auto` on
    a GPU) on a causal wavelet layer with s4d_real or raw-conditioned s6 streams and a
    per-channel mixer (with or without SiLU on the bands). Other `pallas` layers, and every
    layer on a TPU (the kernel's backward adds with Triton's atomics), run only their streams
    in a kernel (`pallas_scan`)."""
    if (self.bidirectional or self.decomposition != "wavelet" or target.backend() == "tpu" or
        self.mixer not in mixer_lib.PER_CHANNEL_MIXERS or
        self.backbone not in streams_lib.PALLAS_BACKBONES or
        (self.backbone == "s6" and self.s6_condition_on != "raw")):
      return False
    return diagonal.resolve_impl(self.impl, fusable=True,
                                 layer=f"MSSSMLayer(backbone={self.backbone!r})") == "pallas"

  def _fused_layer(self, u: Array, decomp: decomposition.WaveletDecomposition,
                   stream_ssms: streams_lib.StreamSSMs, mixer: mixer_lib.ScaleMixer,
                   d: Array) -> Array:
    """The layer's output `(B, L, H)` by `pallas_ms_ssm.fused_layer`, which reads u and writes
    only `(B, L, H)`: no bands or stream outputs reach memory (`_runs_fused_kernel`)."""
    width, num_streams = u.shape[-1], self.num_streams
    filters, _ = decomp.stream_filters(width, jnp.float32)
    streams = stream_ssms.discretized(width, num_streams)
    if isinstance(streams, streams_lib.SelectiveProjections):
      stream_inputs = streams.fused_layer_inputs(u)
    else:  # s4d_real: steps of 1 with a = Delta A
      per_stream = lambda x: jnp.swapaxes(x, 0, 1)  # (H, S', N) -> (S', H, N)
      stream_inputs = dict(a=per_stream(streams.log_a_bar), b_channel=per_stream(streams.b_bar),
                           c_channel=per_stream(streams.c))
    weight, bias = mixer.channel_weights(width, num_streams)
    sow_ratio = weight is not None and self.is_mutable_collection("intermediates")
    out = pallas_ms_ssm.fused_layer(u, filters, mix_weight=weight, mix_bias=bias, skip=d,
                                    band_activation=self.band_activation,
                                    return_input_term=sow_ratio, **stream_inputs)
    if sow_ratio:
      out, input_term = out
      self.sow("intermediates", "mixer_input_ratio",
               mixer_lib.input_ratio(input_term, out - input_term))
    return out.astype(u.dtype)

  def _folded_terms(self, u: Array, lengths: Array | None,
                    decomp: decomposition.WaveletDecomposition | decomposition.Conv1DDecomposition,
                    stream_ssms: streams_lib.StreamSSMs, mixer: mixer_lib.ScaleMixer,
                    d: Array) -> tuple[Array | None, Array]:
    """`impl="conv"` with SISO streams: the mixer's `(input_term, constant_term + D u)`, each
    `(B, L, H)`, with the decomposition folded into the stream kernels (`folded_conv`)."""
    width, num_streams = u.shape[-1], self.num_streams
    dtype = jnp.result_type(u.dtype, jnp.float32)
    filters, lookaheads = decomp.stream_filters(width, dtype)
    streams = stream_ssms.discretized(width, num_streams)
    skip = d.astype(dtype)
    # The stream outputs' weights: one folded kernel per output (D rides on the constant one).
    per_channel = mixer.channel_weights(width, num_streams)
    if per_channel is not None:
      weight, bias = per_channel
      mix = jnp.stack([bias] if weight is None else [weight, bias], axis=-1)  # (H, S', Q)
      skips = jnp.zeros(mix.shape[::2], dtype).at[:, -1].set(skip)
    else:  # weights that mix the channels: the S' stream outputs themselves
      mix, skips = jnp.broadcast_to(jnp.eye(num_streams), (width, num_streams, num_streams)), None
    out = folded_conv.folded_convolution(u, streams, filters, lookaheads, mix.astype(dtype),
                                         bidirectional=self.bidirectional, lengths=lengths,
                                         skip=skips).astype(u.dtype)
    if per_channel is not None:
      return (None if weight is None else u * out[..., 0]), out[..., -1]
    input_term, z = mixer.terms(out, u)
    return input_term, z + skip.astype(u.dtype) * u

  def init_state(self, batch_size: int, dtype: Any = jnp.float32) -> dict[str, Any]:
    """Zero ring buffers and stream states for `step` on inputs of `dtype` (`recurrent`)."""
    return recurrent.init_state(self, batch_size, dtype)

  def step(self, state: dict[str, Any], u_t: Array) -> tuple[dict[str, Any], Array]:
    """One sample: state, u_t `(B, H)` -> (state, y_t `(B, H)`) (`ms_ssm.recurrent`)."""
    return recurrent.step(self, self.variables["params"], state, u_t)
