"""`ssm.diagonal`: every impl of every kind of system against a sequential float64 loop.

Random systems with G = 2 groups (MS-SSM streams), causal and bidirectional, on padded
sequences: `scan`, `chunked` (a chunk size that does not divide L), `conv` (time-invariant)
and `pallas` (the kernels run in the Pallas interpreter, in float32).
Then the impls every layer offers, `chunked` for every layer against its own `impl="scan"`,
and the one validation of the choice.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ms_ssm_jax.ms_ssm import MSSSMLayer
from ms_ssm_jax.ssm import diagonal
from ms_ssm_jax.ssm.lru import LRU
from ms_ssm_jax.ssm.s4d import S4D
from ms_ssm_jax.ssm.s5 import S5
from ms_ssm_jax.ssm.s6 import S6
from tests.marks import marked_slow

B, L, H, G, N = 2, 11, 3, 2, 4
LENGTHS = np.array([L, 6], np.int32)
CHUNK = 4  # 11 steps: two full chunks and a partial one


def _normal(rng, *shape):
  return rng.normal(size=shape)


def _complex(rng, *shape):
  return _normal(rng, *shape) + 1j * _normal(rng, *shape)


def _system(kind: str, bidirectional: bool, seed: int = 0) -> diagonal.System:
  """A random float64 system of `kind`; decays inside the unit circle."""
  rng = np.random.default_rng(seed)
  reverse = lambda make: make() if bidirectional else None
  if kind == "siso_real":
    log_a_bar = -rng.uniform(0.05, 1.0, (H, G, N))
    return diagonal.Siso(a_bar=jnp.exp(log_a_bar), b_bar=jnp.asarray(_normal(rng, H, G, N)),
                         c=jnp.asarray(_normal(rng, H, G, N)),
                         c_reverse=reverse(lambda: jnp.asarray(_normal(rng, H, G, N))),
                         log_a_bar=jnp.asarray(log_a_bar))
  if kind == "siso_complex":
    a_bar = rng.uniform(0.3, 0.95, (H, G, N)) * np.exp(1j * rng.uniform(0, np.pi, (H, G, N)))
    return diagonal.Siso(a_bar=jnp.asarray(a_bar), b_bar=jnp.asarray(_complex(rng, H, G, N)),
                         c=jnp.asarray(_complex(rng, H, G, N)),
                         c_reverse=reverse(lambda: jnp.asarray(_complex(rng, H, G, N))),
                         readout_scale=2.0)
  if kind == "mimo":
    a_bar = rng.uniform(0.3, 0.95, (G, N)) * np.exp(1j * rng.uniform(0, np.pi, (G, N)))
    return diagonal.Mimo(a_bar=jnp.asarray(a_bar), b_bar=jnp.asarray(_complex(rng, G, N, H)),
                         c=jnp.asarray(_complex(rng, G, H, N)),
                         c_reverse=reverse(lambda: jnp.asarray(_complex(rng, G, H, N))),
                         readout_scale=2.0)
  return diagonal.Selective(a=jnp.asarray(-rng.uniform(0.5, 2.0, (H, G, N))),
                            step=jnp.asarray(rng.uniform(0.05, 0.5, (B, L, H, G))),
                            b=jnp.asarray(_normal(rng, B, L, G,
                                                  N)), c=jnp.asarray(_normal(rng, B, L, G, N)),
                            c_reverse=reverse(lambda: jnp.asarray(_normal(rng, B, L, G, N))))


def _reference(system: diagonal.System, u: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """The outputs by a loop over steps, in numpy float64/complex128: `(B, L, H, G)`."""
  sys_np = {
      k: None if v is None or isinstance(v, float) else np.asarray(v)
      for k, v in vars(system).items()
  }

  def coefficients(t: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Decay and input of step t of sequence b, `(H, G, n)` (SISO, selective) or `(G, n)`."""
    if isinstance(system, diagonal.Siso):
      return sys_np["a_bar"], sys_np["b_bar"] * u[b, t][..., None]
    if isinstance(system, diagonal.Mimo):
      return sys_np["a_bar"], np.einsum("gnh,hg->gn", sys_np["b_bar"], u[b, t])
    step = sys_np["step"][b, t][..., None]
    return np.exp(step * sys_np["a"]), step * sys_np["b"][b, t][None] * u[b, t][..., None]

  def readout(x: np.ndarray, t: int, b: int, reverse: bool) -> np.ndarray:
    if isinstance(system, diagonal.Selective):
      c = sys_np["c_reverse" if reverse else "c"][b, t]
      return np.einsum("hgn,gn->hg", x, c)
    c = sys_np["c_reverse" if reverse else "c"]
    y = np.einsum("ghn,gn->hg", c, x) if isinstance(system, diagonal.Mimo) else (c * x).sum(-1)
    return system.readout_scale * y.real if np.iscomplexobj(y) else y

  y = np.zeros(u.shape)
  for b in range(u.shape[0]):
    x = 0.0
    for t in range(u.shape[1]):
      a, inp = coefficients(t, b)
      x = a * x + inp
      y[b, t] += readout(x, t, b, reverse=False)
    if system.c_reverse is not None:
      x = 0.0
      for t in reversed(range(lengths[b])):
        a, inp = coefficients(t, b)
        x = a * x + inp
        y[b, t] += readout(x, t, b, reverse=True)
  return y


KINDS = ["siso_real", "siso_complex", "mimo", "selective"]
CASES = [(kind, impl, bidirectional)
         for kind in KINDS
         for bidirectional in (False, True)
         for impl in ("scan", "chunked", "conv", "pallas")
         if impl in diagonal.supported_impls(time_invariant=kind != "selective", fusable=kind !=
                                             "siso_complex")]


@pytest.mark.parametrize("kind, impl, bidirectional", CASES,
                         ids=[f"{k}-{i}-{'bi' if b else 'causal'}" for k, i, b in CASES])
def test_every_impl_equals_the_sequential_reference(x64, kind, impl, bidirectional):
  system = _system(kind, bidirectional)
  u = np.random.default_rng(1).normal(size=(B, L, H, G))
  padded = np.where((np.arange(L)[None, :] < LENGTHS[:, None])[..., None, None], u,
                    100.0 * np.random.default_rng(2).normal(size=u.shape))
  want = _reference(system, padded, LENGTHS)
  if impl == "pallas":  # the kernels compute in float32
    single = lambda v: v.astype(jnp.complex64 if jnp.iscomplexobj(v) else jnp.float32)
    system = dataclasses.replace(
        system, **{k: single(v) for k, v in vars(system).items() if isinstance(v, jax.Array)})
  got = np.asarray(
      diagonal.evaluate(system, jnp.asarray(padded), impl=impl, chunk_size=CHUNK,
                        lengths=jnp.asarray(LENGTHS)))
  assert got.shape == (B, L, H, G)
  if bidirectional:  # padded steps are read by nothing; the valid ones must not see padding
    mask = np.broadcast_to((np.arange(L)[None, :] < LENGTHS[:, None])[..., None, None], got.shape)
    got, want = got[mask], want[mask]
  rtol = 1e-4 if impl == "pallas" else 1e-9
  np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


@pytest.mark.parametrize("kind", ["siso_real", "mimo", "selective"])
def test_causality(x64, kind):
  system = _system(kind, bidirectional=False)
  u = np.random.default_rng(1).normal(size=(B, L, H, G))
  later = u.copy()
  later[:, 7:] += 5.0
  run = lambda x: np.asarray(diagonal.evaluate(system, jnp.asarray(x), impl="scan"))
  np.testing.assert_array_equal(run(u)[:, :7], run(later)[:, :7])


# Every layer against its own impl="scan" (whose outputs the reference tests check against the
# layer's equations).
LAYERS: dict[str, nn.Module] = {
    "s4d_real_bidirectional":
        S4D(H, state_size=3, a_init="real", bidirectional=True),
    "s4d_lin_bidirectional":
        S4D(H, state_size=4, a_init="lin", bidirectional=True),
    "s5_bidirectional":
        S5(H, state_size=4, bidirectional=True),
    "lru":
        LRU(H, state_size=3, r_min=0.5, r_max=0.95, max_phase=1.0),
    "s6":
        S6(H, state_size=3),
    "ms_ssm_s4d_real_bidirectional":
        MSSSMLayer(d_model=H, num_levels=1, state_per_stream=3, bidirectional=True),
    "ms_ssm_s5_bidirectional":
        MSSSMLayer(d_model=H, num_levels=1, state_per_stream=4, backbone="s5", bidirectional=True),
    "ms_ssm_s6":
        MSSSMLayer(d_model=H, num_levels=1, state_per_stream=3, backbone="s6"),
}


def _layer_impls(layer: nn.Module) -> tuple[str, ...]:
  """The impls a layer accepts, found by asking the one validation."""
  impls = []
  for impl in diagonal.IMPLS:
    try:
      clone = layer.clone(impl=impl)
      jax.eval_shape(clone.init, jax.random.key(0), jnp.zeros((1, 2, H)))
    except ValueError:
      continue
    impls.append(impl)
  return tuple(impls)


def test_each_layer_offers_the_impls_of_its_system():
  offered = {name: _layer_impls(layer) for name, layer in LAYERS.items()}
  lti, fused = ("auto", "scan", "chunked", "conv"), ("auto", "scan", "chunked", "pallas")
  assert offered == {
      "s4d_real_bidirectional": diagonal.IMPLS, "s4d_lin_bidirectional": lti,
      "s5_bidirectional": diagonal.IMPLS, "lru": diagonal.IMPLS, "s6": fused,
      "ms_ssm_s4d_real_bidirectional": diagonal.IMPLS, "ms_ssm_s5_bidirectional": diagonal.IMPLS,
      "ms_ssm_s6": fused
  }


# The MS-SSM s4d_real case with -m slow: s4d_real_bidirectional has the same streams, and
# tests/ms_ssm/test_layer.py runs MS-SSM chunked.
@pytest.mark.parametrize("name", marked_slow(LAYERS, ("ms_ssm_s4d_real_bidirectional",)))
def test_chunked_impl_of_every_layer_equals_its_scan(x64, name):
  """`chunked` for every layer (`conv`: tests/test_conv_mode.py; `pallas`:
  tests/test_pallas_impl.py)."""
  layer = LAYERS[name]
  u = np.random.default_rng(3).normal(size=(B, L, H))
  params = jax.jit(layer.init)(jax.random.key(1), jnp.zeros((1, 2, H), jnp.float32))
  params = jax.tree.map(lambda p: p.astype(jnp.float64), params)
  run = lambda module: np.asarray(module.apply(params, jnp.asarray(u), LENGTHS))
  want = run(layer)
  got = run(layer.clone(impl="chunked", chunk_size=CHUNK))
  valid = np.broadcast_to((np.arange(L)[None, :] < LENGTHS[:, None])[..., None], got.shape)
  np.testing.assert_allclose(got[valid], want[valid], rtol=1e-9, atol=1e-9 * np.abs(want).max())


def test_check_impl_names_the_layers_choices():
  with pytest.raises(
      ValueError, match=r"^impl='conv' is not supported by S6 \(a selective system "
      r"has no convolution form\); choose one of auto, scan, chunked, pallas$"):
    diagonal.check_impl("conv", time_invariant=False, fusable=True, layer="S6")
  with pytest.raises(
      ValueError, match=r"^impl='pallas' is not supported by S4D \(the kernels run real "
      r"per-channel states and MIMO complex ones only\); choose one of auto, scan, chunked, "
      r"conv$"):
    diagonal.check_impl("pallas", time_invariant=True, fusable=False, layer="S4D")
  with pytest.raises(ValueError, match=r"^chunk_size must be >= 1"):
    diagonal.check_impl("chunked", 0, time_invariant=True, fusable=False, layer="LRU")
  with pytest.raises(ValueError, match="impl='conv' is not supported by the layer"):
    diagonal.evaluate(_system("selective", False), jnp.zeros((B, L, H, G)), impl="conv")
