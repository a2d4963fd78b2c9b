"""How a run was trained: one line per training session in `<workdir>/sessions.jsonl`.

Every start of the train loop on a workdir (the first and each resume) appends
  {"started": "2026-11-23T12:00:00+00:00", "start_step": 0, "command": "python train.py ...",
   "device": "1 x NVIDIA H100 80GB HBM3", "jax_version": "0.10.2"}
(`command` is null when the loop was started from Python rather than by train.py), and its end
(training finished or stopped by a preemption signal; not a crash) appends
  {"ended": "2026-11-23T12:30:00+00:00", "end_step": 1920}
which `read_sessions` merges into the session it ends. The release script
(`scripts/release_checkpoint.py`) reads the sessions to record how a checkpoint was made;
`scripts/summarize_runs.py` sums their hours.
"""

from __future__ import annotations

import datetime
import json
import pathlib
from typing import Any

import jax

SESSIONS_FILE = "sessions.jsonl"


def device_description() -> str:
  """The devices of this job, e.g. "2 x NVIDIA H200, 2 processes" or "1 x cpu"."""
  text = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
  if jax.process_count() > 1:
    text += f", {jax.process_count()} processes"
  return text


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _append(workdir: str | pathlib.Path, line: dict[str, Any]) -> None:
  with open(pathlib.Path(workdir) / SESSIONS_FILE, "a") as f:
    f.write(json.dumps(line) + "\n")


def record_session(workdir: str | pathlib.Path, start_step: int, command: str | None) -> None:
  """Appends this session's line to `<workdir>/sessions.jsonl` (call on process 0 only)."""
  _append(
      workdir, {
          "started": _now(), "start_step": int(start_step), "command": command,
          "device": device_description(), "jax_version": jax.__version__
      })


def record_session_end(workdir: str | pathlib.Path, end_step: int) -> None:
  """Appends the end of this session, at `end_step` (call on process 0 only)."""
  _append(workdir, {"ended": _now(), "end_step": int(end_step)})


def read_sessions(workdir: str | pathlib.Path) -> list[dict[str, Any]]:
  """The sessions of a run in order, each with its end merged in where one was recorded ([] for
  runs made before sessions were recorded)."""
  path = pathlib.Path(workdir) / SESSIONS_FILE
  if not path.is_file():
    return []
  sessions: list[dict[str, Any]] = []
  for line in path.read_text().splitlines():
    if not line.strip():
      continue
    entry = json.loads(line)
    if "ended" in entry and sessions and "ended" not in sessions[-1]:
      sessions[-1].update(entry)
    elif "started" in entry:
      sessions.append(entry)
  return sessions


def training_hours(sessions: list[dict[str, Any]]) -> float | None:
  """Wall-clock hours of the sessions that recorded their end (compilation and evaluation
  included), or None if none did."""
  ended = [s for s in sessions if "ended" in s]
  if not ended:
    return None
  seconds = sum((datetime.datetime.fromisoformat(s["ended"]) -
                 datetime.datetime.fromisoformat(s["started"])).total_seconds() for s in ended)
  return seconds / 3600
