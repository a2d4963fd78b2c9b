"""A `jax.profiler` trace of a few train steps into the workdir (`config.train.profile_steps`)."""

from __future__ import annotations

import pathlib
from typing import Any

import jax

from ms_ssm_jax import metrics as metrics_lib


class ProfileWindow:
  """A `jax.profiler` trace of `num_steps` train steps (0 = none) into `directory`.

  It starts after step `first`, the compiling one, so that the trace shows steady steps;
  TensorBoard's profile plugin or Perfetto reads it.
  """

  def __init__(self, directory: pathlib.Path, *, first: int, num_steps: int,
               writer: metrics_lib.MetricWriter):
    if num_steps < 0:
      raise ValueError(f"config.train.profile_steps must be >= 0 (0 = off), got {num_steps}")
    self._directory, self._writer = directory, writer
    self._start, self._stop = first, first + num_steps
    self._active = False

  def before(self, step: int) -> None:
    """Called before running step `step + 1`."""
    if step == self._start and self._stop > self._start and jax.process_index() == 0:
      jax.profiler.start_trace(str(self._directory))
      self._active = True

  def after(self, step: int, step_metrics: Any) -> None:
    """Called once `step` steps are done."""
    if self._active and step == self._stop:
      jax.block_until_ready(step_metrics)
      self.__exit__()
      self._writer.print(f"profiled steps {self._start + 1}-{self._stop} into "
                         f"{self._directory}")

  def __enter__(self) -> ProfileWindow:
    return self

  def __exit__(self, *exc_info) -> None:
    if self._active:
      jax.profiler.stop_trace()
      self._active = False
