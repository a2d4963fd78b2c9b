"""The train loop: the steps, and what happens between them (logging, evaluation,
checkpoints, preemption), then results.json.

`train_lib.train_and_evaluate` builds what the loop runs on (mesh, model, optimizer, the fresh
or restored state, the data, the metric writer) and calls `run`.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any, Callable, Iterator

import jax
import ml_collections
import numpy as np

from ms_ssm_jax import checkpointing
from ms_ssm_jax import data
from ms_ssm_jax import evaluation
from ms_ssm_jax import metrics as metrics_lib
from ms_ssm_jax import preemption
from ms_ssm_jax import profiling
from ms_ssm_jax import sharding
from ms_ssm_jax.train_state import TrainState
from ms_ssm_jax.train_state import state_items

RESULTS_FILE = "results.json"

# The jitted `train_lib.train_step`: (state, global batch) -> (state, metric sums).
StepFn = Callable[[TrainState, dict[str, jax.Array]], tuple[TrainState, dict[str, jax.Array]]]


class NonFiniteError(FloatingPointError):
  """The loss, the gradient norm or the state became NaN or Inf; the bad state was not saved."""


# What to do about a NonFiniteError.
_NONFINITE_ADVICE = ("Lower optimizer.lr, set optimizer.grad_clip_norm, or use "
                     "train.precision='float32'.")


class _TrainMetrics:
  """Per-step device metrics, fetched and checked for NaN/Inf only when flushed."""

  def __init__(self):
    self._pending: list[tuple[int, dict[str, jax.Array]]] = []

  def add(self, step: int, step_metrics: dict[str, jax.Array]) -> None:
    self._pending.append((step, step_metrics))

  def __len__(self) -> int:
    return len(self._pending)

  def flush(self, last_good: str) -> dict[str, float]:
    """Means over the pending steps; raises `NonFiniteError` naming the first bad step."""
    pending, self._pending = jax.device_get(self._pending), []
    for step, values in pending:
      for quantity, key in (("loss", "loss_sum"), ("gradient norm", "grad_norm")):
        if not np.isfinite(values[key]):
          raise NonFiniteError(
              f"non-finite {quantity} ({float(values[key])}) at step {step}; the run stopped "
              f"and this state was not saved ({last_good}). {_NONFINITE_ADVICE}")
    weight = sum(float(v["weight_sum"]) for _, v in pending)
    ratios = {
        key: float(np.mean([v[key] for _, v in pending]))
        for key in pending[0][1]
        if key.startswith(metrics_lib.MIXER_RATIO_PREFIX)
    }
    return {
        "loss": sum(float(v["loss_sum"]) for _, v in pending) / weight,
        "accuracy": sum(float(v["correct_sum"]) for _, v in pending) / weight,
        "grad_norm": float(np.mean([v["grad_norm"] for _, v in pending])), **ratios
    }


def run(state: TrainState, step_fn: StepFn, batches: Iterator[dict[str, Any]], *, start_step: int,
        num_steps: int, mesh: jax.sharding.Mesh, config: ml_collections.ConfigDict,
        spec: data.TaskSpec, ckpt: checkpointing.RunCheckpoints, writer: metrics_lib.MetricWriter,
        evaluator: evaluation.Evaluator, schedules: dict[str, Callable[[int], Any]],
        config_json: dict[str, Any], workdir: pathlib.Path) -> TrainState:
  """Trains `state` from `start_step` to `num_steps` with `step_fn` (the jitted `train_step`)
  on the host rows of `batches`; writes results.json when done. Returns the final state, or
  the state saved at a preemption (rerunning the same command resumes)."""
  loop = _Loop(config=config, spec=spec, ckpt=ckpt, writer=writer, evaluator=evaluator,
               schedules=schedules, num_steps=num_steps, config_json=config_json,
               last_saved=start_step or None)
  batch_size = config.train.global_batch_size
  profiler = profiling.ProfileWindow(workdir / "profile", first=start_step + 1,
                                     num_steps=config.train.profile_steps, writer=writer)
  with preemption.PreemptionWatcher() as watcher, writer, profiler:
    for step in range(start_step, num_steps):
      profiler.before(step)
      state, step_metrics = step_fn(state, sharding.global_batch(mesh, next(batches), batch_size))
      profiler.after(step + 1, step_metrics)
      if loop.after_step(step + 1, state, step_metrics, watcher.should_stop(step + 1)):
        break
    else:
      loop.write_results(workdir)
  return state


def write_results(workdir: pathlib.Path, num_steps: int, final: dict[str, dict[str, float]],
                  best: float | None, metric: str) -> dict[str, Any]:
  """results.json: the final evaluation, the best validation score and every split's
  evaluation at that step (read from metrics/eval.csv, which spans resumed sessions);
  process 0 writes it. Returns the evaluations at the best step."""
  at_best = evaluation.evaluations_at_best(workdir / "metrics" / "eval.csv", metric)
  if jax.process_index() == 0:
    selection = evaluation.SELECTION_SPLIT
    results = {
        "num_steps": num_steps, "final": final, f"best_{selection}_{metric}": best,
        f"at_best_{selection}": at_best
    }
    (workdir / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
  return at_best


class _Loop:
  """What happens between train steps: logging, evaluation, checkpoints, preemption."""

  def __init__(self, *, config, spec, ckpt, writer, evaluator, schedules, num_steps, config_json,
               last_saved):
    self._config, self._spec, self._ckpt = config, spec, ckpt
    self._writer, self._evaluator, self._schedules = writer, evaluator, schedules
    self._num_steps, self._config_json = num_steps, config_json
    self._last_saved = last_saved
    self._best = ckpt.best_score()
    self._metrics = _TrainMetrics()
    self._timer = time.perf_counter()
    self._first_step = (last_saved or 0) + 1
    self._timed_steps = 0  # since the timer started, the compiling first step not counted
    self._first_step_seconds = 0.0
    self._final_eval: dict[str, dict[str, float]] = {}

  def _due(self, step: int, every: int) -> bool:
    return step == self._num_steps or (every > 0 and step % every == 0)

  def after_step(self, step: int, state: TrainState, step_metrics: dict[str, jax.Array],
                 preempted: bool) -> bool:
    """Handles the boundary after `step` steps; True when the run must stop (preemption)."""
    train = self._config.train
    self._metrics.add(step, step_metrics)
    if step == self._first_step:  # the ETA must not count the compilation
      jax.block_until_ready(step_metrics)
      self._first_step_seconds = time.perf_counter() - self._timer
      self._writer.print(f"step {step} (compiling the train step) took "
                         f"{self._first_step_seconds:.1f} s")
      self._timer, self._timed_steps = time.perf_counter(), 0
    else:
      self._timed_steps += 1
    evaluate = self._due(step, train.eval_every)
    save = self._due(step, train.checkpoint_every) or preempted
    if not (self._due(step, train.log_every) or evaluate or save):
      return False
    self._log(step)
    try:
      if evaluate:
        self._evaluate(step, state)
      if save:
        self._ckpt.save(step, state_items(state), self._config_json)
        self._last_saved = step
    except checkpointing.NonFiniteStateError as e:
      raise NonFiniteError(f"{e}; the run stopped and this state was not saved "
                           f"({self._last_good()}). {_NONFINITE_ADVICE}") from None
    if preempted:
      self._ckpt.wait_until_finished()
      self._writer.print(f"preempted: saved step {step} to {self._ckpt.directory}; rerun the "
                         "same command to resume")
    self._timer, self._timed_steps = time.perf_counter(), 0
    return preempted

  def _last_good(self) -> str:
    # Every saved checkpoint is finite (checkpointing refuses others).
    return (f"last good checkpoint: step {self._last_saved} in {self._ckpt.directory}"
            if self._last_saved else "no checkpoint was saved yet")

  def _log(self, step: int) -> None:
    values = self._metrics.flush(self._last_good())
    seconds_per_step = ((time.perf_counter() - self._timer) /
                        self._timed_steps if self._timed_steps else self._first_step_seconds)
    # The learning rates of the update that produced this step.
    values.update({name: float(schedule(step - 1)) for name, schedule in self._schedules.items()})
    values["step_time"] = seconds_per_step
    values["examples_per_s"] = self._config.train.global_batch_size / seconds_per_step
    self._writer.write("train", step, values)
    shown = {
        "loss": values["loss"], "acc": values["accuracy"], "lr": values["lr"],
        "s/step": seconds_per_step, "ex/s": round(values["examples_per_s"])
    }
    ratios = [v for k, v in values.items() if k.startswith(metrics_lib.MIXER_RATIO_PREFIX)]
    if ratios:
      shown["grad"] = values["grad_norm"]
      shown["mixer_ratio"] = max(ratios)
    self._writer.print(metrics_lib.progress_line(step, self._num_steps, shown, seconds_per_step))

  def _evaluate(self, step: int, state: TrainState) -> None:
    for split in self._config.train.eval_splits:
      result = self._evaluator.evaluate(state.variables(), split)
      nonfinite = result.pop("nonfinite_examples", 0)
      if nonfinite:
        self._writer.print(
            evaluation.nonfinite_eval_warning(split, step, nonfinite, result["num_examples"]))
      self._writer.write("eval", step, {"split": split, **result})
      # Other splits (test) are recorded at every evaluation but printed only at the end, so
      # that the printed log does not invite picking a step by its test score.
      if split == evaluation.SELECTION_SPLIT or step == self._num_steps:
        self._writer.print(_eval_line(f"eval {split} @ {step}", result))
      self._final_eval[split] = result
      score = result[self._spec.metric]
      if split == evaluation.SELECTION_SPLIT and (self._best is None or score > self._best):
        self._best = score
        self._ckpt.save_best(step, state.variables(), self._config_json, score, result)

  def write_results(self, workdir: pathlib.Path) -> None:
    """results.json (`write_results`), and the test line at the best validation step."""
    at_best = write_results(workdir, self._num_steps, self._final_eval, self._best,
                            self._spec.metric)
    if jax.process_index() != 0:
      return
    for split, result in at_best.get("splits", {}).items():
      if split != evaluation.SELECTION_SPLIT:
        self._writer.print(
            _eval_line(
                f"{split} at the best {evaluation.SELECTION_SPLIT} step "
                f"({at_best['step']})", result))


def _eval_line(title: str, result: dict[str, Any]) -> str:
  return f"{title}: " + ", ".join(
      f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items())
