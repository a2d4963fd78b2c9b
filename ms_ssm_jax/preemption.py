"""Preemption: when a run must save a checkpoint and stop (SIGTERM, or JAX's preemption sync
point across processes)."""

from __future__ import annotations

import signal
import threading

import jax
from absl import logging
from jax.experimental import multihost_utils


class PreemptionWatcher:
  """Tells the train loop when to save and stop because the job is being preempted.

  Single process: a SIGTERM handler (installed while the context is active) sets a flag that
  the loop reads at the next step boundary. Several processes: JAX's preemption sync point,
  which makes all processes agree on the same step (a per-process flag would deadlock the
  collective save). Use as a context manager in the main thread.
  """

  def __init__(self):
    self._event = threading.Event()
    self._previous_handler = None

  def __enter__(self) -> PreemptionWatcher:
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
    return self

  def __exit__(self, *exc_info) -> None:
    if self._previous_handler is not None:
      signal.signal(signal.SIGTERM, self._previous_handler)
      self._previous_handler = None

  def _on_sigterm(self, signum, frame) -> None:
    del signum, frame
    logging.warning("SIGTERM received: saving a checkpoint at the next step boundary")
    self._event.set()

  def should_stop(self, step: int) -> bool:
    """True once the run should checkpoint `step` and exit (call at every step)."""
    if jax.process_count() > 1:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._event.is_set()
