"""What data an installation has: the kind of every task, the shape of every shipped data set.

`scripts/list_data.py` prints both. Shipped data sets are read from the files inside installed
wheels (aeon, sktime, scikit-learn), never from a download, so listing them is cheap.
"""

from __future__ import annotations

import dataclasses

from ms_ssm_jax.data import digits
from ms_ssm_jax.data import registry
from ms_ssm_jax.data import shipped
from ms_ssm_jax.data import ts_format
from ms_ssm_jax.data import uea
from ms_ssm_jax.data.task import MissingDataError

SHIPPED, GENERATED, PROVIDED = "shipped", "generated", "provided by you"
# Generated on first use from a seed (no files); every task not shipped or generated needs
# files from the user.
GENERATED_TASKS = ("listops", "pathfinder32", "pathfinder64", "pathx", "associative_recall",
                   "selective_copying")


def task_kinds() -> dict[str, str]:
  """Every registered task's kind: SHIPPED, GENERATED or PROVIDED."""
  shipped_tasks = set(uea.SHIPPED_TASKS) | set(digits.TASKS)
  return {
      name: SHIPPED if name in shipped_tasks else GENERATED if name in GENERATED_TASKS else PROVIDED
      for name in registry.list_tasks()
  }


@dataclasses.dataclass(frozen=True)
class ShippedDataSet:
  """A classification data set inside an installed wheel; train and test count examples."""

  name: str
  source: str  # "<package> <version>"
  channels: int
  classes: int
  min_length: int
  max_length: int
  train: int
  test: int
  load_with: str  # the task that loads it


def shipped_datasets() -> tuple[list[ShippedDataSet], dict[str, str]]:
  """The shipped classification data sets, and those that are not or are absent (name: why).

  UEA/UCR problems count their TRAIN and TEST files; sdigits its seeded split (train and
  validation together as train).
  """
  named_tasks = {problem: task for task, problem in uea.SHIPPED_TASKS.items()}
  rows, rejected = [], {}
  for problem in shipped.shipped_problems():
    try:
      train, test = (ts_format.read_ts(problem.folder / f"{problem.name}_{part}.ts")
                     for part in ("TRAIN", "TEST"))
    except ts_format.TsFormatError as error:  # e.g. a regression problem
      rejected[problem.name] = str(error).splitlines()[0]
      continue
    lengths = [*train.lengths, *test.lengths]
    rows.append(
        ShippedDataSet(name=problem.name, source=f"{problem.package} {problem.version}",
                       channels=train.values.shape[2], classes=len(train.class_names),
                       min_length=int(min(lengths)), max_length=int(max(lengths)),
                       train=len(train.lengths), test=len(test.lengths),
                       load_with=named_tasks.get(problem.name, f"uea, dataset={problem.name}")))
  digits_config = digits.default_config()
  try:
    _, labels = digits.read_digits_csv(digits.digits_file(digits_config))
  except MissingDataError as error:
    rejected["sdigits"] = str(error).splitlines()[0]
    return rows, rejected
  num_test = digits_config.num_test
  rows.append(
      ShippedDataSet(name="sdigits", source=f"{digits.DISTRIBUTION} (digits.csv.gz)", channels=1,
                     classes=digits.NUM_CLASSES, min_length=digits.NUM_PIXELS,
                     max_length=digits.NUM_PIXELS, train=len(labels) - num_test, test=num_test,
                     load_with="sdigits"))
  return rows, rejected
