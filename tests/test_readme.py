"""Every command in the README's bash blocks runs as written, at toy size.

Each command runs in a fresh directory that sees the repository's `train.py`, `eval.py`,
`configs/` and `scripts/`, in README order (later commands use the runs of earlier ones).
Train commands get `TOY_FLAGS` (and a task's own toy sizes) appended, which override the
README's step counts, and `scripts/train_compile.py` compiles one block (it needs
`bash scripts/setup_cuda_plugin.sh`); nothing else is changed. Not run here:
`bash scripts/setup.sh` (CI's `.ci/run` runs the two fresh-machine commands verbatim) and the
test-suite command itself.
"""

import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SETUP = "bash scripts/setup.sh && "
NOT_RUN = ("-m pytest",)  # the suite that runs this test
TOY_FLAGS = ("--config.train.num_steps=4 --config.train.num_epochs=0 "
             "--config.train.eval_every=2 --config.train.checkpoint_every=2 "
             "--config.train.log_every=2 --config.optimizer.warmup_steps=0 "
             "--config.optimizer.warmup_epochs=0")
_LISTOPS_TOY_FLAGS = ("--config.data.num_train=64 --config.data.num_validation=16 "
                      "--config.data.num_test=16 --config.data.max_length=128 "
                      "--config.data.min_tree_length=10 --config.data.max_tree_length=100 "
                      "--config.model.num_layers=1 --config.model.d_model=16")
COMPILE_TOY_FLAGS = "--set model.num_layers=1"  # train_compile.py: one block compiles in seconds
TASK_TOY_FLAGS = {  # generated tasks: a few short examples instead of LRA's 96,000
    "configs/listops.py": _LISTOPS_TOY_FLAGS,
    "configs/ablations.py": _LISTOPS_TOY_FLAGS,  # its rows default to ListOps
}


def readme_commands() -> list[str]:
  """The commands of the README's bash blocks, continuation lines joined, in order."""
  text = (REPO / "README.md").read_text()
  commands = []
  for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
    for line in block.replace("\\\n", " ").splitlines():
      line = line.strip()
      if line and not line.startswith("#"):
        commands.append(re.sub(r"\s+", " ", line))
  return commands


def toy_command(command: str) -> str | None:
  """The command as the test runs it, or None if the test does not run it."""
  command = command.removeprefix(SETUP)
  if any(marker in command for marker in NOT_RUN):
    return None
  command = re.sub(r"\s+# .*$", "", command)  # a trailing comment
  if " train.py " in command:
    task_flags = [flags for config, flags in TASK_TOY_FLAGS.items() if config in command]
    command = " ".join([command, TOY_FLAGS, *task_flags])
  if "scripts/train_compile.py " in command:
    command += " " + COMPILE_TOY_FLAGS
  return command.replace(".venv/bin/python", shlex.quote(sys.executable))


def test_the_readme_has_the_commands_a_new_user_needs():
  commands = readme_commands()
  assert commands[:2] == [
      "bash scripts/setup.sh && .venv/bin/python train.py --config configs/default.py "
      "--workdir workdirs/default", "bash scripts/setup.sh && .venv/bin/python -m pytest -n 2 -q"
  ]
  assert [toy_command(c) for c in commands].count(None) == 1  # only the suite is not run
  ci = (REPO / ".ci" / "run").read_text()
  assert commands[1] in ci  # CI runs the README's test command verbatim


@pytest.mark.slow
def test_every_readme_command_runs_at_toy_size(tmp_path):
  for name in ("train.py", "eval.py", "configs", "scripts", ".cuda_plugin"):
    (tmp_path / name).symlink_to(REPO / name)
  zoo = tmp_path / "zoo"  # release_checkpoint.py writes here, not into the package
  shutil.copytree(REPO / "ms_ssm_jax" / "released", zoo)
  # One CPU device, as on a user's machine (conftest fakes 8 for the sharding tests).
  env = {
      **os.environ, "XLA_FLAGS": "", "PYTHONPATH": str(REPO), "MS_SSM_ZOO_DIR": str(zoo),
      "TFDS_DATA_DIR": str(tmp_path / "tfds")
  }
  outputs = {}
  for command in filter(None, map(toy_command, readme_commands())):
    if "PYTHONPATH=.cuda_plugin" in command and not (REPO / ".cuda_plugin").exists():
      pytest.fail(f"{command!r} needs the CUDA compiler plugin: run bash "
                  "scripts/setup_cuda_plugin.sh (.ci/run does)")
    run = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, f"{command}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    outputs[command] = run.stdout + run.stderr
  zoo_eval = next(out for command, out in outputs.items()
                  if "--zoo=ms_ssm_japanese_vowels" in command and "eval.py" in command)
  assert "0.9703" in zoo_eval  # the accuracy the README states


def test_python_blocks_name_what_exists():
  """Every `ms_ssm_jax` module a README Python block imports has the attributes it uses."""
  import ast
  import importlib
  blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
  assert blocks, "the README has no Python block to check"
  for block in blocks:
    tree = ast.parse(block)
    modules = {
        alias.asname or alias.name: importlib.import_module(f"{node.module}.{alias.name}")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "ms_ssm_jax" for alias in node.names
    }
    for node in ast.walk(tree):
      if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and
          node.value.id in modules):
        assert hasattr(
            modules[node.value.id],
            node.attr), (f"README uses {node.value.id}.{node.attr}, which does not exist")
