"""Keeps the known noise of tfds and orbax out of a run's logs; their errors still show.

`quiet_dependency_logs()` (called by the mains before any work):
- tfds progress bars only when stderr is a terminal: in a redirected log their carriage returns
  and cursor codes are all that is left of them.
- drops two warnings that every run would print for something it does on purpose: orbax's
  'Given directory is read only' (evaluation and fine-tuning open `best/` and released models
  read-only) and tfds's 'Variant folder ... has no dataset_info.json' (tfds checks the folder
  it is about to write on a dataset's first preparation).
"""

from __future__ import annotations

import logging
import sys

import tensorflow_datasets as tfds

# (module, format string) of the dropped records, as the libraries log them through absl.
_EXPECTED_WARNINGS = frozenset({
    ("checkpoint_manager", "Given directory is read only=%s"),
    ("file_utils", "Variant folder %s has no %s"),
})


class _DropExpectedWarnings(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    return (record.module, record.msg) not in _EXPECTED_WARNINGS


def quiet_dependency_logs() -> None:
  """Installs the filters above on absl's logger (idempotent)."""
  tfds.display_progress_bar(sys.stderr.isatty())
  absl_logger = logging.getLogger("absl")
  if not any(isinstance(f, _DropExpectedWarnings) for f in absl_logger.filters):
    absl_logger.addFilter(_DropExpectedWarnings())
