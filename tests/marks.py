"""Parametrize helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from typing import Any

import pytest


def marked_slow(cases: Iterable[Any], slow: Container[Any],
                key: Callable[[Any], Any] = lambda case: case) -> list[Any]:
  """`cases` for `pytest.mark.parametrize`, those whose `key` is in `slow` marked `slow` (they
  run with `-m slow`)."""
  return [
      pytest.param(case, marks=pytest.mark.slow) if key(case) in slow else case for case in cases
  ]
