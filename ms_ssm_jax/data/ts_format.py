"""Readers of the UEA/UCR classification file formats: sktime/aeon `.ts` and Weka `.arff`.

Both return a `LabeledSeries`: cases padded to the longest one, with their lengths and their
string labels. Missing values (`?`) become NaN; padding past a case's length is 0.

`.ts` (the sktime/aeon format; see Loning et al. 2019, "sktime: A Unified Interface for Machine
Learning with Time Series"): `#` (or `%`) comment lines, then header tags (`@problemName`,
`@timeStamps`, `@missing`, `@univariate`, `@dimensions`, `@equalLength`, `@seriesLength`,
`@classLabel true <names>`), then `@data` and one case per line: dimensions separated by `:`,
values by `,`, the class label last. With `@timeStamps true` each value is written
`(timestamp,value)`; the reader keeps the values in file order and drops the timestamps.

`.arff` (Weka, as the UEA archive distributes it): `%` comments, `@relation`, then either one
numeric attribute per time step (univariate) or one relational attribute holding the time
steps of every dimension (multivariate; a row is `'<dim 1>\\n<dim 2>...',label` with a literal
backslash-n between dimensions), and a nominal class attribute last. ARFF has no notion of
unequal lengths: every value, `?` included, counts, so read unequal-length problems from `.ts`.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import warnings
from typing import Iterator

import numpy as np

_TS_BOOLEAN_TAGS = ("timestamps", "missing", "univariate", "equallength")


class TsFormatError(ValueError):
  """A `.ts` or `.arff` file does not follow its format; the message names file and line."""

  def __init__(self, path: str | pathlib.Path, line_number: int | None, message: str):
    where = f"{path}:{line_number}" if line_number is not None else str(path)
    super().__init__(f"{where}: {message}")


@dataclasses.dataclass(frozen=True)
class LabeledSeries:
  """A time-series classification data set read from one file.

  Attributes:
    values: (N, L, C) float32, L the longest case; NaN marks missing values, 0 pads each case
      past its length.
    lengths: (N,) int32, the number of time steps of each case.
    labels: (N,) str, the class label of each case, one of `class_names`.
    class_names: the classes in the order the header declares them.
    problem_name: the name the header gives (`@problemName` or `@relation`).
  """

  values: np.ndarray
  lengths: np.ndarray
  labels: np.ndarray
  class_names: tuple[str, ...]
  problem_name: str

  @property
  def label_ids(self) -> np.ndarray:
    """(N,) int32 index of each label in `class_names`."""
    index = {name: i for i, name in enumerate(self.class_names)}
    return np.array([index[label] for label in self.labels], dtype=np.int32)


def read_labeled_series(path: str | pathlib.Path) -> LabeledSeries:
  """Reads a `.ts` or `.arff` file, chosen by its suffix."""
  path = pathlib.Path(path)
  readers = {".ts": read_ts, ".arff": read_arff}
  if path.suffix.lower() not in readers:
    raise ValueError(f"{path}: expected a .ts or .arff file, got suffix {path.suffix!r}")
  return readers[path.suffix.lower()](path)


def _numbered_lines(path: pathlib.Path,
                    comment: str | tuple[str, ...]) -> Iterator[tuple[int, str]]:
  """Yields (1-based line number, stripped line), skipping blank and comment lines."""
  with open(path, encoding="utf-8", errors="replace") as f:
    for number, line in enumerate(f, start=1):
      line = line.strip()
      if line and not line.startswith(comment):
        yield number, line


def _parse_values(text: str, path: pathlib.Path, line_number: int, what: str) -> np.ndarray:
  """Parses comma-separated numbers ('?' is missing) into a float64 vector."""
  if not text.strip():
    raise TsFormatError(path, line_number, f"{what} has no values")
  expected = text.count(",") + 1
  with warnings.catch_warnings():
    # numpy only warns when it stops at an unreadable token; make that an error.
    warnings.simplefilter("error", DeprecationWarning)
    try:
      values = np.fromstring(text.replace("?", "nan"), dtype=np.float64, sep=",")
      if len(values) == expected:
        return values
    except (ValueError, DeprecationWarning):
      pass
  for token in text.split(","):  # the slow path only runs to name the bad token
    if token.strip() != "?":
      try:
        float(token)
      except ValueError:
        raise TsFormatError(path, line_number, f"{what}: cannot read {token.strip()!r} as a "
                            "number") from None
  raise TsFormatError(path, line_number, f"{what}: expected {expected} comma-separated values")


def _parse_boolean(value: str, tag: str, path: pathlib.Path, line_number: int) -> bool:
  if value.lower() not in ("true", "false"):
    raise TsFormatError(path, line_number, f"@{tag} must be true or false, got {value!r}")
  return value.lower() == "true"


def _split_top_level(text: str, separator: str) -> list[str]:
  """Splits on `separator` outside parentheses (timestamps may contain the separator)."""
  parts, depth, start = [], 0, 0
  for i, char in enumerate(text):
    if char == "(":
      depth += 1
    elif char == ")":
      depth -= 1
    elif char == separator and depth == 0:
      parts.append(text[start:i])
      start = i + 1
  parts.append(text[start:])
  return parts


_TIMESTAMPED_VALUE = re.compile(r"\(([^()]*)\)")


def _parse_timestamped(text: str, path: pathlib.Path, line_number: int, what: str) -> np.ndarray:
  """Parses `(t,v),(t,v),...` into the float64 vector of the values v."""
  pairs = _TIMESTAMPED_VALUE.findall(text)
  if not pairs:
    raise TsFormatError(path, line_number, f"{what}: expected (timestamp,value) pairs")
  return _parse_values(",".join(p.rsplit(",", 1)[-1] for p in pairs), path, line_number, what)


def read_ts(path: str | pathlib.Path) -> LabeledSeries:
  """Reads a classification problem in the sktime/aeon `.ts` format.

  Raises:
    TsFormatError: on a malformed header or data line (the message gives the line number),
      a case that disagrees with the header, or a regression problem (`@targetLabel`).
  """
  path = pathlib.Path(path)
  header: dict[str, object] = {}
  class_names: tuple[str, ...] | None = None
  in_data = False
  cases: list[np.ndarray] = []
  labels: list[str] = []
  # aeon's own files start some .ts comments with "%", as in ARFF.
  for number, line in _numbered_lines(path, ("#", "%")):
    if not in_data:
      if not line.startswith("@"):
        raise TsFormatError(path, number, f"expected a header tag or @data, got {line[:40]!r}")
      tag, _, value = line[1:].partition(" ")
      tag, value = tag.lower(), value.strip()
      if tag == "data":
        if class_names is None:
          raise TsFormatError(
              path, number, "@data before @classLabel; this reader reads "
              "classification problems (@classLabel true <names>)")
        in_data = True
      elif tag == "problemname":
        header["problemname"] = value
      elif tag in _TS_BOOLEAN_TAGS:
        header[tag] = _parse_boolean(value, tag, path, number)
      elif tag in ("dimensions", "dimension", "serieslength"):
        if not value.isdigit() or int(value) < 1:
          raise TsFormatError(path, number, f"@{tag} must be a positive integer, got {value!r}")
        header["dimensions" if tag == "dimension" else tag] = int(value)
      elif tag == "classlabel":
        flag, _, names = value.partition(" ")
        if not _parse_boolean(flag, tag, path, number) or not names.split():
          raise TsFormatError(
              path, number, "this reader reads classification problems: "
              "expected '@classLabel true <class names>'")
        class_names = tuple(names.split())
      elif tag == "targetlabel":
        raise TsFormatError(
            path, number, "@targetLabel marks a regression problem; this "
            "reader reads classification problems (@classLabel true <names>)")
      else:
        raise TsFormatError(path, number, f"unknown header tag @{tag}")
      continue
    fields = _split_top_level(line, ":")
    if len(fields) < 2:
      raise TsFormatError(path, number, "expected '<dim 1>:...:<dim C>:<label>'")
    label = fields[-1].strip()
    if label not in class_names:
      raise TsFormatError(path, number, f"label {label!r} is not among @classLabel "
                          f"{list(class_names)}")
    parse = _parse_timestamped if header.get("timestamps") else _parse_values
    dims = [parse(f, path, number, f"dimension {d + 1}") for d, f in enumerate(fields[:-1])]
    cases.append(_stack_dimensions(dims, path, number))
    labels.append(label)
  if not in_data:
    raise TsFormatError(path, None, "no @data line")
  if header.get("univariate") and "dimensions" not in header:
    header["dimensions"] = 1
  _check_against_header(cases, header, path)
  return _assemble(cases, labels, class_names, str(header.get("problemname", path.stem)), path)


def _stack_dimensions(dims: list[np.ndarray], path: pathlib.Path, number: int) -> np.ndarray:
  """Stacks per-dimension vectors into one (l, C) case; all must have the same length."""
  lengths = {len(d) for d in dims}
  if len(lengths) > 1:
    raise TsFormatError(
        path, number, "dimensions of one case have different lengths "
        f"{[len(d) for d in dims]}")
  return np.stack(dims, axis=-1)


def _check_against_header(cases: list[np.ndarray], header: dict, path: pathlib.Path) -> None:
  """Checks channel counts and lengths against @dimensions, @equalLength and @seriesLength."""
  if not cases:
    raise TsFormatError(path, None, "no cases after @data")
  channels = header.get("dimensions", cases[0].shape[1])
  for i, case in enumerate(cases):
    if case.shape[1] != channels:
      raise TsFormatError(path, None, f"case {i} has {case.shape[1]} dimensions, expected "
                          f"{channels}")
  if header.get("equallength"):
    length = header.get("serieslength", len(cases[0]))
    for i, case in enumerate(cases):
      if len(case) != length:
        raise TsFormatError(
            path, None, f"case {i} has length {len(case)}, but the header "
            f"declares equal lengths of {length}")


def _assemble(cases: list[np.ndarray], labels: list[str], class_names: tuple[str, ...],
              problem_name: str, path: pathlib.Path) -> LabeledSeries:
  if not cases:
    raise TsFormatError(path, None, "no cases after @data")
  lengths = np.array([len(c) for c in cases], dtype=np.int32)
  values = np.zeros((len(cases), int(lengths.max()), cases[0].shape[1]), dtype=np.float32)
  for i, case in enumerate(cases):
    values[i, :len(case)] = case
  return LabeledSeries(values=values, lengths=lengths, labels=np.array(labels, dtype=str),
                       class_names=class_names, problem_name=problem_name)


def _unquote(text: str) -> str:
  text = text.strip()
  if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
    return text[1:-1]
  return text


def read_arff(path: str | pathlib.Path) -> LabeledSeries:
  """Reads a classification problem in Weka `.arff` as distributed in the UEA/UCR archive.

  Raises:
    TsFormatError: on a malformed header or data line (the message gives the line number),
      or a row that disagrees with the declared attributes.
  """
  path = pathlib.Path(path)
  relation = path.stem
  numeric_count = 0  # numeric attributes: time steps (univariate or inside the relational)
  relational = in_relational = in_data = False
  class_names: tuple[str, ...] | None = None
  cases: list[np.ndarray] = []
  labels: list[str] = []
  for number, line in _numbered_lines(path, "%"):
    if not in_data:
      words = line.split(None, 2)
      keyword = words[0].lower()
      if keyword == "@relation" and len(words) > 1:
        relation = _unquote(line.split(None, 1)[1])
      elif keyword == "@attribute" and len(words) == 3:
        if class_names is not None:
          raise TsFormatError(path, number, "the nominal class attribute must be the last "
                              "attribute")
        kind = words[2].strip()
        if kind.lower() == "relational":
          relational = in_relational = True
        elif kind.lower() in ("numeric", "real"):
          numeric_count += 1
        elif kind.startswith("{") and kind.endswith("}") and not in_relational:
          class_names = tuple(_unquote(n) for n in kind[1:-1].split(",") if n.strip())
        else:
          raise TsFormatError(path, number, f"unsupported attribute type {kind!r}")
      elif keyword == "@end":
        in_relational = False
      elif keyword == "@data":
        if class_names is None:
          raise TsFormatError(
              path, number, "@data before a nominal class attribute "
              "(@attribute <name> {<class names>})")
        in_data = True
      else:
        raise TsFormatError(path, number, f"expected @relation, @attribute, @end or @data, "
                            f"got {line[:40]!r}")
      continue
    if relational:
      case, label = _parse_relational_row(line, path, number)
    else:
      values, _, label = line.rpartition(",")
      case = _parse_values(values, path, number, "row")[:, None]
      if len(case) != numeric_count:
        raise TsFormatError(
            path, number, f"row has {len(case)} values, the header declares "
            f"{numeric_count} attributes")
    label = _unquote(label)
    if label not in class_names:
      raise TsFormatError(
          path, number, f"label {label!r} is not among the class attribute's "
          f"{list(class_names)}")
    cases.append(case)
    labels.append(label)
  if not in_data:
    raise TsFormatError(path, None, "no @data line")
  _check_against_header(cases, {}, path)
  return _assemble(cases, labels, class_names, relation, path)


def _parse_relational_row(line: str, path: pathlib.Path, number: int) -> tuple[np.ndarray, str]:
  """Parses `'<dim 1>\\n<dim 2>...',label` into an (l, C) case and its label."""
  quote = line[0]
  end = line.rfind(quote)
  if quote not in "'\"" or end == 0 or not line[end + 1:].lstrip().startswith(","):
    raise TsFormatError(path, number, "expected a quoted relational value followed by "
                        "',<label>'")
  dims = line[1:end].split("\\n")
  parsed = [_parse_values(d, path, number, f"dimension {i + 1}") for i, d in enumerate(dims)]
  return _stack_dimensions(parsed, path, number), line[end + 1:].lstrip()[1:]
