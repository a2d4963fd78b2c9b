"""Speed and memory of the recurrence and of the sequence layers; prints markdown tables.

Sections:
  scan    the bare recurrence `x_t = a_t x_{t-1} + b_t` (complex64) against the bandwidth
          floor: read `b` once and write `x` once (16 bytes per element; 24 when `a` varies
          in time), at the copy bandwidth measured in the same run; the associative scan,
          a sequential `lax.scan` and the Pallas kernel (`pallas_recurrence`, real pairs).
  layers  forward and forward+backward time, tokens/s, memory, and XLA's count of FLOPs and
          memory traffic of each layer at matched width H and total state per step; causal,
          and with `--directions causal,bidirectional` also bidirectional (a full `lengths`
          vector, as the blocks pass it).
  parts   each MS-SSM layer of `layers` whole and with one part (decomposition, streams,
          mixer) replaced by a cheap stand-in of the same shape: what each part costs.
  kernels the MS-SSM layer at the paper's ListOps size (B=50, L=2048, H=128, S=3 levels, 5
          streams, N states per stream) for the s4d_real and s6 backbones: associative scan
          (full and chunked), the fused Pallas kernel, and the FFT path (s4d_real); plus the
          bare kernel under several block shapes.

Usage:
  python scripts/bench_layers.py --section scan --lengths 1024,4096,16384,65536
  python scripts/bench_layers.py --section layers --lengths 1024,4096
  python scripts/bench_layers.py --section parts --lengths 4096 --only "s5 x6"
  python scripts/bench_layers.py --section layers --lengths 4096 --only "=s5,s4d (real), conv"
  python scripts/bench_layers.py --section layers --lengths 144 --tokens 2304 --width 64 \
      --siso_state 80 --suite_levels 3 --only "s4d_real x5 streams, conv" \
      --directions causal,bidirectional
  python scripts/bench_layers.py --section kernels --batch 50 --lengths 2048 --states 16,128
Results also go to results/bench_<section>.json (or $BENCH_RESULTS_DIR), rewritten after every
row, so a run stopped by a time limit keeps its finished rows.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from typing import Any, Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_common  # noqa: E402
from ms_ssm_jax import layers, pallas_recurrence, pallas_scan, scan  # noqa: E402
from ms_ssm_jax.ms_ssm import decomposition  # noqa: E402
from ms_ssm_jax.ms_ssm import mixer as mixer_lib  # noqa: E402
from ms_ssm_jax.ms_ssm import streams as streams_lib  # noqa: E402

Array = jax.Array


def _sequential(a, b):
  """Reference point: a step-by-step `lax.scan` over time (what the layers must not do)."""

  def step(x, ab):
    x = ab[0] * x + ab[1]
    return x, x

  a_t = jnp.broadcast_to(a, b.shape)
  _, xs = jax.lax.scan(step, jnp.zeros_like(b[:, 0]),
                       (jnp.swapaxes(a_t, 0, 1), jnp.swapaxes(b, 0, 1)))
  return jnp.swapaxes(xs, 0, 1)


def bench_scan(log: bench_common.RowLog, lengths: list[int], batch: int, states: int, repeats: int,
               pallas_blocks: list[tuple[int, int, int, int]]) -> None:
  """The recurrence's variants; `pallas_blocks`: `pallas_recurrence` shapes (segment, chunk,
  block_states, warps), timed on real pairs (the layout the layers hand it)."""
  bandwidth = bench_common.copy_bandwidth_gbs()
  print(f"copy bandwidth: {bandwidth:.0f} GB/s (read + write)")
  rng = np.random.default_rng(0)
  for length in lengths:
    shape = (batch, length, states)
    b = jnp.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape), jnp.complex64)
    a_inv = jnp.asarray(0.99 * np.exp(1j * rng.uniform(-1, 1, states)), jnp.complex64)
    a_var = jnp.broadcast_to(a_inv, shape) * jnp.asarray(rng.uniform(0.9, 1.0, shape), jnp.float32)
    # name: (function, its arguments, bytes per element of the floor)
    variants = {
        "associative, a (P,)": (scan.linear_recurrence, (a_inv, b), 16),
        "associative, a (B,L,P)": (scan.linear_recurrence, (a_var, b), 24),
        "sequential lax.scan, a (P,)": (_sequential, (a_inv, b), 16),
    }
    pairs = (jnp.stack([a_inv.real, a_inv.imag]), jnp.stack([b.real, b.imag], axis=1))
    for segment, chunk, block, warps in pallas_blocks:
      name = f"pallas pairs, a (P,), segment {segment}, T {chunk}, {block} states, {warps} warps"
      variants[name] = (functools.partial(pallas_recurrence.linear_recurrence, segment=segment,
                                          chunk=chunk, block_states=block,
                                          num_warps=warps), pairs, 16)
    for name, (fn, args, bytes_per_element) in variants.items():
      timing = bench_common.time_fn(fn, *args, repeats=repeats)
      floor_ms = bytes_per_element * b.size / (bandwidth * 1e9) * 1e3
      log.add({
          "L": length,
          "B": batch,
          "P": states,
          "variant": name,
          "ms": timing.median_ms,
          "floor_ms": floor_ms,
          "fraction_of_floor": floor_ms / timing.median_ms,
          "temp_GB": None if timing.temp_bytes is None else timing.temp_bytes / 1e9,
      })


def layer_suite(
    mimo_state: int, siso_state: int,
    levels: tuple[int, ...] = (1, 2, 4)) -> dict[str, tuple[str, dict]]:
  """Layers at matched total state: MIMO ones carry `mimo_state` floats per step (S5 with
  P = mimo_state under conjugate symmetry, LRU with mimo_state/2 complex states, MS-SSM with
  per-stream S5 sharing P = mimo_state), SISO ones `siso_state` states per channel (S4D-real,
  MS-SSM with S4D-real streams splitting them, S6). MS-SSM layers come with the paper's
  input-dependent mixer and, as `..., static mixer`, with the static one, whose cost is
  negligible: the difference is the cost of `E_t = W_E u_t`, an H x H(S+2) product per step.
  `s5, pallas` and `lru, pallas` run the recurrence in the Pallas kernel (`pallas_recurrence`).
  `, conv` rows run `impl="conv"`: the FFT convolution, for MS-SSM with the decomposition,
  the mixer weights and D folded into one kernel per channel (two with the paper's mixer)."""
  suite = {
      "s5": ("s5", {"state_size": mimo_state}),
      "s5, pallas": ("s5", {"state_size": mimo_state, "impl": "pallas"}),
      "lru": ("lru", {"state_size": mimo_state // 2}),
      "lru, pallas": ("lru", {"state_size": mimo_state // 2, "impl": "pallas"}),
      "s4d (real)": ("s4d", {"state_size": siso_state, "a_init": "real"}),
      "s4d (real), conv": ("s4d", {"state_size": siso_state, "a_init": "real", "impl": "conv"}),
      "s6": ("s6", {"state_size": siso_state}),
  }
  for num_levels in levels:
    streams = num_levels + 2
    s5_streams = {
        "num_levels": num_levels, "backbone": "s5",
        "state_per_stream": mimo_state // (2 * streams) * 2
    }
    suite[f"ms_ssm s5 x{streams} streams"] = ("ms_ssm", s5_streams)
    suite[f"ms_ssm s5 x{streams} streams, static mixer"] = ("ms_ssm",
                                                            {**s5_streams, "mixer": "static"})
    siso_streams = {
        "num_levels": num_levels, "backbone": "s4d_real",
        "state_per_stream": max(1, siso_state // streams)
    }
    suite[f"ms_ssm s4d_real x{streams} streams"] = ("ms_ssm", siso_streams)
    suite[f"ms_ssm s4d_real x{streams} streams, conv"] = ("ms_ssm",
                                                          {**siso_streams, "impl": "conv"})
    suite[f"ms_ssm s4d_real x{streams} streams, conv, static mixer"] = (
        "ms_ssm", {**siso_streams, "impl": "conv", "mixer": "static"})
  return suite


def _timed_row(row: dict, fns: dict[str, Callable[..., Any]], args: tuple, repeats: int) -> dict:
  """Adds, per `<label>` of `fns`, `<label>_ms`, `_temp_GB` (XLA's temp allocation of the
  compiled function), `_peak_GB` (allocator peak, GPU/TPU; process-wide where it cannot be
  reset), and XLA's counts `_GFLOP` and `_traffic_GB` (memory traffic) to `row`."""
  for label, fn in fns.items():
    try:
      timing = bench_common.time_fn(fn, *args, repeats=repeats)
    except Exception as e:  # noqa: BLE001 - out of memory is a result, reported as such.
      row[f"{label}_ms"] = f"failed: {type(e).__name__}"
      continue
    row[f"{label}_ms"] = timing.median_ms
    for key, value in (("temp_GB", timing.temp_bytes), ("peak_GB", timing.peak_bytes),
                       ("GFLOP", timing.flops), ("traffic_GB", timing.bytes_accessed)):
      row[f"{label}_{key}"] = None if value is None else value / 1e9
  return row


def _time_layer(row: dict, apply: Callable[[dict, Array], Array], params: dict, u: Array,
                repeats: int) -> dict:
  """`_timed_row` of the forward pass and of the gradient of `sum(apply(params, u)**2)`, plus
  tokens/s."""
  loss_grad = jax.grad(lambda p, u: jnp.sum(apply(p, u)**2), argnums=(0, 1))
  _timed_row(row, {"fwd": apply, "fwd+bwd": loss_grad}, (params, u), repeats)
  if isinstance(row.get("fwd+bwd_ms"), float):
    row["tokens/s (fwd+bwd)"] = u.shape[0] * u.shape[1] / (row["fwd+bwd_ms"] * 1e-3)
  return row


def parse_only(text: str) -> list[str]:
  """`--only`'s filters: split at commas not followed by a space (names hold ", ")."""
  return [v for v in re.split(r",(?! )", text) if v]


def matches(only: str, name: str) -> bool:
  """A filter matches names containing it, or, written `=name`, that name alone."""
  return only[1:] == name if only.startswith("=") else only in name


def selected_layers(width: int, mimo_state: int, siso_state: int, only: list[str],
                    levels: tuple[int, ...] = (1, 2, 4),
                    bidirectional: bool = False) -> Iterator[tuple[str, str, nn.Module]]:
  """`(suite name, registry name, layer)` of the `layer_suite` entries matching `only`
  (bidirectional: those that have a reverse direction, made bidirectional)."""
  for name, (layer_name, overrides) in layer_suite(mimo_state, siso_state, levels).items():
    if not only or any(matches(o, name) for o in only):
      cfg = layers.default_layer_config(layer_name)
      cfg.update(overrides)
      if bidirectional:
        if "bidirectional" not in cfg:
          continue
        cfg.bidirectional = True
      yield name, layer_name, layers.make_layer(layer_name, width, cfg)


def layer_inputs(layer: nn.Module, length: int, tokens: int, width: int) -> tuple[dict, Array]:
  """Parameters and a random input `(tokens // length, length, width)` for `layer`."""
  rng = jax.random.PRNGKey(0)
  u = jax.random.normal(rng, (max(1, tokens // length), length, width), jnp.float32)
  return layer.init(rng, u[:1, :16]), u


def bench_layers(log: bench_common.RowLog, lengths: list[int], tokens: int, width: int,
                 mimo_state: int, siso_state: int, repeats: int, only: list[str],
                 levels: tuple[int, ...], directions: list[str]) -> None:
  for direction in directions:
    bidirectional = direction == "bidirectional"
    for name, _, layer in selected_layers(width, mimo_state, siso_state, only, levels,
                                          bidirectional):
      for length in lengths:
        params, u = layer_inputs(layer, length, tokens, width)
        row = {
            "layer": name, "direction": direction, "L": length, "B": u.shape[0], "H": width,
            "floats/step": layer.state_counts().carried_floats,
            "params": layers.count_parameters(params)
        }
        # Bidirectional layers run with lengths, as the blocks call them (all sequences full).
        lengths_arg = jnp.full(u.shape[:1], length, jnp.int32) if bidirectional else None
        apply = functools.partial(_apply_with_lengths, layer, lengths=lengths_arg)
        log.add(_time_layer(row, apply, params, u, repeats))


def _apply_with_lengths(layer: nn.Module, params: dict, u: Array, lengths: Array | None) -> Array:
  return layer.apply(params, u, lengths)


# The MS-SSM layer's parts, the method the layer calls on each, and the cheap stand-in (same
# output) that replaces it in the `parts` section: bands = copies of u, stream outputs = their
# bands, mixer = a plain sum with no input-dependent term.
PART_STAND_INS: dict[str, tuple[type, str, Callable[..., Any]]] = {
    "decomposition": (decomposition.WaveletDecomposition, "__call__", lambda module, u: jnp.repeat(
        u[..., None], decomposition.num_streams(module.num_levels, module.streams), -1)),
    "streams": (streams_lib.StreamSSMs, "__call__", lambda module, bands, u, lengths: bands),
    "mixer": (mixer_lib.ScaleMixer, "terms", lambda module, y, u: (None, jnp.sum(y, axis=-1))),
}


def apply_without(layer: nn.Module, part: str) -> Callable[[dict, Array], Array]:
  """`layer.apply` with the MS-SSM part `part` replaced by its stand-in (`PART_STAND_INS`)."""
  part_class, method, stand_in = PART_STAND_INS[part]

  def replace(next_fun, args, kwargs, context):
    if isinstance(context.module, part_class) and context.method_name == method:
      return stand_in(context.module, *args, **kwargs)
    return next_fun(*args, **kwargs)

  def apply(params: dict, u: Array) -> Array:
    with nn.intercept_methods(replace):  # active while jit traces, which is what counts
      return layer.apply(params, u)

  return apply


def bench_parts(log: bench_common.RowLog, lengths: list[int], tokens: int, width: int,
                mimo_state: int, siso_state: int, repeats: int, only: list[str],
                levels: tuple[int, ...]) -> None:
  """Each MS-SSM layer of `layer_suite` whole and with one part at a time replaced by a cheap
  stand-in: the difference to the whole layer is what that part costs."""
  for name, layer_name, layer in selected_layers(width, mimo_state, siso_state, only, levels):
    if layer_name != "ms_ssm" or layer.impl == "conv":  # conv folds the parts into one
      continue
    for length in lengths:
      params, u = layer_inputs(layer, length, tokens, width)
      variants = {
          "none": layer.apply, **{part: apply_without(layer, part) for part in PART_STAND_INS}
      }
      for replaced, apply in variants.items():
        row = {"layer": name, "replaced": replaced, "L": length, "B": u.shape[0], "H": width}
        log.add(_time_layer(row, apply, params, u, repeats))


def kernel_variants(backbone: str) -> dict[str, dict]:
  """How the MS-SSM layer evaluates its streams: name -> layer-config overrides."""
  variants = {
      "associative, full": {"impl": "scan"},
      "associative, chunked T=128": {"impl": "chunked", "chunk_size": 128},
      "pallas": {"impl": "pallas"},
  }
  if backbone == "s4d_real":
    variants["fft (impl=conv)"] = {"impl": "conv"}
  return variants


def bench_kernels(log: bench_common.RowLog, batch: int, length: int, width: int, levels: int,
                  states: list[int], repeats: int, block_options: list[tuple[int, ...]],
                  only: list[str]) -> None:
  rng = jax.random.PRNGKey(0)
  u = jax.random.normal(rng, (batch, length, width), jnp.float32)
  for n in states:
    for backbone in ("s4d_real", "s6"):
      for variant, overrides in kernel_variants(backbone).items():
        if only and not any(matches(o, variant) for o in only):
          continue
        cfg = layers.default_layer_config("ms_ssm")
        cfg.update({"num_levels": levels, "backbone": backbone, "state_per_stream": n, **overrides})
        layer = layers.make_layer("ms_ssm", width, cfg)
        params = layer.init(rng, u[:1, :16])
        row = {
            "what": f"ms_ssm {backbone}", "variant": variant, "N": n, "B": batch, "L": length,
            "H": width, "streams": layer.num_streams
        }
        log.add(_time_layer(row, layer.apply, params, u, repeats))
    # The bare kernel (s6 form: all streams as groups) under several block shapes.
    groups = levels + 2
    keys = jax.random.split(rng, 4)
    seq = (batch, length, groups, width)
    inputs = (jax.random.normal(keys[0], seq),
              jnp.exp(jax.random.uniform(keys[1], seq, minval=-6.0, maxval=-2.0)),
              -jnp.broadcast_to(jnp.arange(1, n + 1, dtype=jnp.float32), (groups, width, n)),
              jax.random.normal(keys[2], (batch, length, groups, n)),
              jax.random.normal(keys[3], (batch, length, groups, n)))
    timed = set()
    for chunk, block, state_block, warps in block_options:
      state_block = min(state_block or n, n)  # 0 (or more than N): all states in one program
      shape = (chunk, block, state_block, warps)
      if shape in timed:
        continue
      timed.add(shape)
      scan_fn = functools.partial(pallas_scan.selective_scan, chunk=chunk, block_channels=block,
                                  block_states=state_block, num_warps=warps)
      kernel = lambda u, d, a, b, c: scan_fn(u, d, a, b=b, c=c)
      fns = {
          "fwd": kernel, "fwd+bwd": jax.grad(lambda *x: jnp.sum(kernel(*x)**2),
                                             argnums=(0, 1, 2, 3, 4))
      }
      row = {
          "what": "bare kernel",
          "variant": f"T={chunk} H_blk={block} N_blk={state_block} warps={warps}", "N": n,
          "B": batch, "L": length, "H": width, "streams": groups
      }
      log.add(_timed_row(row, fns, inputs, repeats))


def _shapes(parser: argparse.ArgumentParser, flag: str, text: str,
            form: str) -> list[tuple[int, ...]]:
  """`--<flag>`'s comma-separated shapes of four `x`-separated integers (`form` names them)."""
  shapes = [tuple(int(v) for v in shape.split("x")) for shape in text.split(",") if shape]
  if any(len(shape) != 4 for shape in shapes):
    parser.error(f"--{flag} takes {form} shapes; got {text}")
  return shapes


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--section", choices=["scan", "layers", "parts", "kernels"], default="scan")
  parser.add_argument("--tokens", type=int, default=65536, help="layers, parts: B = tokens // L")
  parser.add_argument("--width", type=int, default=128, help="layers, parts: H")
  parser.add_argument("--mimo_state", type=int, default=256)
  parser.add_argument("--siso_state", type=int, default=64)
  parser.add_argument(
      "--only", default="", help="layers, parts: layer-name filters; kernels: variant filters; "
      "separated by commas without a space after them (names hold "
      "', '); a filter matches names containing it, `=name` that name "
      "alone")
  parser.add_argument("--lengths", default="1024,4096,16384,65536")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--states", default="256",
                      help="scan: P, complex states per step; kernels: N per stream, a list")
  parser.add_argument("--levels", type=int, default=3, help="kernels: S, decomposition levels")
  parser.add_argument("--suite_levels", default="1,2,4",
                      help="layers, parts: the S of the suite's MS-SSM layers, a list")
  parser.add_argument(
      "--directions", default="causal",
      help="layers: causal and/or bidirectional, a list (bidirectional rows for "
      "the layers that have a reverse direction)")
  parser.add_argument(
      "--kernel_blocks", default="8x16x0x4,8x32x0x4,8x16x32x4,8x32x32x4,8x64x16x4,8x32x16x2,"
      "8x16x64x4,16x32x32x4", help="kernels: bare-kernel shapes TxH_blkxN_blkxwarps to time "
      "(N_blk 0: all N states in one program)")
  parser.add_argument("--recurrence_blocks",
                      default="256x16x32x1,1024x16x32x1,256x8x32x1,256x32x32x1,256x16x64x2",
                      help="scan: pallas_recurrence shapes SEGMENTxTxBLOCKxwarps to time")
  parser.add_argument("--repeats", type=int, default=20)
  args = parser.parse_args()
  lengths = [int(v) for v in args.lengths.split(",")]
  suite_levels = tuple(int(v) for v in args.suite_levels.split(","))
  directions = [v for v in args.directions.split(",") if v]
  if not directions or any(v not in ("causal", "bidirectional") for v in directions):
    parser.error(f"--directions takes causal and/or bidirectional; got {args.directions!r}")
  print(f"device: {bench_common.device_description()}, jax {jax.__version__}")
  log = bench_common.RowLog(f"bench_{args.section}", vars(args))
  if args.section == "scan":
    bench_scan(
        log, lengths, args.batch, int(args.states), args.repeats,
        _shapes(parser, "recurrence_blocks", args.recurrence_blocks, "SEGMENTxTxBLOCKxwarps"))
    columns = ["L", "B", "P", "variant", "ms", "floor_ms", "fraction_of_floor", "temp_GB"]
  elif args.section == "kernels":
    blocks = _shapes(parser, "kernel_blocks", args.kernel_blocks, "TxH_blkxN_blkxwarps")
    bench_kernels(log, args.batch, lengths[0], args.width, args.levels,
                  [int(v) for v in args.states.split(",")], args.repeats, blocks,
                  parse_only(args.only))
    columns = [
        "what", "variant", "N", "B", "L", "H", "streams", "fwd_ms", "fwd_temp_GB", "fwd_peak_GB",
        "fwd+bwd_ms", "fwd+bwd_temp_GB", "fwd+bwd_peak_GB"
    ]
  elif args.section == "parts":
    bench_parts(log, lengths, args.tokens, args.width, args.mimo_state, args.siso_state,
                args.repeats, parse_only(args.only), suite_levels)
    columns = [
        "layer", "replaced", "L", "B", "fwd_ms", "fwd+bwd_ms", "fwd+bwd_GFLOP",
        "fwd+bwd_traffic_GB", "fwd+bwd_temp_GB"
    ]
  else:
    bench_layers(log, lengths, args.tokens, args.width, args.mimo_state, args.siso_state,
                 args.repeats, parse_only(args.only), suite_levels, directions)
    columns = [
        "layer", "direction", "L", "B", "H", "floats/step", "params", "fwd_ms", "fwd+bwd_ms",
        "fwd+bwd_GFLOP", "fwd+bwd_traffic_GB", "fwd+bwd_temp_GB", "tokens/s (fwd+bwd)"
    ]
  if not log.rows:
    sys.exit(f"--only {args.only!r} matched no {args.section} variant: nothing was timed")
  print(bench_common.markdown_table(log.rows, columns))
  print("wrote", log.path)


if __name__ == "__main__":
  main()
