"""`ms_ssm_jax.target`: tracing for another backend than JAX's default (ahead-of-time compiles)."""

from __future__ import annotations

import jax
import pytest

from ms_ssm_jax import target
from ms_ssm_jax.ssm import diagonal


def test_backend_is_jax_default_outside_a_target():
  assert target.backend() == jax.default_backend()


def test_compiling_for_sets_the_backend_inside_the_block_only():
  with target.compiling_for("gpu"):
    assert target.backend() == "gpu"
    with target.compiling_for("tpu"):
      assert target.backend() == "tpu"
    assert target.backend() == "gpu"
  assert target.backend() == jax.default_backend()


def test_compiling_for_rejects_unknown_platforms():
  with pytest.raises(ValueError, match="unknown platform 'cuda'; choose one of cpu, gpu, tpu"):
    with target.compiling_for("cuda"):
      pass


def test_auto_impl_follows_the_target():
  resolve = lambda: diagonal.resolve_impl("auto", fusable=True, layer="test")
  assert resolve() == "chunked"  # the test machine's CPU
  with target.compiling_for("gpu"):
    assert resolve() == "pallas"
    assert diagonal.resolve_impl("auto", fusable=False, layer="test") == "chunked"
