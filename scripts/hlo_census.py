"""Where a compiled XLA program moves its bytes: its top-level ops by kind and by model part.

A census of optimized HLO text (`compiled.as_text()`): every instruction of the entry
computation (and of while bodies, counted once per iteration) with the bytes of its operands
plus its results, grouped by category (fusion kind and root op, transposes, FFTs, custom-call
targets such as Triton kernels and cuBLAS) and by the part of the model its `op_name` names
(`blocks_*/<module>`, forward or backward). A GPU compile reports no cost analysis of its own;
on a memory-bound train step this count of bytes over the device's bandwidth is a floor on the
step time, and comparing two programs' counts says where one spends more. Bytes a kernel
re-reads from cache count once, bytes a fusion reads twice count once: it is an estimate.

    python scripts/hlo_census.py program.hlo.txt [--top 25]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import re

_ELEMENT_BYTES = {
    "pred": 1, "s8": 1, "u8": 1, "bf16": 2, "f16": 2, "s16": 2, "u16": 2, "f32": 4, "s32": 4,
    "u32": 4, "f64": 8, "s64": 8, "u64": 8, "c64": 8, "c128": 16
}
_ARRAY = re.compile(r"\b(" + "|".join(_ELEMENT_BYTES) + r")\[([0-9,]*)\]")
_INSTRUCTION = re.compile(r"^(ROOT )?%([\w.\-]+) = (.+?) ([a-z][a-z0-9\-]*)\((.*)$")
_HEADER = re.compile(r"^(ENTRY )?%([\w.\-]+) .*\{$")
_FREE = ("parameter", "constant", "get-tuple-element", "tuple", "bitcast")


@dataclasses.dataclass(frozen=True)
class Instruction:
  root: bool
  name: str
  shape: str
  opcode: str
  rest: str  # operands and attributes


@dataclasses.dataclass(frozen=True)
class Row:
  """One top-level instruction: what it is, where it comes from, the bytes it moves."""
  name: str
  category: str
  part: str
  bytes: int


def shape_bytes(shape: str) -> int:
  """Bytes of every array in an HLO shape, e.g. `(f32[2,3]{1,0}, s32[])` -> 28."""
  total = 0
  for element, dims in _ARRAY.findall(shape):
    count = 1
    for dim in filter(None, dims.split(",")):
      count *= int(dim)
    total += count * _ELEMENT_BYTES[element]
  return total


def parse_module(text: str) -> tuple[dict[str, list[Instruction]], str]:
  """`({computation name: instructions}, entry name)` of HLO module text."""
  computations: dict[str, list[Instruction]] = {}
  entry, current = "", None
  for line in text.splitlines():
    header = _HEADER.match(line)
    if header:
      current = header.group(2)
      computations[current] = []
      entry = current if header.group(1) else entry
      continue
    match = _INSTRUCTION.match(line.strip())
    if current is not None and match:
      root, *fields = match.groups()
      computations[current].append(Instruction(bool(root), *fields))
  if not entry:
    raise ValueError("no ENTRY computation: pass the text of a compiled HLO module")
  return computations, entry


def _operands(instruction: Instruction) -> list[str]:
  depth, end = 1, len(instruction.rest)
  for index, char in enumerate(instruction.rest):
    depth += {"(": 1, ")": -1}.get(char, 0)
    if depth == 0:
      end = index
      break
  return re.findall(r"%([\w.\-]+)", instruction.rest[:end])


def _category(instruction: Instruction, computations: dict[str, list[Instruction]]) -> str:
  if instruction.opcode == "custom-call":
    return "custom-call " + re.search(r'custom_call_target="([^"]*)"', instruction.rest).group(1)
  if instruction.opcode != "fusion":
    return instruction.opcode
  kind = re.search(r"kind=(\w+)", instruction.rest).group(1)
  body = computations[re.search(r"calls=%([\w.\-]+)", instruction.rest).group(1)]
  backend_kind = re.search(r'"kind":"([^"]+)"', instruction.rest)
  if kind == "kCustom" and backend_kind:
    return f"fusion {backend_kind.group(1)}"
  if any(op.opcode == "transpose" for op in body):
    return "fusion with a transpose"
  root = next(op for op in body if op.root)
  return f"fusion {kind} ({root.opcode})"


def part_of(instruction: Instruction) -> str:
  """`<module> fwd|bwd` from the op_name: `blocks_3/seq_layer/...` -> `seq_layer fwd`, an op of
  the block itself (`blocks_3/mul`) -> `block fwd`, anything else (the embedding, the head, the
  loss, the optimizer) -> `rest fwd`."""
  op_name = re.search(r'op_name="([^"]*)"', instruction.rest)
  if not op_name:
    return "unnamed"
  direction = "bwd" if "transpose(jvp" in op_name.group(1) else "fwd"
  inside = re.search(r"/blocks_\d+/(.*)", op_name.group(1))
  if not inside:
    return f"rest {direction}"
  components = inside.group(1).split("/")
  module = components[0] if len(components) > 1 and not components[0].startswith("jit(") else None
  return f"{module or 'block'} {direction}"


def census(text: str) -> list[Row]:
  """Every top-level instruction's category, model part and bytes (operands + results)."""
  computations, entry = parse_module(text)
  rows: list[Row] = []

  def walk(name: str) -> None:
    shapes: dict[str, str] = {}
    for instruction in computations[name]:
      shapes[instruction.name] = instruction.shape
      if instruction.opcode in _FREE:
        continue
      if instruction.opcode == "while":
        walk(re.search(r"body=%([\w.\-]+)", instruction.rest).group(1))
        continue
      moved = shape_bytes(instruction.shape) + sum(
          shape_bytes(shapes.get(operand, "")) for operand in _operands(instruction))
      rows.append(
          Row(instruction.name, _category(instruction, computations), part_of(instruction), moved))

  walk(entry)
  return rows


def summarize(rows: list[Row], key: str) -> list[tuple[str, int, int]]:
  """`(key value, count, bytes)` over rows grouped by `key` (`category` or `part`), most bytes
  first."""
  groups: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
  for row in rows:
    group = groups[getattr(row, key)]
    group[0] += 1
    group[1] += row.bytes
  return sorted(((k, c, b) for k, (c, b) in groups.items()), key=lambda item: -item[2])


def table(rows: list[Row], key: str, top: int) -> str:
  """A markdown table of `summarize` (the `top` largest groups and the total)."""
  groups = summarize(rows, key)
  lines = [f"| {key} | ops | GB |", "|---|---|---|"]
  lines += [f"| {k} | {c} | {b / 1e9:.3f} |" for k, c, b in groups[:top]]
  total = sum(b for _, _, b in groups)
  lines.append(f"| total | {sum(c for _, c, _ in groups)} | {total / 1e9:.3f} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("hlo", help="text of a compiled HLO module (compiled.as_text())")
  parser.add_argument("--top", type=int, default=25)
  args = parser.parse_args()
  with open(args.hlo) as f:
    rows = census(f.read())
  print(table(rows, "category", args.top))
  print()
  print(table(rows, "part", args.top))


if __name__ == "__main__":
  main()
