"""Metrics: per-batch loss and counts (on the devices), host-side metrics, and the writers
(stdout, CSV, JSONL and TensorBoard events in the workdir).

Files, one row per logged event, appended across resumes:
  <workdir>/metrics/<stream>.csv     (stream: "train", "eval")
  <workdir>/metrics/metrics.jsonl    every row of every stream, with a "stream" key.
Only process 0 writes. On resume, rows logged after the restored step (by a run that crashed
before its next checkpoint) are dropped, so the files describe one consistent run.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import pathlib
import sys
from typing import Any, Mapping, TextIO

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tensorboardX
from absl import logging
from flax import traverse_util

# Train metrics under this prefix are per-layer mixer stability ratios (`mixer_ratios`).
MIXER_RATIO_PREFIX = "mixer_ratio/"


def loss_and_counts(logits: jax.Array, batch: dict[str, jax.Array],
                    target: str) -> dict[str, jax.Array]:
  """Weighted sums of the loss and of correct predictions over a batch.

  Args:
    logits: (B, C).
    batch: `labels` (B,) int32 for target "class" or (B, C) multi-hot for "multilabel", and
      `weights` (B,) (0 for padding examples).
    target: "class" (softmax cross-entropy) or "multilabel" (sigmoid binary cross-entropy,
      mean over classes; accuracy is the mean per-label accuracy at threshold 0.5).

  Returns:
    {"loss_sum", "correct_sum", "weight_sum", "nonfinite_sum"} (examples of nonzero weight whose
    loss is NaN or infinite), float32 scalars. Padding examples never add to the loss sum.
  """
  weights = batch["weights"].astype(jnp.float32)
  logits = logits.astype(jnp.float32)
  if logits.ndim != 2:
    raise ValueError(f"the loss needs one logit vector per example, (B, num_classes); "
                     f"got logits of shape {logits.shape} (use model pooling 'mean' or 'last')")
  labels = batch["labels"]
  if target == "class":
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  elif target == "multilabel":
    losses = optax.sigmoid_binary_cross_entropy(logits, labels).mean(axis=-1)
    correct = ((logits > 0) == (labels > 0.5)).astype(jnp.float32).mean(axis=-1)
  else:
    raise ValueError(f"unknown target {target!r}; expected 'class' or 'multilabel'")
  counted = weights > 0
  return {
      "loss_sum": jnp.sum(jnp.where(counted, losses * weights, 0.0)),
      "correct_sum": jnp.sum(correct * weights), "weight_sum": jnp.sum(weights),
      "nonfinite_sum": jnp.sum(counted & ~jnp.isfinite(losses)).astype(jnp.float32)
  }


def mixer_ratios(intermediates: Any) -> dict[str, jax.Array]:
  """`{"mixer_ratio/<layer path>": ratio}` from the `mixer_input_ratio` values that MS-SSM
  layers with a linear-input mixer sow (`ms_ssm.mixer.input_ratio`); empty for other models."""
  flat = traverse_util.flatten_dict(intermediates, sep="/")
  return {
      f"{MIXER_RATIO_PREFIX}{path.rsplit('/', 1)[0]}": jnp.max(jnp.stack(values))
      for path, values in flat.items()
      if path.endswith("mixer_input_ratio")
  }


def macro_auroc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
  """Macro-averaged area under the ROC curve over the classes, on the host.

  Args:
    scores: (n, C) predicted scores (probabilities or logits).
    labels: (n, C) 0/1 targets (multi-hot, or one-hot for single-label tasks).
    weights: (n,) example weights; examples with weight 0 (padding) are left out.

  Returns:
    The mean over classes that have both positive and negative examples of the
    Mann-Whitney AUROC (ties count one half). Classes with only one label value are left
    out with a warning.
  """
  keep = weights > 0
  scores, labels = np.asarray(scores[keep], np.float64), np.asarray(labels[keep]) > 0.5
  per_class = []
  for c in range(scores.shape[1]):
    positives = labels[:, c]
    num_pos, num_neg = int(positives.sum()), int((~positives).sum())
    if num_pos == 0 or num_neg == 0:
      continue
    ranks = _average_ranks(scores[:, c])
    per_class.append((ranks[positives].sum() - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg))
  if not per_class:
    raise ValueError("AUROC is undefined: no class has both positive and negative examples in "
                     "this split")
  if len(per_class) < scores.shape[1]:
    logging.warning(
        "macro AUROC over %d of %d classes (the others have a single label value "
        "in this split)", len(per_class), scores.shape[1])
  return float(np.mean(per_class))


def _average_ranks(values: np.ndarray) -> np.ndarray:
  """1-based ranks of `values`, ties sharing their mean rank."""
  order = np.argsort(values, kind="stable")
  sorted_values = values[order]
  # Start index of each run of equal values, then the mean rank of each run.
  starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
  ends = np.r_[starts[1:], len(values)]
  mean_rank = (starts + ends + 1) / 2.0
  ranks = np.empty(len(values), np.float64)
  ranks[order] = np.repeat(mean_rank, ends - starts)
  return ranks


def format_duration(seconds: float) -> str:
  """`H:MM:SS` for a progress line."""
  if not math.isfinite(seconds):
    return "?"
  return str(datetime.timedelta(seconds=int(round(seconds))))


def progress_line(step: int, num_steps: int, values: Mapping[str, float],
                  seconds_per_step: float) -> str:
  """One human-readable progress line: step, metrics, speed and ETA."""
  parts = [f"step {step}/{num_steps} ({100.0 * step / num_steps:.1f}%)"]
  parts += [f"{key} {_format_value(value)}" for key, value in values.items()]
  parts.append(f"ETA {format_duration(seconds_per_step * (num_steps - step))}")
  return " | ".join(parts)


def _format_value(value: float) -> str:
  if isinstance(value, (int, np.integer)):
    return str(value)
  magnitude = abs(value)
  if magnitude != 0 and (magnitude < 1e-3 or magnitude >= 1e5):
    return f"{value:.3e}"
  return f"{value:.4f}"


class MetricWriter:
  """Writes metric rows to stdout, per-stream CSV files, one JSONL file and TensorBoard events.

  The event files (tensorboardX, no TensorFlow) sit next to the CSV files in `metrics/`, so
  `tensorboard --logdir workdirs` shows every run. A row's numbers become scalars tagged
  `<stream>[/<each text value>]/<column>`, e.g. `eval/validation/accuracy`.

  Use as a context manager, or call `close()`.
  """

  def __init__(self, workdir: str | os.PathLike | None, *, resume_step: int = 0,
               is_writer: bool = True, stdout: TextIO | None = None):
    """Opens (and on resume trims) the files.

    Args:
      workdir: the run directory; None writes only to stdout.
      resume_step: rows with a step above this are dropped from existing files.
      is_writer: False on processes other than 0 (they write nothing).
      stdout: where progress lines go (default sys.stdout).
    """
    self._stdout = stdout or sys.stdout
    self._is_writer = is_writer
    self._dir = pathlib.Path(workdir) / "metrics" if workdir is not None and is_writer else None
    self._csv_files: dict[str, tuple[TextIO, csv.DictWriter]] = {}
    self._jsonl: TextIO | None = None
    self._events: tensorboardX.SummaryWriter | None = None
    if self._dir is not None:
      self._dir.mkdir(parents=True, exist_ok=True)
      for path in [*self._dir.glob("*.csv"), self._dir / "metrics.jsonl"]:
        if path.exists():
          _drop_rows_after(path, resume_step)
      self._jsonl = open(self._dir / "metrics.jsonl", "a")
      self._events = tensorboardX.SummaryWriter(str(self._dir))

  def print(self, line: str) -> None:
    """Prints one line on process 0."""
    if self._is_writer:
      print(line, file=self._stdout, flush=True)

  def write(self, stream: str, step: int, values: Mapping[str, Any]) -> None:
    """Appends one row `{"step": step, **values}` to `<stream>.csv` and to the JSONL file."""
    if self._dir is None:
      return
    row = {"step": int(step), **{key: _plain(value) for key, value in values.items()}}
    file, writer = self._csv_writer(stream, list(row))
    extra = set(row) - set(writer.fieldnames)
    if extra:
      raise ValueError(f"metric stream {stream!r} has columns {writer.fieldnames}; cannot add "
                       f"{sorted(extra)} (use another stream or a fresh workdir)")
    writer.writerow(row)
    file.flush()
    self._jsonl.write(json.dumps({"stream": stream, **row}) + "\n")
    self._jsonl.flush()
    prefix = "/".join([stream, *(v for v in row.values() if isinstance(v, str))])
    for key, value in row.items():
      if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
        self._events.add_scalar(f"{prefix}/{key}", value, row["step"])
    self._events.flush()

  def _csv_writer(self, stream: str, columns: list[str]) -> tuple[TextIO, csv.DictWriter]:
    if stream not in self._csv_files:
      path = self._dir / f"{stream}.csv"
      if path.exists() and path.stat().st_size:
        with open(path, newline="") as f:
          columns = next(csv.reader(f))
        file = open(path, "a", newline="")
        writer = csv.DictWriter(file, fieldnames=columns, restval="")
      else:
        file = open(path, "w", newline="")
        writer = csv.DictWriter(file, fieldnames=columns, restval="")
        writer.writeheader()
      self._csv_files[stream] = (file, writer)
    return self._csv_files[stream]

  def close(self) -> None:
    for file, _ in self._csv_files.values():
      file.close()
    self._csv_files.clear()
    if self._jsonl is not None:
      self._jsonl.close()
      self._jsonl = None
    if self._events is not None:
      self._events.close()
      self._events = None

  def __enter__(self) -> MetricWriter:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def _plain(value: Any) -> Any:
  """numpy scalars to Python numbers, for JSON."""
  if isinstance(value, np.generic):
    return value.item()
  return value


def _drop_rows_after(path: pathlib.Path, step: int) -> None:
  """Rewrites a CSV or JSONL metric file without the rows whose step exceeds `step`, and
  without a torn last line."""
  original = path.read_text().splitlines(keepends=True)
  lines = original
  if lines and not lines[-1].endswith("\n"):
    # A crash in the middle of a write leaves a torn last row; its step was not checkpointed.
    logging.warning(
        "%s: dropping its torn last line %r (the previous run died while "
        "writing it)", path, lines[-1][:80])
    lines = lines[:-1]
  if path.suffix == ".jsonl":
    kept = [
        line for number, line in enumerate(lines, start=1)
        if line.strip() and _jsonl_step(path, number, line) <= step
    ]
  else:
    rows = list(csv.reader(lines))
    if not rows:
      kept = []
    else:
      step_column = rows[0].index("step")
      kept = lines[:1] + [
          line for line, row in zip(lines[1:], rows[1:]) if int(row[step_column]) <= step
      ]
  if kept != original:
    path.write_text("".join(kept))


def _jsonl_step(path: pathlib.Path, number: int, line: str) -> int:
  try:
    return json.loads(line)["step"]
  except (ValueError, KeyError) as e:
    raise ValueError(f"{path}, line {number}, is not a metric row ({e}); remove the line "
                     f"(or the file) and rerun") from None
