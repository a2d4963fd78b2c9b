"""Every config file loads with every model and builds its model (shapes only, no compute)."""

import importlib
import os
import pathlib
import subprocess
import sys

import jax
import ml_collections
import pytest

from configs import common
from ms_ssm_jax import data
from ms_ssm_jax import layers
from ms_ssm_jax import model as model_lib
from ms_ssm_jax.data.task import TaskSpec

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG_FILES = ("default", "listops", "lra_text", "lra_retrieval", "lra_image", "pathfinder",
                "pathx", "scifar", "smnist", "sdigits", "imagenet", "ptbxl", "uea", "synthetic")

# Tasks whose spec needs files only the user has: the spec they would report.
USER_DATA_SPECS = {
    "ptbxl":
        TaskSpec("ptbxl", "continuous", num_classes=71, max_length=1000, num_channels=12,
                 target="multilabel", metric="auroc"),
    "uea":
        TaskSpec("uea", "continuous", num_classes=2, max_length=405, num_channels=61),
}


def _task_spec(config: ml_collections.ConfigDict) -> TaskSpec:
  if config.data.name in USER_DATA_SPECS:
    return USER_DATA_SPECS[config.data.name]
  return data.get_task(config.data)


@pytest.mark.parametrize("file", CONFIG_FILES)
def test_every_model_of_every_config_builds(file):
  module = importlib.import_module(f"configs.{file}")
  for model_name in common.MODELS:
    if model_name == "ms_ssm_s5" and file != "listops":
      with pytest.raises(ValueError, match="no settings for model 'ms_ssm_s5'"):
        module.get_config(model_name)
      continue
    config = module.get_config(model_name)
    assert config.is_locked
    spec = _task_spec(config)
    model = model_lib.build_model(config.model, spec, precision=config.train.precision)
    batch = model_lib.dummy_batch(spec, 1)
    logits, variables = jax.eval_shape(
        lambda m=model, b=batch: m.init_with_output(jax.random.key(0), b))
    assert sorted(k for k in variables["params"] if k.startswith("blocks_")) == sorted(
        f"blocks_{i}" for i in range(config.model.num_layers)), (file, model_name)
    assert logits.shape == (1, spec.num_classes), (file, model_name)


def test_options_pick_the_task():
  assert importlib.import_module("configs.listops").get_config(
      "s5,source=release").data.name == "lra_listops"
  assert importlib.import_module("configs.pathfinder").get_config(
      "ms_ssm,source=release").data.name == "lra_pathfinder32"
  assert importlib.import_module("configs.smnist").get_config(
      "s4d,permuted=true").data.name == "psmnist"
  assert importlib.import_module("configs.synthetic").get_config(
      "s6,task=selective_copying").data.name == "selective_copying"
  uea = importlib.import_module("configs.uea").get_config(
      "lru,dataset=Heartbeat,protocol=uea_70_15_15,split_seed=3456")
  assert (uea.data.dataset, uea.data.protocol, uea.data.split_seed) == ("Heartbeat", "uea_70_15_15",
                                                                        3456)


def test_model_presets():
  listops = importlib.import_module("configs.listops")
  paper = listops.get_config("ms_ssm")
  assert (paper.model.num_layers, paper.model.d_model, paper.optimizer.weight_decay) == (20, 128,
                                                                                         0.04)
  assert paper.model.layer_config.num_levels == 3 and paper.model.block == "s5"
  assert (paper.model.layer_config.impl, paper.model.layer_config.mixer) == ("conv", "static")
  s6 = listops.get_config("ms_ssm_s6")
  assert (s6.model.layer_config.backbone, s6.model.block,
          s6.model.mamba_conv_kernel) == ("s6", "mamba", 0)
  assert s6.model.layer_config.impl == "auto"
  s5 = listops.get_config("s5")
  assert (s5.model.layer, s5.model.layer_config.state_size, s5.model.layer_config.blocks,
          s5.model.activation, s5.optimizer.lr) == ("s5", 16, 8, "half_glu2", 3e-3)


def test_base_config_has_the_schema():
  config = common.base_config("japanese_vowels")
  assert set(config) == {
      "data", "model", "optimizer", "train", "mesh", "init_from", "init_head", "freeze"
  }
  assert set(config.model) == model_lib.MODEL_CONFIG_KEYS
  assert set(config.optimizer) == {
      "lr", "ssm_lr", "mixer_lr", "weight_decay", "b1", "b2", "eps", "schedule", "warmup_steps",
      "warmup_epochs", "warmup_max_fraction", "end_lr_factor", "grad_clip_norm", "grad_accum_steps"
  }
  assert set(config.train) == {
      "seed", "global_batch_size", "eval_batch_size", "num_steps", "num_epochs", "log_every",
      "eval_every", "checkpoint_every", "keep_checkpoints", "eval_splits", "precision", "remat",
      "profile_steps"
  }
  # Placeholders: None by default, settable to a string (as from the command line).
  assert config.init_from is None and config.freeze is None
  config.freeze = "encoder/.*"
  listops = importlib.import_module("configs.listops").get_config("s5,source=release")
  listops.data.data_dir = "/data/lra_release"  # was None in the data config


def test_unknown_keys_are_errors_naming_the_key():
  listops = importlib.import_module("configs.listops")
  with pytest.raises(ValueError, match="'sauce'"):
    listops.get_config("s5,sauce=release")
  with pytest.raises(ValueError, match="'s7'"):
    listops.get_config("s7")
  with pytest.raises(ValueError, match="'tape'"):
    listops.get_config("s5,source=tape")
  with pytest.raises(ValueError, match="permuted"):
    importlib.import_module("configs.smnist").get_config("s5,permuted=maybe")
  config = listops.get_config("s5")
  with pytest.raises(AttributeError, match="d_modle"):
    config.model.d_modle = 64
  with pytest.raises(KeyError, match="model.layer_config.state_sise"):
    common.override(common.base_config("listops", "s5"), {"model.layer_config.state_sise": 3})
  with pytest.raises(KeyError, match="'modle'"):
    common.override(common.base_config("listops"), {"modle.d_model": 3})


def test_ms_ssm_s5_preset_is_s5s_listops_model_with_s5_streams():
  config = importlib.import_module("configs.listops").get_config("ms_ssm_s5")
  layer_config = config.model.layer_config
  assert (config.model.layer, layer_config.backbone, layer_config.bidirectional,
          layer_config.s5_blocks, layer_config.impl) == ("ms_ssm", "s5", True, 8, "conv")
  assert (config.model.block, config.model.activation, config.model.num_layers) == ("s5",
                                                                                    "half_glu2", 8)


def test_pathfinder_ms_ssm_differs_from_s5_only_in_the_layer():
  pathfinder = importlib.import_module("configs.pathfinder")
  ms_ssm, s5 = pathfinder.get_config("ms_ssm"), pathfinder.get_config("s5")
  different = {k for k in ms_ssm.model if k != "layer_config" and ms_ssm.model[k] != s5.model[k]}
  assert different == {"layer"}
  assert ms_ssm.optimizer.to_dict() == s5.optimizer.to_dict()
  assert (ms_ssm.model.layer_config.mixer, ms_ssm.model.layer_config.state_per_stream) == ("static",
                                                                                           32)


@pytest.mark.parametrize("task", ["listops", "ptbxl"])
def test_every_ablation_row_builds_and_changes_one_thing(task):
  ablations = importlib.import_module("configs.ablations")
  full = ablations.get_config(f"full,task={task}").model.layer_config.to_dict()
  for row in ablations.task_rows(task):
    changes = ablations.ROWS[row]
    config = ablations.get_config(f"{row},task={task}")
    spec = _task_spec(config)
    model = model_lib.build_model(config.model, spec)
    jax.eval_shape(lambda m=model, s=spec: m.init(jax.random.key(0), model_lib.dummy_batch(s, 1)))
    changed = {k for k, v in config.model.layer_config.to_dict().items() if full[k] != v}
    assert changed == {k for k, v in changes.items() if full[k] != v}, row
  with pytest.raises(ValueError, match="unknown ablation row 'no_mixer'"):
    ablations.get_config("no_mixer")


def test_listops_ablations_use_the_s4_base_with_the_papers_mixer_and_skip_s6_rows():
  ablations = importlib.import_module("configs.ablations")
  layer_config = ablations.get_config("full").model.layer_config
  assert (layer_config.backbone, layer_config.mixer) == ("s4d_real", "linear_input")
  assert ablations.task_rows("ptbxl") == list(ablations.ROWS)
  assert "condition_on_band" not in ablations.task_rows("listops")
  with pytest.raises(ValueError, match="'condition_on_band' changes the S6 projections"):
    ablations.get_config("condition_on_band,task=listops")


@pytest.mark.parametrize("model_name", common.MODELS)
def test_every_preset_has_its_layers_dataclass_fields(model_name):
  config = common.task_config("japanese_vowels", model_name)
  assert set(config.model.layer_config) == set(layers.default_layer_config(
      config.model.layer)), model_name


def test_a_task_file_cannot_set_a_misspelt_field():
  config = common.task_config("listops", "ms_ssm")
  with pytest.raises(AttributeError, match="num_layer"):
    config.model.num_layer = 8
  with pytest.raises(AttributeError, match="num_level"):
    config.model.layer_config.num_level = 3
  with pytest.raises(KeyError, match="c_int"):
    common.baseline_layer(common.task_config("listops", "s5"), "s5", s5_state=16, s5_blocks=8,
                          bidirectional=True, c_int="lecun_normal")


def test_layer_recipes_refuse_a_model_they_do_not_set():
  config = common.task_config("listops", "s5")
  with pytest.raises(ValueError, match="'ms_ssm_s5' is not a baseline"):
    common.baseline_layer(config, "ms_ssm_s5", s5_state=16, s5_blocks=8, bidirectional=True)
  with pytest.raises(ValueError, match="'s5' is not one of the paper's MS-SSM variants"):
    common.ms_ssm_layer(config, "s5", num_levels=3, kernel_size=4, state_per_stream=16,
                        bidirectional=False)


def test_the_models_a_config_offers():
  with pytest.raises(ValueError, match="no settings for model 's5'; it has ms_ssm, ms_ssm_s6"):
    common.parse_arg("s5,size=s5", models=("ms_ssm", "ms_ssm_s6"), size="paper")
  assert common.parse_arg("ms_ssm_s5", models=common.MODELS).model == "ms_ssm_s5"
  assert set(common.TASK_MODELS) == set(common.MODELS) - {"ms_ssm_s5"}


def test_an_unknown_layer_key_on_the_command_line_is_a_one_line_error_naming_it(tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
  result = subprocess.run([
      sys.executable,
      str(REPO / "train.py"), "--config=configs/default.py:s5",
      "--config.model.layer_config.nope=1", f"--workdir={tmp_path}"
  ], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert "unknown config key --config.model.layer_config.nope" in result.stderr
