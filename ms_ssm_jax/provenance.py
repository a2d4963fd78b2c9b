"""How a run was trained: one line per training session in `<workdir>/sessions.jsonl`.

Every start of the train loop on a workdir (the first and each resume) appends
  {"started": "2026-11-23T12:00:00+00:00", "start_step": 0, "command": "python train.py ...",
   "device": "1 x NVIDIA H100 80GB HBM3", "jax_version": "0.10.2"}
(`command` is null when the loop was started from Python rather than by train.py). The release
script (`scripts/release_checkpoint.py`) reads these lines to record how a checkpoint was made.
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


def record_session(workdir: str | pathlib.Path, start_step: int, command: str | None) -> None:
  """Appends this session's line to `<workdir>/sessions.jsonl` (call on process 0 only)."""
  line = {
      "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "start_step": int(start_step), "command": command, "device": device_description(),
      "jax_version": jax.__version__
  }
  with open(pathlib.Path(workdir) / SESSIONS_FILE, "a") as f:
    f.write(json.dumps(line) + "\n")


def read_sessions(workdir: str | pathlib.Path) -> list[dict[str, Any]]:
  """The sessions of a run in order ([] for runs made before sessions were recorded)."""
  path = pathlib.Path(workdir) / SESSIONS_FILE
  if not path.is_file():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
