"""LRA ListOps: our own generator of the data, its tokenizer, and a tfds builder.

ListOps (Nangia & Bowman, 2018) in the Long Range Arena form (Tay et al., 2021): nested
expressions over the digits 0-9 with the operators MAX, MIN, MED (median) and SM (sum mod 10),
written in prefix form as `[MAX 2 9 [MIN 4 7 ] 0 ]`; the label is the value of the expression
(10 classes).

The generator follows the distribution of LRA's generator: a node at depth d < 10 (the root has
depth 1) is an operator with probability 0.25 and a digit otherwise; nodes at depth 10 are
digits. An operator has 2 to 10 children (uniform), a uniform operator, and costs two tokens
(`[OP` and `]`); a digit costs one. Trees are kept when their token count lies in the length
window, and repeated trees are dropped so that the splits share no example.

The LRA release writes the same trees with `(`/`)` around every node of a binary-tree encoding,
`( ( ( [MAX 2 ) 9 ) ] )`, in TSV files with the header `Source<TAB>Target`. Like S4 and S5 we
drop the parentheses and keep `]` as a token, so both forms give the same token ids.

Token ids: 0 padding, 1-10 the digits 0-9, 11-14 `[MIN`, `[MAX`, `[MED`, `[SM`, 15 `]`.
"""

from __future__ import annotations

import statistics

import numpy as np

PAD_ID = 0
LISTOPS_TOKENS = (
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
    "[MIN", "[MAX", "[MED", "[SM", "]",
)  # fmt: skip
LISTOPS_VOCAB_SIZE = len(LISTOPS_TOKENS) + 1  # + padding
NUM_CLASSES = 10

_TOKEN_TO_ID = {token: i + 1 for i, token in enumerate(LISTOPS_TOKENS)}
_DIGIT_OFFSET = _TOKEN_TO_ID["0"]
_OPERATOR_OFFSET = _TOKEN_TO_ID["[MIN"]  # operator k (0 MIN, 1 MAX, 2 MED, 3 SM) is id 11 + k
_END_ID = _TOKEN_TO_ID["]"]
_OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")


def _split_listops_text(text: str) -> list[str]:
  return text.replace("(", " ").replace(")", " ").split()


def tokenize_listops(text: str) -> np.ndarray:
  """Token ids `(l,)` int32 of an expression in our form or the LRA release form (with parens)."""
  try:
    return np.array([_TOKEN_TO_ID[token] for token in _split_listops_text(text)], np.int32)
  except KeyError as e:
    raise ValueError(
        f"unknown ListOps token {e.args[0]!r} in {text[:80]!r}...; known tokens: "
        f"{', '.join(LISTOPS_TOKENS)} (parentheses are ignored)"
    ) from None


def listops_to_text(tokens: np.ndarray) -> str:
  """The expression `[MAX 2 9 ]` written by token ids `(l,)`; padding ids are skipped."""
  tokens = np.asarray(tokens)
  if tokens.min(initial=0) < 0 or tokens.max(initial=0) >= LISTOPS_VOCAB_SIZE:
    raise ValueError(f"ListOps token ids must lie in [0, {LISTOPS_VOCAB_SIZE}), got {tokens}")
  return " ".join(LISTOPS_TOKENS[i - 1] for i in tokens.tolist() if i != PAD_ID)


def _apply_operator(operator: str, args: list[int]) -> int:
  if operator == "[MIN":
    return min(args)
  if operator == "[MAX":
    return max(args)
  if operator == "[MED":
    # As in LRA: the median (the mean of the two middle values for an even count), truncated.
    return int(statistics.median(args))
  return sum(args) % 10


def evaluate_listops(text: str) -> int:
  """The value of an expression in our form or the LRA release form, by a stack machine."""
  frames: list[tuple[str, list[int]]] = []
  result = None
  for token in _split_listops_text(text):
    if result is not None:
      raise ValueError(f"tokens after the end of the expression in {text[:80]!r}")
    if token in _OPERATORS:
      frames.append((token, []))
      continue
    if token == "]":
      if not frames or not frames[-1][1]:
        raise ValueError(f"unmatched ']' or operator without arguments in {text[:80]!r}")
      operator, args = frames.pop()
      value = _apply_operator(operator, args)
    elif token.isdigit() and len(token) == 1:
      value = int(token)
    else:
      raise ValueError(f"unknown ListOps token {token!r} in {text[:80]!r}")
    if frames:
      frames[-1][1].append(value)
    else:
      result = value
  if frames or result is None:
    raise ValueError(f"incomplete ListOps expression {text[:80]!r}")
  return result
