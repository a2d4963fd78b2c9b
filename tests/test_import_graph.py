"""The package's import graph points one way: no cycles, nothing above the package, one file
per outside library that STYLE gives a single owner (orbax: checkpointing.py).

Read from the source (`ast`), imports inside functions included, so that a lazy import cannot
hide an arrow pointing up.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "ms_ssm_jax"
# Top-level code that imports the package; the package must never import it.
ABOVE_THE_PACKAGE = ("configs", "scripts", "tests", "train", "eval")
# Outside libraries with one owning module.
OWNERS = {"orbax": "ms_ssm_jax.checkpointing"}


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
  return {_module_name(path): path for path in (ROOT / PACKAGE).rglob("*.py")}


def _imports(path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
  """Every module `path` imports; `from a import b` is module a.b when the package has it,
  else (a name in) module a."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      assert node.level == 0, f"{path}: use absolute imports"
      for alias in node.names:
        submodule = f"{node.module}.{alias.name}"
        names.add(submodule if submodule in modules else node.module)
  return names


def _graph() -> dict[str, set[str]]:
  """The package's modules -> the package modules each imports."""
  modules = _modules()
  return {
      name: {m for m in _imports(path, modules) if m in modules and m != name}
      for name, path in modules.items()
  }


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """A cycle of `graph` as a list of modules (first == last), or None."""
  done: set[str] = set()

  def visit(node: str, path: list[str]) -> list[str] | None:
    if node in path:
      return path[path.index(node):] + [node]
    if node in done:
      return None
    for target in sorted(graph[node]):
      cycle = visit(target, path + [node])
      if cycle:
        return cycle
    done.add(node)
    return None

  for node in sorted(graph):
    cycle = visit(node, [])
    if cycle:
      return cycle
  return None


def test_the_cycle_finder_finds_cycles():
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_package_imports_have_no_cycle():
  graph = _graph()
  assert "ms_ssm_jax.checkpointing" in graph["ms_ssm_jax.train_lib"]  # the parser sees arrows
  cycle = _find_cycle(graph)
  assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_the_package_imports_nothing_above_it():
  modules = _modules()
  for name, path in modules.items():
    above = sorted(m for m in _imports(path, modules) if m.split(".")[0] in ABOVE_THE_PACKAGE)
    assert not above, f"{name} imports {above}, which import the package"


def test_owned_libraries_are_imported_by_their_owner_only():
  modules = _modules()
  for name, path in modules.items():
    for library, owner in OWNERS.items():
      if name != owner:
        assert not any(m.split(".")[0] == library for m in _imports(path, modules)), (
            f"{name} imports {library}; only {owner} may")
