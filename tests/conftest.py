"""Test-wide setup: 8 fake CPU devices (set before JAX starts), full float32 matmuls, x64."""

import os

# Sharding tests need several devices; on the CPU XLA can fake them. Most of the suite's time
# is XLA compiling small programs that then run once: LLVM's optimizations are turned down
# (same semantics; tests/ms_ssm/test_recurrent.py 136 s -> 90 s on 2 cores). This must happen
# before the first `import jax` anywhere in the test session.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0 "
    "--xla_llvm_disable_expensive_passes=true")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

# A GPU may run float32 matmuls as TF32 (a 10-bit mantissa), chosen per device and shape by the
# autotuner; the tests compare algorithms at float32 tolerances, so matmuls stay float32 (on the
# CPU they are already).
jax.config.update("jax_default_matmul_precision", "float32")


@pytest.fixture
def x64():
  """Runs the test with float64 enabled (references are computed in float64)."""
  with jax.enable_x64(True):
    yield
