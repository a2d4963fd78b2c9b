"""Fixtures that write tiny UEA/UCR files in the original `.ts` and `.arff` formats."""

import pathlib

import numpy as np
import pytest

# Multivariate, unequal lengths, a missing value, comments and a blank line.
TS_MULTIVARIATE = """\
# A toy multivariate problem with unequal lengths.
#
@problemName ToyMulti
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down

@data
1.0,2.0,3.0:10,20,30:up
4.5,?:-1e2,50:down
0.5,0.25,0.125,0.0625:1,2,3,4:up
"""

TS_UNIVARIATE = """\
@problemName ToyUni
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 3
@classLabel true 1 2
@data
1,2,3:1
4,5,6:2
"""

TS_TIMESTAMPED = """\
@problemName ToyTime
@timeStamps true
@missing true
@univariate true
@equalLength true
@seriesLength 2
@classLabel true a b
@data
(2007-01-01 00:00:00,1.5),(2007-01-01 00:01:00,2.5):a
(2007-01-01 00:02:00,3.5),(2007-01-01 00:03:00,?):b
"""

ARFF_UNIVARIATE = """\
% A toy univariate problem, as the UCR archive writes ARFF.
@relation ToyUni
@attribute att1 numeric
@attribute att2 numeric
@attribute att3 numeric
@attribute target {1,2}

@data
1,2,3,1
4,5,6,2
"""

ARFF_MULTIVARIATE = """\
% A toy multivariate problem, as the UEA archive writes ARFF (relational attribute).
@relation 'ToyMulti'

@attribute relationalAtt relational
@attribute t0 numeric
@attribute t1 numeric
@attribute t2 numeric
@end relationalAtt
@attribute activity {up,down}

@data
'1.0,2.0,3.0\\n10,20,30',up
'4.5,?,7\\n-1e2,50,60',down
"""


@pytest.fixture
def write_file(tmp_path):
  """Returns write(name, text) -> path of a new file under tmp_path."""

  def write(name: str, text: str) -> pathlib.Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path

  return write


TOY_CLASSES = ("walk", "run", "rest")


def toy_cases(num_cases: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
  """Cases (l, 2) of lengths 3..6 with values rounded to 3 decimals, balanced labels."""
  rng = np.random.default_rng(seed)
  cases = [np.round(rng.normal(5.0, 2.0, size=(3 + i % 4, 2)), 3) for i in range(num_cases)]
  labels = [TOY_CLASSES[i % 3] for i in range(num_cases)]
  return cases, labels


def format_ts(name: str, cases: list[np.ndarray], labels: list[str]) -> str:
  """Writes cases (l, C) in the `.ts` format."""
  lines = [
      f"@problemName {name}", "@timeStamps false", "@missing false", "@univariate false",
      f"@dimensions {cases[0].shape[1]}", "@equalLength false",
      "@classLabel true " + " ".join(TOY_CLASSES), "@data"
  ]
  for case, label in zip(cases, labels):
    dims = [",".join(f"{v:g}" for v in case[:, c]) for c in range(case.shape[1])]
    lines.append(":".join(dims) + ":" + label)
  return "\n".join(lines) + "\n"


@pytest.fixture
def toy_archive(tmp_path):
  """A UEA archive layout `<root>/Toy/Toy_{TRAIN,TEST}.ts` with 12 + 9 cases.

  TRAIN case 11 repeats TRAIN case 0, and TEST case 0 repeats TRAIN case 1 (label included):
  the 70/15/15 protocol keeps 19 distinct cases.
  """
  train, train_labels = toy_cases(12, seed=1)
  test, test_labels = toy_cases(9, seed=2)
  train[11], train_labels[11] = train[0], train_labels[0]
  test[0], test_labels[0] = train[1], train_labels[1]
  folder = tmp_path / "archive" / "Toy"
  folder.mkdir(parents=True)
  (folder / "Toy_TRAIN.ts").write_text(format_ts("Toy", train, train_labels))
  (folder / "Toy_TEST.ts").write_text(format_ts("Toy", test, test_labels))
  return tmp_path / "archive"
