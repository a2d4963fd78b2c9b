"""One trainer per workdir: `<workdir>/train.lock` names the host and pid that hold it.

The lock file is created atomically (`O_CREAT | O_EXCL`) and removed when the trainer exits.
A trainer killed with SIGKILL leaves it behind: a lock whose pid is dead on this host is
stale and taken over; a lock held on another host cannot be checked from here, so the error
names it and says how to remove it.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import socket
import time
from typing import Any

LOCK_FILE = "train.lock"
# How long an empty lock file may take to get its contents before it counts as stale.
_TORN_GRACE_S = 5.0


class WorkdirLockedError(RuntimeError):
  """Another trainer holds the workdir."""


class WorkdirError(OSError):
  """The workdir cannot be created or written."""


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # alive, owned by another user
    return True
  return True


class WorkdirLock:
  """Holds `<workdir>/train.lock` while the context is active (take it on process 0 only)."""

  def __init__(self, workdir: str | os.PathLike):
    self.path = pathlib.Path(workdir) / LOCK_FILE
    self._held = False

  def _holder(self) -> dict[str, Any] | None:
    """The lock file's contents; None when it vanished or is torn (treated as stale)."""
    try:
      holder = json.loads(self.path.read_text())
    except FileNotFoundError:
      return None
    except (ValueError, OSError):
      return {}
    return holder if isinstance(holder, dict) else {}

  def acquire(self) -> None:
    """Takes the lock; raises `WorkdirLockedError` naming the holder if a live one has it, and
    `WorkdirError` if the workdir is not a writable directory."""
    workdir = self.path.parent
    try:
      workdir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
      raise WorkdirError(f"--workdir={workdir} is a file (or under one); pass a "
                         "directory") from None
    except PermissionError as e:
      raise WorkdirError(f"--workdir={workdir} cannot be created ({e.strerror}); pass a "
                         "directory you can write") from None
    me = {
        "host": socket.gethostname(), "pid": os.getpid(),
        "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    }
    for _ in range(3):  # a stale lock is removed, then the create is retried
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        holder = self._holder()
        if holder is None:
          continue
        if not self._is_stale(holder):
          raise WorkdirLockedError(
              f"workdir {self.path.parent} is in use by another trainer (pid "
              f"{holder.get('pid')} on host {holder.get('host')}, since {holder.get('since')}); "
              f"wait for it, use another --workdir, or, if that process is gone, delete "
              f"{self.path}") from None
        self.path.unlink(missing_ok=True)
        continue
      except OSError as e:
        raise WorkdirError(f"--workdir={workdir} is not writable ({e.strerror}); pass a "
                           "directory you can write") from None
      with os.fdopen(fd, "w") as f:
        f.write(json.dumps(me) + "\n")
      self._held = True
      return
    raise WorkdirLockedError(f"could not take {self.path}: other trainers keep creating it")

  def _is_stale(self, holder: dict[str, Any]) -> bool:
    if not holder:
      # Empty or torn: a crash between create and write, unless its writer is still at it.
      try:
        return time.time() - self.path.stat().st_mtime > _TORN_GRACE_S
      except FileNotFoundError:
        return True
    return (holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) and
            not _pid_alive(holder["pid"]))

  def release(self) -> None:
    if self._held:
      self.path.unlink(missing_ok=True)
      self._held = False

  def __enter__(self) -> WorkdirLock:
    self.acquire()
    return self

  def __exit__(self, *exc_info) -> None:
    self.release()
