"""scripts/hlo_census.py: bytes per op of compiled HLO text, by category and model part."""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))
import hlo_census  # noqa: E402  (scripts/ is not a package)


def test_shape_bytes_counts_every_array_of_a_shape():
  assert hlo_census.shape_bytes("f32[2,3]{1,0}") == 24
  assert hlo_census.shape_bytes("(f32[2,3]{1,0}, s32[], c64[4]{0})") == 24 + 4 + 32
  assert hlo_census.shape_bytes("pred[5]") == 5


def test_parse_module_needs_an_entry_computation():
  with pytest.raises(ValueError, match="no ENTRY computation"):
    hlo_census.parse_module("HloModule m\n")


@pytest.mark.parametrize("op_name, part", [
    ("jit(step)/jvp(Model)/Model._encode/blocks_3/seq_layer/mul", "seq_layer fwd"),
    ("jit(step)/transpose(jvp(Model))/Model._encode/blocks_0/norm/add", "norm bwd"),
    ("jit(step)/transpose(jvp(Model))/Model._encode/blocks_2/mul", "block bwd"),
    ("jit(step)/jvp(Model)/Model._encode/blocks_1/jit(_where)/select_n", "block fwd"),
    ("jit(step)/jvp(Model)/Model._encode/encoder/embedding/take", "rest fwd"),
])
def test_part_of_names_the_module_and_the_direction(op_name, part):
  instruction = hlo_census.Instruction(False, "x", "f32[2]", "add",
                                       f'%a, %b), metadata={{op_name="{op_name}"}}')
  assert hlo_census.part_of(instruction) == part


def test_census_of_a_compiled_program():
  x = jax.ShapeDtypeStruct((256, 512), jnp.float32)
  text = jax.jit(lambda a: jnp.tanh(a.T) @ a).lower(x).compile().as_text()
  rows = hlo_census.census(text)
  categories = {row.category for row in rows}
  assert any("dot" in c or "custom-call" in c or "fusion" in c for c in categories), categories
  total = sum(row.bytes for row in rows)
  # At least the input read once and the (512, 512) result written once.
  assert total >= 256 * 512 * 4 + 512 * 512 * 4
  table = hlo_census.table(rows, "category", top=3)
  assert table.splitlines()[0] == "| category | ops | GB |"
  assert table.splitlines()[-1] == f"| total | {len(rows)} | {total / 1e9:.3f} |"
