"""Optimizer groups, frozen parameters, weight decay, schedules and accumulation."""

import importlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import common
from ms_ssm_jax import model as model_lib
from ms_ssm_jax import optim
from ms_ssm_jax.data.task import TaskSpec
from ms_ssm_jax.ssm import SSM_PARAM_NAMES

SPEC = TaskSpec("t", "continuous", num_classes=3, max_length=8, num_channels=2)


def opt_config(**updates) -> ml_collections.ConfigDict:
  config = common.base_config("japanese_vowels").optimizer
  config.update(updates)
  return config


def model_params(model: str, **layer_updates):
  config = common.base_config("japanese_vowels", model)
  config.model.d_model, config.model.num_layers = 4, 2
  config.model.layer_config.update(layer_updates)
  model_ = model_lib.build_model(config.model, SPEC)
  return jax.eval_shape(
      lambda: model_.init(jax.random.key(0), model_lib.dummy_batch(SPEC, 1)))["params"]


def flat_labels(params, freeze=None, separate_mixer=False) -> dict[str, str]:
  labels = optim.label_params(params, freeze, separate_mixer)
  return {optim.param_path(p): label for p, label in jax.tree_util.tree_leaves_with_path(labels)}


@pytest.mark.parametrize("model, layer_updates", [
    ("s5", {"state_size": 4}),
    ("lru", {"state_size": 2}),
    ("s6", {"state_size": 2}),
    ("ms_ssm", {"state_per_stream": 2, "num_levels": 1}),
])
@pytest.mark.parametrize("separate_mixer", [False, True])
def test_labels(model, layer_updates, separate_mixer):
  labels = flat_labels(model_params(model, **layer_updates), separate_mixer=separate_mixer)
  for path, label in labels.items():
    leaf = path.rsplit("/", 1)[-1]
    if leaf in SSM_PARAM_NAMES:
      assert label == optim.SSM, path
    elif separate_mixer and path.endswith(("/mixer/kernel", "/mixer/weight")):
      assert label == optim.MIXER, path
    elif "norm" in path or leaf == "bias":
      assert label == optim.NO_DECAY, path
    else:
      assert label == optim.DECAY, path
  assert optim.SSM in labels.values() and optim.NO_DECAY in labels.values()
  assert labels["head/kernel"] == optim.DECAY and labels["head/bias"] == optim.NO_DECAY
  assert labels["blocks_0/seq_layer/D"] == optim.DECAY  # like S5: D is a regular weight
  # Only MS-SSM has a scale mixer; its bias stays a bias.
  mixer_labels = {p: v for p, v in labels.items() if "/mixer/" in p}
  assert (optim.MIXER in mixer_labels.values()) == (separate_mixer and model == "ms_ssm")
  assert all(v == optim.NO_DECAY for p, v in mixer_labels.items() if p.endswith("/bias"))


def test_frozen_labels_and_bad_regex():
  params = model_params("s5", state_size=4)
  labels = flat_labels(params, freeze="encoder/.*|blocks_0/.*")
  frozen = {path for path, label in labels.items() if label == optim.FROZEN}
  assert frozen == {p for p in labels if p.startswith(("encoder/", "blocks_0/"))}
  # fullmatch: "blocks_1" alone is not a whole path.
  with pytest.raises(ValueError, match="matches no parameter"):
    optim.label_params(params, "blocks_1")


def test_one_step_decay_groups_and_frozen():
  params = {
      "ssm": {"Lambda_re": jnp.ones(3), "B": jnp.ones((3, 2))},
      "dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)},
      "norm": {"scale": jnp.ones(2)},
      "frozen": {"kernel": jnp.ones((2, 2))},
  }
  tx, _ = optim.make_optimizer(
      opt_config(lr=0.1, ssm_lr=0.1, weight_decay=0.5, schedule="constant"), 10, 0,
      freeze_regex="frozen/.*")
  state = tx.init(params)
  # Zero gradients: only decoupled weight decay moves parameters.
  updates, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
  new = optax.apply_updates(params, updates)
  np.testing.assert_allclose(new["dense"]["kernel"], 1 - 0.1 * 0.5)
  for group, leaf in (("ssm", "Lambda_re"), ("ssm", "B"), ("dense", "bias"), ("norm", "scale"),
                      ("frozen", "kernel")):
    np.testing.assert_array_equal(new[group][leaf], params[group][leaf])
  # Nonzero gradients: everything moves except the frozen kernel.
  updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
  new = optax.apply_updates(params, updates)
  np.testing.assert_array_equal(new["frozen"]["kernel"], params["frozen"]["kernel"])
  assert np.all(new["ssm"]["Lambda_re"] < 1) and np.all(new["dense"]["bias"] < 1)


def test_mixer_lr_sets_the_rate_of_the_mixer_input_weights_only():
  params = {
      "mixer": {"kernel": jnp.ones(2), "bias": jnp.ones(2), "weight": jnp.ones(2)},
      "dense": {"kernel": jnp.ones(2), "weight": jnp.ones(2)}
  }
  grads = jax.tree.map(jnp.ones_like, params)
  # b1 = b2 = 0, eps = 0, no decay: Adam's first update is -lr sign(g).
  base = dict(lr=0.1, weight_decay=0.0, schedule="constant", b1=0.0, b2=0.0, eps=0.0)
  for mixer_lr, expected in ((0.0, 0.1), (0.01, 0.01)):
    tx, schedules = optim.make_optimizer(opt_config(mixer_lr=mixer_lr, **base), 10, 0)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["mixer"]["kernel"], -expected, rtol=1e-6)
    np.testing.assert_allclose(updates["mixer"]["weight"], -expected, rtol=1e-6)
    np.testing.assert_allclose(updates["mixer"]["bias"], -0.1, rtol=1e-6)
    np.testing.assert_allclose(updates["dense"]["kernel"], -0.1, rtol=1e-6)
    np.testing.assert_allclose(updates["dense"]["weight"], -0.1, rtol=1e-6)
    assert ("mixer_lr" in schedules) == (mixer_lr > 0)
  with pytest.raises(ValueError, match="mixer_lr must be >= 0"):
    optim.make_optimizer(opt_config(mixer_lr=-1.0), 10, 0)


def test_frozen_gradients_do_not_count_in_clipping():
  params = {"w": {"kernel": jnp.ones(2)}, "frozen": {"kernel": jnp.ones(2)}}
  # b1 = b2 = 0 and eps = 1: Adam's update is -lr g / (|g| + 1), so it shows the clipping.
  cfg = opt_config(lr=1.0, weight_decay=0.0, schedule="constant", grad_clip_norm=1.0, b1=0.0,
                   b2=0.0, eps=1.0)
  tx, _ = optim.make_optimizer(cfg, 10, 0, freeze_regex="frozen/.*")
  grads = {"w": {"kernel": jnp.full(2, 0.1)}, "frozen": {"kernel": jnp.full(2, 1e6)}}
  updates, _ = tx.update(grads, tx.init(params), params)
  # Unclipped (norm 0.14 < 1 once the frozen gradient is dropped): -0.1 / 1.1.
  np.testing.assert_allclose(updates["w"]["kernel"], -0.1 / 1.1, rtol=1e-5)
  np.testing.assert_array_equal(updates["frozen"]["kernel"], 0.0)


def test_schedules():
  cfg = opt_config(lr=2.0, ssm_lr=0.5, warmup_steps=10, end_lr_factor=0.1)
  _, schedules = optim.make_optimizer(cfg, 100, 0)
  lr, ssm_lr = schedules["lr"], schedules["ssm_lr"]
  assert float(lr(0)) == 0.0
  np.testing.assert_allclose([lr(10), ssm_lr(10)], [2.0, 0.5], rtol=1e-6)
  np.testing.assert_allclose([lr(100), ssm_lr(100)], [0.2, 0.05], rtol=1e-5)
  assert 0.2 < float(lr(55)) < 2.0
  # warmup_epochs wins over warmup_steps.
  _, schedules = optim.make_optimizer(opt_config(lr=1.0, warmup_steps=10, warmup_epochs=2.0), 100,
                                      20)
  np.testing.assert_allclose([schedules["lr"](40), schedules["lr"](20)], [1.0, 0.5], rtol=1e-6)
  _, schedules = optim.make_optimizer(opt_config(lr=1.0, schedule="constant"), 100, 0)
  np.testing.assert_allclose([schedules["lr"](0), schedules["lr"](99)], [1.0, 1.0])


def test_gradient_accumulation():
  params = {"w": {"kernel": jnp.ones(2)}}
  cfg = opt_config(lr=0.1, weight_decay=0.0, schedule="constant", grad_accum_steps=4,
                   warmup_steps=8)
  tx, schedules = optim.make_optimizer(cfg, 40, 0)
  # The loop's step 8 is the end of warmup: update 2 of 10.
  np.testing.assert_allclose(schedules["lr"](7), 0.1 * 1 / 2)
  np.testing.assert_allclose(schedules["lr"](8), 0.1)
  state = tx.init(params)
  grads = {"w": {"kernel": jnp.ones(2)}}
  moves = []
  for _ in range(8):
    updates, state = tx.update(grads, state, params)
    moves.append(bool(np.any(updates["w"]["kernel"] != 0)))
  # Updates only every 4th call; the first update has warmup lr 0.
  assert moves == [False] * 7 + [True]


@pytest.mark.parametrize("updates, steps, match", [
    (dict(warmup_steps=200), 100, "warmup"),
    (dict(warmup_steps=100), 100, "no updates of training"),
    (dict(schedule="linear"), 100, "schedule"),
    (dict(grad_accum_steps=0), 100, "grad_accum_steps"),
    (dict(warmup_epochs=1.0), 100, "steps_per_epoch"),
])
def test_bad_optimizer_configs_are_errors(updates, steps, match):
  with pytest.raises(ValueError, match=match):
    optim.make_optimizer(opt_config(**updates), steps, 0)


def test_warmup_max_fraction_caps_the_warmup_of_short_runs():
  cfg = opt_config(lr=1.0, warmup_steps=500, warmup_max_fraction=0.25)
  _, schedules = optim.make_optimizer(cfg, 400, 0)  # warmup 500 > the whole run, capped at 100
  assert float(schedules["lr"](50)) == pytest.approx(0.5)
  assert float(schedules["lr"](100)) == pytest.approx(1.0)
  _, schedules = optim.make_optimizer(cfg, 4000, 0)  # long runs keep warmup_steps
  assert float(schedules["lr"](250)) == pytest.approx(0.5)


def test_warmup_max_fraction_outside_0_1_is_an_error():
  with pytest.raises(ValueError, match="warmup_max_fraction"):
    optim.make_optimizer(opt_config(warmup_max_fraction=1.0), 100, 0)


@pytest.mark.parametrize("num_steps", [10, 500, 2000])
def test_the_uea_config_trains_for_any_number_of_steps(num_steps):
  config = importlib.import_module("configs.uea").get_config("ms_ssm")
  _, schedules = optim.make_optimizer(config.optimizer, num_steps, 0)
  warmup = min(500, num_steps // 4)  # 2,000 steps keep the 500 of the documented runs
  assert float(schedules["lr"](warmup)) == pytest.approx(config.optimizer.lr)
