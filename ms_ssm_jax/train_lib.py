"""The train loop: `TrainState`, `train_step`, `eval_step` and `train_and_evaluate`.

One path for every topology: the state lives on a (`data`, `model`) mesh with the shardings of
`sharding.py`, each process feeds its rows of the global batch, and the steps are jitted once
with explicit shardings. Steps return metric sums and counts; the host divides.
"""

from __future__ import annotations

import functools
import json
import pathlib
import re
import time
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from ms_ssm_jax import checkpointing
from ms_ssm_jax import data
from ms_ssm_jax import metrics as metrics_lib
from ms_ssm_jax import model as model_lib
from ms_ssm_jax import optim
from ms_ssm_jax import provenance
from ms_ssm_jax import sharding
from ms_ssm_jax import zoo

INIT_HEAD_MODES = ("keep", "reinit")
# Parameters under this top-level module form the classifier head (model.py names it).
HEAD_MODULE = "head"
# The split whose score picks the best checkpoint.
SELECTION_SPLIT = "validation"
# Train metrics under this prefix are per-layer mixer stability ratios (`mixer_ratios`).
MIXER_RATIO_PREFIX = "mixer_ratio/"


class NonFiniteError(FloatingPointError):
  """The loss or the gradient norm became NaN or Inf; the bad state was not saved."""


@flax.struct.dataclass
class TrainState:
  """Everything training updates. `rng` is the base key; step t uses fold_in(rng, t)."""

  step: jax.Array  # () int32
  params: Any
  opt_state: Any
  batch_stats: Any
  rng: jax.Array  # (2,) uint32

  def variables(self) -> dict[str, Any]:
    return {"params": self.params, "batch_stats": self.batch_stats}


def loss_and_counts(logits: jax.Array, batch: dict[str, jax.Array], target: str
                    ) -> dict[str, jax.Array]:
  """Weighted sums of the loss and of correct predictions over a batch.

  Args:
    logits: (B, C).
    batch: `labels` (B,) int32 for target "class" or (B, C) multi-hot for "multilabel", and
      `weights` (B,) (0 for padding examples).
    target: "class" (softmax cross-entropy) or "multilabel" (sigmoid binary cross-entropy,
      mean over classes; accuracy is the mean per-label accuracy at threshold 0.5).

  Returns:
    {"loss_sum", "correct_sum", "weight_sum", "nonfinite_sum"} (examples of nonzero weight whose
    loss is NaN or infinite), float32 scalars. Padding examples never add to the loss sum.
  """
  weights = batch["weights"].astype(jnp.float32)
  logits = logits.astype(jnp.float32)
  if logits.ndim != 2:
    raise ValueError(f"the train loop needs one logit vector per example, (B, num_classes); "
                     f"got logits of shape {logits.shape} (use model pooling 'mean' or 'last')")
  labels = batch["labels"]
  if target == "class":
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  elif target == "multilabel":
    losses = optax.sigmoid_binary_cross_entropy(logits, labels).mean(axis=-1)
    correct = ((logits > 0) == (labels > 0.5)).astype(jnp.float32).mean(axis=-1)
  else:
    raise ValueError(f"unknown target {target!r}; expected 'class' or 'multilabel'")
  counted = weights > 0
  return {"loss_sum": jnp.sum(jnp.where(counted, losses * weights, 0.0)),
          "correct_sum": jnp.sum(correct * weights), "weight_sum": jnp.sum(weights),
          "nonfinite_sum": jnp.sum(counted & ~jnp.isfinite(losses)).astype(jnp.float32)}


def training_loss(params: Any, *, batch_stats: Any, batch: dict[str, jax.Array],
                  model: nn.Module, target: str, dropout_key: jax.Array
                  ) -> tuple[jax.Array, tuple[dict[str, jax.Array], Any]]:
  """The mean loss of `batch` in training mode (batch statistics, dropout), with the metric
  sums and the BatchNorm updates as aux; `jax.grad` of it drives `train_step`."""
  logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, batch,
                                train=True, rngs={"dropout": dropout_key},
                                mutable=["batch_stats", "intermediates"])
  updates = dict(updates)
  counts = {**loss_and_counts(logits, batch, target),
            **mixer_ratios(updates.pop("intermediates", {}))}
  return counts["loss_sum"] / jnp.maximum(counts["weight_sum"], 1.0), (counts, updates)


def mixer_ratios(intermediates: Any) -> dict[str, jax.Array]:
  """`{"mixer_ratio/<layer path>": ratio}` from the `mixer_input_ratio` values that MS-SSM
  layers with a linear-input mixer sow (`ms_ssm.mixer.input_ratio`); empty for other models."""
  flat = flax.traverse_util.flatten_dict(intermediates, sep="/")
  return {f"{MIXER_RATIO_PREFIX}{path.rsplit('/', 1)[0]}": jnp.max(jnp.stack(values))
          for path, values in flat.items() if path.endswith("mixer_input_ratio")}


def train_step(state: TrainState, batch: dict[str, jax.Array], *, model: nn.Module,
               tx: optax.GradientTransformation, target: str
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on a global batch; returns the new state and metric sums."""
  dropout_key = jax.random.fold_in(state.rng, state.step)
  loss_fn = functools.partial(training_loss, batch_stats=state.batch_stats, batch=batch,
                              model=model, target=target, dropout_key=dropout_key)
  grads, (counts, updates) = jax.grad(loss_fn, has_aux=True)(state.params)
  param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
  new_state = state.replace(
      step=state.step + 1, params=optax.apply_updates(state.params, param_updates),
      opt_state=opt_state, batch_stats=updates.get("batch_stats", state.batch_stats))
  return new_state, {**counts, "grad_norm": optax.tree.norm(grads)}


def eval_step(variables: dict[str, Any], batch: dict[str, jax.Array], *, model: nn.Module,
              target: str, with_scores: bool) -> dict[str, jax.Array]:
  """Metric sums on one (possibly padded) global batch.

  With `with_scores` also the (B, C) class probabilities with the batch's labels and
  weights, for metrics computed on the host over the whole split.
  """
  logits = model.apply(variables, batch, train=False)
  out = loss_and_counts(logits, batch, target)
  if with_scores:
    logits = logits.astype(jnp.float32)
    out["scores"] = jax.nn.sigmoid(logits) if target == "multilabel" else jax.nn.softmax(logits)
    out["labels"], out["weights"] = batch["labels"], batch["weights"]
  return out


def init_variables(model: nn.Module, spec: data.TaskSpec, key: jax.Array) -> dict[str, Any]:
  """Fresh model variables: {"params", "batch_stats"} ({} when the model has no BatchNorm)."""
  params_key, dropout_key = jax.random.split(key)
  variables = model.init({"params": params_key, "dropout": dropout_key},
                         model_lib.dummy_batch(spec, 1), train=False)
  return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def state_items(state: TrainState) -> dict[str, Any]:
  """The checkpoint items of a state (see checkpointing.py)."""
  return {checkpointing.VARIABLES: state.variables(),
          checkpointing.TRAIN: {"step": state.step, "opt_state": state.opt_state,
                                "rng": state.rng}}


def state_from_items(items: dict[str, Any]) -> TrainState:
  variables, train = items[checkpointing.VARIABLES], items[checkpointing.TRAIN]
  return TrainState(step=train["step"], params=variables["params"],
                    opt_state=train["opt_state"], batch_stats=variables["batch_stats"],
                    rng=train["rng"])


def with_shardings(abstract: Any, shardings: Any) -> Any:
  """`ShapeDtypeStruct`s of `abstract` carrying `shardings` (a restore target)."""
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      abstract, shardings)


def fine_tune_variables(variables: dict[str, Any], init_from: str, init_head: str
                        ) -> dict[str, Any]:
  """Model variables loaded from a checkpoint or a zoo entry, merged into fresh `variables`.

  Args:
    variables: the fresh {"params", "batch_stats"} of the model to fine-tune (sharded).
    init_from: a run workdir or checkpoint directory (`checkpointing.find_checkpoint`), or
      the name of a zoo entry (`ms_ssm_jax.zoo`).
    init_head: which arrays keep their fresh initialization: "keep" none, "reinit" the head
      (parameters under `HEAD_MODULE`, e.g. when the number of classes changes), or a regex
      that fully matches the '/'-joined paths below the collection to re-initialize, e.g.
      'head/.*|encoder/.*' when the number of input channels changes too. Every other array
      must match the source's shape.
  """
  target = checkpointing.tree_paths(variables)
  reinit = _reinit_pattern(init_head, target)

  def is_reinit(path: str) -> bool:
    return reinit is not None and reinit.fullmatch(path.split("/", 1)[-1]) is not None

  source, where = _fine_tune_source(init_from)
  kept_target = {p: v for p, v in target.items() if not is_reinit(p)}
  kept_source = {p: v for p, v in source.items() if not is_reinit(p)}
  differing = sorted({p.split("/")[1] for p in set(kept_target) & set(kept_source)
                      if tuple(kept_target[p].shape) != tuple(kept_source[p].shape)})
  suggestion = "|".join([f"{module}/.*" for module in differing]
                        + ([reinit.pattern] if reinit is not None else []))
  checkpointing.check_shapes(
      kept_target, kept_source, where,
      "Fine-tuning loads every array that config.init_head does not re-initialize: use the "
      "source's model config (a zoo entry's is its manifest `config`)"
      + (f", or re-initialize the modules whose shapes differ with "
         f"--config.init_head='{suggestion}'" if differing else "") + ".")

  def merge(path, leaf):
    name = checkpointing.path_name(path)
    return leaf if is_reinit(name) else _put_like(source[name], leaf)

  return jax.tree_util.tree_map_with_path(merge, variables)


def _reinit_pattern(init_head: str, target: dict[str, Any]) -> re.Pattern[str] | None:
  """`config.init_head` as a regex over paths below the collection (None: keep everything)."""
  if init_head == "keep":
    return None
  pattern = f"{HEAD_MODULE}/.*" if init_head == "reinit" else init_head
  try:
    compiled = re.compile(pattern)
  except re.error as e:
    raise ValueError(f"config.init_head={init_head!r} is not {INIT_HEAD_MODES} nor a valid "
                     f"regex: {e}") from None
  if not any(compiled.fullmatch(path.split("/", 1)[-1]) for path in target):
    raise ValueError(f"config.init_head={init_head!r} re-initializes nothing: no parameter path "
                     f"fully matches {pattern!r}. Use one of {INIT_HEAD_MODES} or a regex over "
                     "paths such as 'head/.*|encoder/.*'")
  return compiled


def _fine_tune_source(init_from: str) -> tuple[dict[str, Any], str]:
  """The '/'-path -> host array map of `config.init_from`, and a name for messages."""
  path = pathlib.Path(init_from).expanduser()
  if zoo.is_zoo_name(init_from):
    if path.exists():
      raise ValueError(f"config.init_from={init_from!r} names both a zoo entry and the path "
                       f"{path.absolute()}; pass ./{init_from} for the path")
    return checkpointing.tree_paths(zoo.load_variables(init_from)), f"zoo entry {init_from!r}"
  if not path.exists():
    names = ", ".join(entry.name for entry in zoo.list_entries()) or "none"
    raise FileNotFoundError(f"config.init_from={init_from!r}: the path {path.absolute()} does "
                            f"not exist and it is not a zoo name (zoo entries: {names})")
  ref = checkpointing.find_checkpoint(init_from, prefer="best")
  return checkpointing.tree_paths(checkpointing.load_variables(ref)), str(ref)


def make_init_fn(model: nn.Module, tx: optax.GradientTransformation, spec: data.TaskSpec,
                 seed: int) -> Callable[[], TrainState]:
  """A function creating the initial state (jit it with the state shardings as outputs)."""
  init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))

  def init_state() -> TrainState:
    variables = init_variables(model, spec, init_key)
    return TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                      opt_state=tx.init(variables["params"]),
                      batch_stats=variables["batch_stats"], rng=train_key)

  return init_state


def jit_train_step(mesh: jax.sharding.Mesh, state_shardings: TrainState, **static: Any
                   ) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
  """`train_step` with its static arguments bound, jitted once; the state is donated."""
  return jax.jit(functools.partial(train_step, **static),
                 in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
                 out_shardings=(state_shardings, sharding.replicated(mesh)), donate_argnums=0)


def parameter_count(tree: Any) -> int:
  return int(sum(np.prod(leaf.shape, dtype=np.int64) for leaf in jax.tree.leaves(tree)))


def model_summary(variables: dict[str, Any]) -> str:
  """A table of every model array (path, shape, size) with the totals per collection."""
  paths = checkpointing.tree_paths(variables)
  width = max((len(p) for p in paths), default=10)
  lines = [f"{'array':<{width}}  {'shape':<20} {'size':>12}"]
  lines += [f"{path:<{width}}  {str(tuple(leaf.shape)):<20} "
            f"{int(np.prod(leaf.shape, dtype=np.int64)):>12,}" for path, leaf in paths.items()]
  lines.append(f"parameters: {parameter_count(variables['params']):,}")
  lines.append(f"batch_stats (state): {parameter_count(variables['batch_stats']):,}")
  return "\n".join(lines)


class Evaluator:
  """Evaluates model variables on whole splits; shared by the train loop and eval.py."""

  def __init__(self, *, mesh: jax.sharding.Mesh, model: nn.Module, spec: data.TaskSpec,
               data_config: ml_collections.ConfigDict, batch_size: int,
               variable_shardings: Any):
    sharding.check_batch_size(mesh, batch_size, "config.train.eval_batch_size")
    self._mesh, self._spec, self._data_config = mesh, spec, data_config
    self._batch_size = batch_size
    self._with_scores = spec.metric == "auroc"
    if spec.metric not in ("accuracy", "auroc"):
      raise ValueError(f"task {spec.name!r} has metric {spec.metric!r}; the train loop knows "
                       "'accuracy' and 'auroc'")
    step = functools.partial(eval_step, model=model, target=spec.target,
                             with_scores=self._with_scores)
    self._step = jax.jit(
        step, in_shardings=(variable_shardings, sharding.batch_sharding(mesh)),
        out_shardings=sharding.replicated(mesh))

  def evaluate(self, variables: dict[str, Any], split: str, max_examples: int | None = None
               ) -> dict[str, float]:
    """{"loss", "accuracy", ("auroc",) "num_examples"} over one pass of `split`, plus
    "nonfinite_examples" when some examples' losses were NaN or infinite.

    `max_examples` evaluates only the split's first examples (a fixed slice).
    """
    shard, num_shards = sharding.process_data_shard(self._mesh, self._batch_size)
    batches = data.make_iterator(
        self._data_config, split, global_batch_size=self._batch_size, seed=0, shuffle=False,
        drop_remainder=False, process_index=shard, process_count=num_shards,
        max_examples=max_examples)
    outputs = []
    for local_batch in batches:
      batch = sharding.global_batch(self._mesh, local_batch, self._batch_size)
      outputs.append(self._step(variables, batch))
    # Every output is replicated (out_shardings), so each process can read it whole.
    outputs = jax.device_get(outputs)
    weight = sum(float(o["weight_sum"]) for o in outputs)
    result = {"loss": sum(float(o["loss_sum"]) for o in outputs) / weight,
              "accuracy": sum(float(o["correct_sum"]) for o in outputs) / weight}
    if self._with_scores:
      scores = np.concatenate([o["scores"] for o in outputs])
      labels = np.concatenate([o["labels"] for o in outputs])
      if self._spec.target == "class":
        labels = np.eye(self._spec.num_classes, dtype=np.float32)[labels]
      result["auroc"] = metrics_lib.macro_auroc(
          scores, labels, np.concatenate([o["weights"] for o in outputs]))
    result["num_examples"] = int(round(weight))
    nonfinite = int(round(sum(float(o["nonfinite_sum"]) for o in outputs)))
    if nonfinite:
      result["nonfinite_examples"] = nonfinite
    return result


class SavedModel:
  """A saved model (checkpoint or zoo entry) on all devices, ready to evaluate (data parallel).

  Attributes:
    config: the run's config (ConfigDict), with the data overrides applied.
    spec: its task's `TaskSpec`.
    model: the rebuilt model (`flax.linen` module).
    variables: {"params", "batch_stats"}, sharded over the devices.
    info: facts for reports: checkpoint, step, task, metric, layer, params, config.
  """

  def __init__(self, config_json: dict[str, Any], load: Callable[[Any], Any], *,
               checkpoint: str, step: int, batch_size: int | None = None,
               data_overrides: dict[str, Any] | None = None):
    """Rebuilds the model of `config_json` and loads its variables with `load(target)`.

    `target` is a pytree of `ShapeDtypeStruct`s with shardings that the loaded variables
    must match; `checkpoint` and `step` describe the source for `info`.
    """
    config = ml_collections.ConfigDict(config_json)
    for key, value in (data_overrides or {}).items():
      if key not in config.data:
        raise KeyError(f"data config of {checkpoint} has no field {key!r}; it has "
                       f"{sorted(config.data)}")
      config.data[key] = value
    spec = data.get_task(config.data)
    model = model_lib.build_model(config.model, spec, precision=config.train.precision)
    mesh = sharding.make_mesh(ml_collections.ConfigDict({"data": -1, "model": 1}))
    abstract = jax.eval_shape(lambda: init_variables(model, spec, jax.random.PRNGKey(0)))
    shardings = sharding.state_shardings(mesh, abstract)
    self.config, self.spec, self.model = config, spec, model
    self.variables = load(with_shardings(abstract, shardings))
    self._evaluator = Evaluator(mesh=mesh, model=model, spec=spec, data_config=config.data,
                                batch_size=batch_size or config.train.eval_batch_size,
                                variable_shardings=shardings)
    self.info = {"checkpoint": checkpoint, "step": step, "task": spec.name,
                 "metric": spec.metric, "layer": config.model.layer,
                 "params": parameter_count(self.variables["params"]), "config": config}

  @classmethod
  def from_checkpoint(cls, path: str | pathlib.Path, *, prefer: str = "best",
                      **kwargs: Any) -> SavedModel:
    """A run workdir or checkpoint directory (see `checkpointing.find_checkpoint`)."""
    ref = checkpointing.find_checkpoint(path, prefer=prefer)
    return cls(checkpointing.load_config_json(ref),
               lambda target: checkpointing.load_variables(ref, target),
               checkpoint=str(ref), step=ref.step, **kwargs)

  @classmethod
  def from_zoo(cls, name: str, *, directory: str | pathlib.Path | None = None,
               **kwargs: Any) -> SavedModel:
    """A zoo entry (see `ms_ssm_jax.zoo`; `directory` replaces the zoo directory)."""
    entry = zoo.get_entry(name, directory)
    where = f"zoo entry {name!r}"

    def load(target):
      return place_variables(zoo.load_variables(name, directory), target, where)

    return cls(entry.config, load, checkpoint=where, step=entry.steps, **kwargs)

  def evaluate(self, split: str, max_examples: int | None = None) -> dict[str, float]:
    """The metrics over `split`, or over its first `max_examples` examples."""
    return self._evaluator.evaluate(self.variables, split, max_examples)


def place_variables(host: Any, target: Any, where: str) -> Any:
  """Host arrays `host` put on devices with `target`'s dtypes and shardings.

  Args:
    host: a pytree of numpy arrays (e.g. a zoo entry's variables).
    target: the matching pytree of `ShapeDtypeStruct`s with shardings.
    where: the source, for the error when the arrays do not match the model.
  """
  found = checkpointing.tree_paths(host)
  checkpointing.check_shapes(checkpointing.tree_paths(target), found, where,
                             "Use the config that the variables were saved with.")
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: _put_like(found[checkpointing.path_name(path)], leaf), target)


def _put_like(value: Any, leaf: Any) -> jax.Array:
  """`value` on devices with the dtype and sharding of `leaf` (an array or ShapeDtypeStruct)."""
  return jax.device_put(np.asarray(value, dtype=leaf.dtype), leaf.sharding)


def evaluate_checkpoint(path: str | pathlib.Path, split: str, *, prefer: str = "best",
                        batch_size: int | None = None,
                        data_overrides: dict[str, Any] | None = None,
                        max_examples: int | None = None
                        ) -> tuple[dict[str, float], dict[str, Any]]:
  """Evaluates a saved model on one split of its task, on all devices (data parallel).

  Args:
    path: a run workdir or checkpoint directory (see `checkpointing.find_checkpoint`).
    split: the split to evaluate.
    prefer: "best" or "latest" checkpoint of a run workdir.
    batch_size: the global eval batch size (default: the run's `train.eval_batch_size`).
    data_overrides: data config fields to replace (e.g. `data_dir` on another machine).
    max_examples: evaluate only the split's first `max_examples` examples.

  Returns:
    The metrics, and `SavedModel.info` (checkpoint, step, task, layer, params, config).
  """
  model = SavedModel.from_checkpoint(path, prefer=prefer, batch_size=batch_size,
                                     data_overrides=data_overrides)
  return model.evaluate(split, max_examples), model.info


def num_train_steps(train_config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """`num_epochs * steps_per_epoch` when `num_epochs > 0`, else `num_steps`."""
  steps = (int(train_config.num_epochs * steps_per_epoch) if train_config.num_epochs > 0
           else train_config.num_steps)
  if steps < 1:
    raise ValueError(f"training needs at least one step; got num_steps={train_config.num_steps}"
                     f" num_epochs={train_config.num_epochs}")
  return steps


def nonfinite_eval_warning(split: str, step: int, nonfinite: int, total: int) -> str:
  """What to tell the user when evaluation gave NaN or infinite losses."""
  return (f"warning: eval {split} @ {step}: {nonfinite} of {total} examples gave a NaN or "
          "infinite loss, so the split's loss is not finite. Training uses batch statistics, "
          "evaluation BatchNorm's running statistics: a channel whose running variance is tiny "
          "can overflow in deep post-norm stacks. Inspect them with `python "
          "scripts/inspect_run.py --workdir=<workdir>`; model.norm='layer' keeps no running "
          "statistics.")


class _TrainMetrics:
  """Per-step device metrics, fetched and checked for NaN/Inf only when flushed."""

  def __init__(self):
    self._pending: list[tuple[int, dict[str, jax.Array]]] = []

  def add(self, step: int, step_metrics: dict[str, jax.Array]) -> None:
    self._pending.append((step, step_metrics))

  def __len__(self) -> int:
    return len(self._pending)

  def flush(self, last_good: str) -> dict[str, float]:
    """Means over the pending steps; raises `NonFiniteError` naming the first bad step."""
    pending, self._pending = jax.device_get(self._pending), []
    for step, values in pending:
      for quantity, key in (("loss", "loss_sum"), ("gradient norm", "grad_norm")):
        if not np.isfinite(values[key]):
          raise NonFiniteError(
              f"non-finite {quantity} ({float(values[key])}) at step {step}; the run stopped "
              f"and this state was not saved ({last_good}). Lower optimizer.lr, set "
              "optimizer.grad_clip_norm, or use train.precision='float32'.")
    weight = sum(float(v["weight_sum"]) for _, v in pending)
    ratios = {key: float(np.mean([v[key] for _, v in pending]))
              for key in pending[0][1] if key.startswith(MIXER_RATIO_PREFIX)}
    return {"loss": sum(float(v["loss_sum"]) for _, v in pending) / weight,
            "accuracy": sum(float(v["correct_sum"]) for _, v in pending) / weight,
            "grad_norm": float(np.mean([v["grad_norm"] for _, v in pending])), **ratios}


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
  steps_per_epoch = -(-data.num_examples(config.data, "train") // batch_size)
  num_steps = num_train_steps(config.train, steps_per_epoch)
  model = model_lib.build_model(config.model, spec, precision=config.train.precision,
                                remat=config.train.remat)
  tx, schedules = optim.make_optimizer(config.optimizer, num_steps, steps_per_epoch,
                                       config.freeze)
  init_state = make_init_fn(model, tx, spec, config.train.seed)
  with checkpointing.RunCheckpoints(workdir, keep=config.train.keep_checkpoints) as ckpt:
    return _train(config, workdir, ckpt, mesh=mesh, spec=spec, model=model, tx=tx,
                  schedules=schedules, init_state=init_state, num_steps=num_steps,
                  steps_per_epoch=steps_per_epoch, command=command)


def _train(config, workdir, ckpt, *, mesh, spec, model, tx, schedules, init_state, num_steps,
           steps_per_epoch, command) -> TrainState:
  """`train_and_evaluate` once its parts are built: restore or initialize, then the loop."""
  is_writer = jax.process_index() == 0
  batch_size = config.train.global_batch_size
  config_json = _config_json(config)
  abstract_state = jax.eval_shape(init_state)
  shardings = sharding.state_shardings(mesh, abstract_state)
  start_step = ckpt.latest_step()
  if start_step is not None:
    state = state_from_items(
        ckpt.restore(start_step, state_items(with_shardings(abstract_state, shardings))))
    if start_step >= num_steps:
      logging.warning("%s holds step %d of %d: training is complete", ckpt.directory,
                      start_step, num_steps)
      return state
  else:
    start_step = 0
    state = jax.jit(init_state, out_shardings=shardings)()
    if config.init_from:
      variables = fine_tune_variables(state.variables(), config.init_from, config.init_head)
      state = state.replace(params=variables["params"], batch_stats=variables["batch_stats"])

  summary = (f"{model_lib.summarize(config.model, spec)}\n"
             f"{model_summary(state.variables())}")
  if is_writer:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(json.dumps(config_json, indent=2) + "\n")
    (workdir / "model_summary.txt").write_text(summary + "\n")
    provenance.record_session(workdir, start_step, command)

  p_train_step = jit_train_step(mesh, shardings, model=model, tx=tx, target=spec.target)
  evaluator = Evaluator(mesh=mesh, model=model, spec=spec, data_config=config.data,
                        batch_size=config.train.eval_batch_size,
                        variable_shardings=shardings.variables())
  shard, num_shards = sharding.process_data_shard(mesh, batch_size)
  batches = data.make_iterator(
      config.data, "train", global_batch_size=batch_size, seed=config.train.seed,
      shuffle=True, drop_remainder=True, start_step=start_step, process_index=shard,
      process_count=num_shards)

  writer = metrics_lib.MetricWriter(workdir, resume_step=start_step, is_writer=is_writer)
  writer.print(f"mesh {dict(mesh.shape)} on {jax.device_count()} {jax.devices()[0].platform} "
               f"devices, {jax.process_count()} processes; task {spec.name}; "
               f"{num_steps} steps of {batch_size} examples ({steps_per_epoch} per epoch)")
  writer.print("\n".join(summary.splitlines()[:2]))
  if start_step:
    writer.print(f"resumed from {ckpt.directory}/{start_step}")
  elif config.init_from:
    writer.print(f"fine-tuning from {config.init_from} (head: {config.init_head}, frozen: "
                 f"{config.freeze or 'nothing'})")
  loop = _Loop(config=config, spec=spec, ckpt=ckpt, writer=writer, evaluator=evaluator,
               schedules=schedules, num_steps=num_steps, config_json=config_json,
               last_saved=start_step or None)
  with checkpointing.PreemptionWatcher() as watcher, writer:
    for step in range(start_step, num_steps):
      state, step_metrics = p_train_step(
          state, sharding.global_batch(mesh, next(batches), batch_size))
      if loop.after_step(step + 1, state, step_metrics, watcher.should_stop(step + 1)):
        break
    else:
      loop.write_results(workdir)
  return state


class _Loop:
  """What happens between train steps: logging, evaluation, checkpoints, preemption."""

  def __init__(self, *, config, spec, ckpt, writer, evaluator, schedules, num_steps,
               config_json, last_saved):
    self._config, self._spec, self._ckpt = config, spec, ckpt
    self._writer, self._evaluator, self._schedules = writer, evaluator, schedules
    self._num_steps, self._config_json = num_steps, config_json
    self._last_saved = last_saved
    self._best = ckpt.best_score()
    self._metrics = _TrainMetrics()
    self._timer = time.perf_counter()
    self._final_eval: dict[str, dict[str, float]] = {}

  def _due(self, step: int, every: int) -> bool:
    return step == self._num_steps or (every > 0 and step % every == 0)

  def after_step(self, step: int, state: TrainState, step_metrics: dict[str, jax.Array],
                 preempted: bool) -> bool:
    """Handles the boundary after `step` steps; True when the run must stop (preemption)."""
    train = self._config.train
    self._metrics.add(step, step_metrics)
    evaluate = self._due(step, train.eval_every)
    save = self._due(step, train.checkpoint_every) or preempted
    if not (self._due(step, train.log_every) or evaluate or save):
      return False
    self._log(step)
    if evaluate:
      self._evaluate(step, state)
    if save:
      self._ckpt.save(step, state_items(state), self._config_json)
      self._last_saved = step
    if preempted:
      self._ckpt.wait_until_finished()
      self._writer.print(f"preempted: saved step {step} to {self._ckpt.directory}; rerun the "
                         "same command to resume")
    self._timer = time.perf_counter()
    return preempted

  def _log(self, step: int) -> None:
    num_steps = len(self._metrics)
    where = (f"last good checkpoint: step {self._last_saved} in {self._ckpt.directory}"
             if self._last_saved else "no checkpoint was saved yet")
    values = self._metrics.flush(where)
    seconds_per_step = (time.perf_counter() - self._timer) / num_steps
    # The learning rates of the update that produced this step.
    values.update({name: float(schedule(step - 1))
                   for name, schedule in self._schedules.items()})
    values["step_time"] = seconds_per_step
    values["examples_per_s"] = self._config.train.global_batch_size / seconds_per_step
    self._writer.write("train", step, values)
    shown = {"loss": values["loss"], "acc": values["accuracy"], "lr": values["lr"],
             "s/step": seconds_per_step, "ex/s": round(values["examples_per_s"])}
    ratios = [v for k, v in values.items() if k.startswith(MIXER_RATIO_PREFIX)]
    if ratios:
      shown["grad"] = values["grad_norm"]
      shown["mixer_ratio"] = max(ratios)
    self._writer.print(metrics_lib.progress_line(step, self._num_steps, shown,
                                                 seconds_per_step))

  def _evaluate(self, step: int, state: TrainState) -> None:
    for split in self._config.train.eval_splits:
      result = self._evaluator.evaluate(state.variables(), split)
      nonfinite = result.pop("nonfinite_examples", 0)
      if nonfinite:
        self._writer.print(nonfinite_eval_warning(split, step, nonfinite, result["num_examples"]))
      self._writer.write("eval", step, {"split": split, **result})
      self._writer.print(f"eval {split} @ {step}: " + ", ".join(
          f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
      self._final_eval[split] = result
      score = result[self._spec.metric]
      if split == SELECTION_SPLIT and (self._best is None or score > self._best):
        self._best = score
        self._ckpt.save_best(step, state.variables(), self._config_json, score, result)

  def write_results(self, workdir: pathlib.Path) -> None:
    """results.json: the final evaluation and the best validation score."""
    if jax.process_index() == 0:
      results = {"num_steps": self._num_steps, "final": self._final_eval,
                 f"best_{SELECTION_SPLIT}_{self._spec.metric}": self._best}
      (workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
