"""Training: `train_step` and `train_and_evaluate`, which builds a run and hands it to the loop.

One path for every topology: the state lives on a (`data`, `model`) mesh with the shardings of
`sharding.py`, each process feeds its rows of the global batch, and the steps are jitted once
with explicit shardings. Steps return metric sums and counts; the host divides. The state and
its checkpoint items (`train_state.py`), the loop and what happens between steps
(`train_loop.py`), evaluation (`evaluation.py`), fine-tuning loads (`finetune.py`) and the
profiler window (`profiling.py`) are their own modules; `TrainState`, `state_items` and
`NonFiniteError` are part of this module's API too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import pathlib
import shutil
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from ms_ssm_jax import checkpointing
from ms_ssm_jax import data
from ms_ssm_jax import evaluation
from ms_ssm_jax import finetune
from ms_ssm_jax import layers
from ms_ssm_jax import metrics as metrics_lib
from ms_ssm_jax import model as model_lib
from ms_ssm_jax import optim
from ms_ssm_jax import provenance
from ms_ssm_jax import run_config
from ms_ssm_jax import sharding
from ms_ssm_jax import train_loop
from ms_ssm_jax import workdir_lock
from ms_ssm_jax.train_loop import NonFiniteError
from ms_ssm_jax.train_state import TrainState
from ms_ssm_jax.train_state import state_from_items
from ms_ssm_jax.train_state import state_items

__all__ = [
    "NonFiniteError", "TrainState", "jit_train_step", "make_init_fn", "model_summary",
    "num_train_steps", "state_items", "train_and_evaluate", "train_step", "training_loss"
]


def training_loss(params: Any, *, batch_stats: Any, batch: dict[str, jax.Array], model: nn.Module,
                  target: str,
                  dropout_key: jax.Array) -> tuple[jax.Array, tuple[dict[str, jax.Array], Any]]:
  """The mean loss of `batch` in training mode (batch statistics, dropout), with the metric
  sums and the BatchNorm updates as aux; `jax.grad` of it drives `train_step`."""
  logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, batch, train=True,
                                rngs={"dropout": dropout_key},
                                mutable=["batch_stats", "intermediates"])
  updates = dict(updates)
  counts = {
      **metrics_lib.loss_and_counts(logits, batch, target),
      **metrics_lib.mixer_ratios(updates.pop("intermediates", {}))
  }
  return counts["loss_sum"] / jnp.maximum(counts["weight_sum"], 1.0), (counts, updates)


def train_step(state: TrainState, batch: dict[str, jax.Array], *, model: nn.Module,
               tx: optax.GradientTransformation,
               target: str) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on a global batch; returns the new state and metric sums."""
  dropout_key = jax.random.fold_in(state.rng, state.step)
  loss_fn = functools.partial(training_loss, batch_stats=state.batch_stats, batch=batch,
                              model=model, target=target, dropout_key=dropout_key)
  grads, (counts, updates) = jax.grad(loss_fn, has_aux=True)(state.params)
  param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
  new_state = state.replace(step=state.step + 1,
                            params=optax.apply_updates(state.params,
                                                       param_updates), opt_state=opt_state,
                            batch_stats=updates.get("batch_stats", state.batch_stats))
  return new_state, {**counts, "grad_norm": optax.tree.norm(grads)}


def make_init_fn(model: nn.Module, tx: optax.GradientTransformation, spec: data.TaskSpec,
                 seed: int) -> Callable[[], TrainState]:
  """A function creating the initial state (jit it with the state shardings as outputs)."""
  init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))

  def init_state() -> TrainState:
    variables = model_lib.init_variables(model, spec, init_key)
    return TrainState(step=jnp.zeros(
        (), jnp.int32), params=variables["params"], opt_state=tx.init(variables["params"]),
                      batch_stats=variables["batch_stats"], rng=train_key)

  return init_state


def jit_train_step(mesh: jax.sharding.Mesh, state_shardings: TrainState,
                   **static: Any) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
  """`train_step` with its static arguments bound, jitted once; the state is donated."""
  return jax.jit(functools.partial(train_step, **static),
                 in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
                 out_shardings=(state_shardings, sharding.replicated(mesh)), donate_argnums=0)


def model_summary(variables: dict[str, Any]) -> str:
  """A table of every model array (path, shape, size) with the totals per collection."""
  paths = checkpointing.tree_paths(variables)
  width = max((len(p) for p in paths), default=10)
  lines = [f"{'array':<{width}}  {'shape':<20} {'size':>12}"]
  lines += [
      f"{path:<{width}}  {str(tuple(leaf.shape)):<20} "
      f"{int(np.prod(leaf.shape, dtype=np.int64)):>12,}" for path, leaf in paths.items()
  ]
  lines.append(f"parameters: {layers.count_parameters(variables['params']):,}")
  lines.append(f"batch_stats (state): {layers.count_parameters(variables['batch_stats']):,}")
  return "\n".join(lines)


def num_train_steps(train_config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """`num_epochs * steps_per_epoch` when `num_epochs > 0`, else `num_steps`."""
  steps = (int(train_config.num_epochs *
               steps_per_epoch) if train_config.num_epochs > 0 else train_config.num_steps)
  if steps < 1:
    raise ValueError(f"training needs at least one step; got num_steps={train_config.num_steps}"
                     f" num_epochs={train_config.num_epochs}")
  return steps


def _config_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return json.loads(config.to_json_best_effort())


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
                       command: str | None = None) -> TrainState:
  """Trains `config` in `workdir`, resuming from its latest checkpoint if there is one.

  Writes config.json, model_summary.txt, sessions.jsonl (`provenance`: `command`, the
  devices, the date), metrics/ (CSV, JSONL), checkpoints/, best/ and, when training
  completes, results.json. Returns the final state (the state at the preemption step if the
  job got SIGTERM; rerunning the same command resumes).
  """
  workdir = pathlib.Path(workdir)
  mesh = sharding.make_mesh(config.mesh)
  batch_size = config.train.global_batch_size
  sharding.check_batch_size(mesh, batch_size, "config.train.global_batch_size")
  if config.train.log_every < 1:
    raise ValueError(f"config.train.log_every must be >= 1, got {config.train.log_every}")
  spec = data.get_task(config.data)
  num_train = data.num_examples(config.data, "train")
  if batch_size > num_train:
    logging.warning(
        "config.train.global_batch_size=%d is larger than the %d training "
        "examples: every batch repeats examples", batch_size, num_train)
  steps_per_epoch = -(-num_train // batch_size)
  num_steps = num_train_steps(config.train, steps_per_epoch)
  model = model_lib.build_model(config.model, spec, precision=config.train.precision,
                                remat=config.train.remat)
  tx, schedules = optim.make_optimizer(config.optimizer, num_steps, steps_per_epoch, config.freeze)
  init_state = make_init_fn(model, tx, spec, config.train.seed)
  created = [
      path for path in (workdir, workdir / checkpointing.CHECKPOINTS_DIR,
                        workdir / checkpointing.BEST_DIR) if not path.exists()
  ]
  # The lock comes first: opening the checkpoint managers cleans up temporary directories,
  # which may be another trainer's saves in flight.
  lock = (workdir_lock.WorkdirLock(workdir)
          if jax.process_index() == 0 else contextlib.nullcontext())
  try:
    with lock, checkpointing.RunCheckpoints(workdir, keep=config.train.keep_checkpoints) as ckpt:
      return _train(config, workdir, ckpt, mesh=mesh, spec=spec, model=model, tx=tx,
                    schedules=schedules, init_state=init_state, num_steps=num_steps,
                    steps_per_epoch=steps_per_epoch, command=command)
  except workdir_lock.WorkdirLockedError:
    raise  # the workdir is another trainer's: leave it as it is
  except BaseException:
    _remove_unless_started(workdir, created)
    raise


def _remove_unless_started(workdir: pathlib.Path, created: list[pathlib.Path]) -> None:
  """Removes the directories this run created if it failed before writing config.json.

  Otherwise a failed first try leaves `checkpoints/` and `best/` that look like a run to the
  next command (eval.py, summarize_runs.py, a resume).
  """
  if jax.process_index() != 0 or (workdir / "config.json").exists():
    return
  for path in reversed(created):  # the workdir last
    if path == workdir:
      if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
    else:
      shutil.rmtree(path)


def _train(config, workdir, ckpt, *, mesh, spec, model, tx, schedules, init_state, num_steps,
           steps_per_epoch, command) -> TrainState:
  """`train_and_evaluate` once its parts are built: restore or initialize, then the loop."""
  is_writer = jax.process_index() == 0
  batch_size = config.train.global_batch_size
  config_json = _config_json(config)
  abstract_state = jax.eval_shape(init_state)
  shardings = sharding.state_shardings(mesh, abstract_state)
  evaluator = evaluation.Evaluator(mesh=mesh, model=model, spec=spec, data_config=config.data,
                                   batch_size=config.train.eval_batch_size,
                                   variable_shardings=shardings.variables())
  changed = {}

  def check_config(saved: dict[str, Any], where: str) -> None:
    # Called for each checkpoint tried; the one restored (the last call) counts.
    changed.clear()
    changed.update(run_config.check_resume(saved, config_json, where))

  restored = ckpt.restore_latest(state_items(sharding.with_shardings(abstract_state, shardings)),
                                 check_config)
  if restored is not None:
    start_step, items = restored
    state = state_from_items(items)
    if start_step >= num_steps:
      logging.warning("%s holds step %d of %d: training is complete", ckpt.directory, start_step,
                      num_steps)
      if not (workdir / train_loop.RESULTS_FILE).exists():
        logging.warning("%s is missing: rewriting it from the final checkpoint",
                        workdir / train_loop.RESULTS_FILE)
        final = {
            split: evaluator.evaluate(state.variables(), split) for split in config.train.eval_splits
        }
        train_loop.write_results(workdir, num_steps, final, ckpt.best_score(), spec.metric)
      return state
  else:
    start_step = 0
    state = jax.jit(init_state, out_shardings=shardings)()
    if config.init_from:
      variables = finetune.fine_tune_variables(state.variables(), config.init_from,
                                               config.init_head)
      state = state.replace(params=variables["params"], batch_stats=variables["batch_stats"])

  summary = (f"{model_lib.summarize(config.model, spec)}\n"
             f"{model_summary(state.variables())}")
  if is_writer:
    run_config.record(workdir, config_json, start_step)
    (workdir / "model_summary.txt").write_text(summary + "\n")
    provenance.record_session(workdir, start_step, command)

  p_train_step = jit_train_step(mesh, shardings, model=model, tx=tx, target=spec.target)
  shard, num_shards = sharding.process_data_shard(mesh, batch_size)
  batches = data.make_iterator(config.data, "train", global_batch_size=batch_size,
                               seed=config.train.seed, shuffle=True, drop_remainder=True,
                               start_step=start_step, process_index=shard, process_count=num_shards)

  writer = metrics_lib.MetricWriter(workdir, resume_step=start_step, is_writer=is_writer)
  writer.print(f"mesh {dict(mesh.shape)} on {jax.device_count()} {jax.devices()[0].platform} "
               f"devices, {jax.process_count()} processes; task {spec.name}; "
               f"{num_steps} steps of {batch_size} examples ({steps_per_epoch} per epoch)")
  writer.print("\n".join(summary.splitlines()[:2]))
  if start_step:
    writer.print(f"resumed from {ckpt.directory}/{start_step}")
    if changed:
      writer.print(f"changed run settings: {run_config.describe(changed)} (history in "
                   f"{workdir / run_config.HISTORY_DIR})")
  elif config.init_from:
    writer.print(f"fine-tuning from {config.init_from} (head: {config.init_head}, frozen: "
                 f"{config.freeze or 'nothing'})")
  logging.info("resolved config:\n%s", config)
  state = train_loop.run(state, p_train_step, batches, start_step=start_step, num_steps=num_steps,
                         mesh=mesh, config=config, spec=spec, ckpt=ckpt, writer=writer,
                         evaluator=evaluator, schedules=schedules, config_json=config_json,
                         workdir=workdir)
  if is_writer:
    provenance.record_session_end(workdir, int(state.step))
  return state
