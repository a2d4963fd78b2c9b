"""Evaluation: `eval_step`, the `Evaluator` of whole splits, and saved models ready to evaluate.

Used by the train loop (`train_lib`), `eval.py` and `scripts/release_checkpoint.py`. Like the
train step, `eval_step` returns metric sums and counts; the host divides.
"""

from __future__ import annotations

import csv
import functools
import pathlib
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ms_ssm_jax import checkpointing
from ms_ssm_jax import data
from ms_ssm_jax import finetune
from ms_ssm_jax import layers
from ms_ssm_jax import metrics as metrics_lib
from ms_ssm_jax import model as model_lib
from ms_ssm_jax import sharding
from ms_ssm_jax import zoo

# The split whose score picks the best checkpoint.
SELECTION_SPLIT = "validation"


def eval_step(variables: dict[str, Any], batch: dict[str, jax.Array], *, model: nn.Module,
              target: str, with_scores: bool) -> dict[str, jax.Array]:
  """Metric sums on one (possibly padded) global batch.

  With `with_scores` also the (B, C) class probabilities with the batch's labels and
  weights, for metrics computed on the host over the whole split.
  """
  logits = model.apply(variables, batch, train=False)
  out = metrics_lib.loss_and_counts(logits, batch, target)
  if with_scores:
    logits = logits.astype(jnp.float32)
    out["scores"] = jax.nn.sigmoid(logits) if target == "multilabel" else jax.nn.softmax(logits)
    out["labels"], out["weights"] = batch["labels"], batch["weights"]
  return out


class Evaluator:
  """Evaluates model variables on whole splits; shared by the train loop and eval.py."""

  def __init__(self, *, mesh: jax.sharding.Mesh, model: nn.Module, spec: data.TaskSpec,
               data_config: ml_collections.ConfigDict, batch_size: int, variable_shardings: Any):
    sharding.check_batch_size(mesh, batch_size, "config.train.eval_batch_size")
    self._mesh, self._spec, self._data_config = mesh, spec, data_config
    self._batch_size = batch_size
    self._with_scores = spec.metric == "auroc"
    if spec.metric not in ("accuracy", "auroc"):
      raise ValueError(f"task {spec.name!r} has metric {spec.metric!r}; evaluation knows "
                       "'accuracy' and 'auroc'")
    step = functools.partial(eval_step, model=model, target=spec.target,
                             with_scores=self._with_scores)
    self._step = jax.jit(step, in_shardings=(variable_shardings, sharding.batch_sharding(mesh)),
                         out_shardings=sharding.replicated(mesh))

  def evaluate(self, variables: dict[str, Any], split: str,
               max_examples: int | None = None) -> dict[str, float]:
    """{"loss", "accuracy", ("auroc",) "num_examples"} over one pass of `split`, plus
    "nonfinite_examples" when some examples' losses were NaN or infinite.

    `max_examples` evaluates only the split's first examples (a fixed slice).
    """
    shard, num_shards = sharding.process_data_shard(self._mesh, self._batch_size)
    batches = data.make_iterator(self._data_config, split, global_batch_size=self._batch_size,
                                 seed=0, shuffle=False, drop_remainder=False, process_index=shard,
                                 process_count=num_shards, max_examples=max_examples)
    outputs = []
    for local_batch in batches:
      batch = sharding.global_batch(self._mesh, local_batch, self._batch_size)
      outputs.append(self._step(variables, batch))
    # Every output is replicated (out_shardings), so each process can read it whole.
    outputs = jax.device_get(outputs)
    weight = sum(float(o["weight_sum"]) for o in outputs)
    result = {
        "loss": sum(float(o["loss_sum"]) for o in outputs) / weight,
        "accuracy": sum(float(o["correct_sum"]) for o in outputs) / weight
    }
    if self._with_scores:
      scores = np.concatenate([o["scores"] for o in outputs])
      labels = np.concatenate([o["labels"] for o in outputs])
      if self._spec.target == "class":
        labels = np.eye(self._spec.num_classes, dtype=np.float32)[labels]
      result["auroc"] = metrics_lib.macro_auroc(scores, labels,
                                                np.concatenate([o["weights"] for o in outputs]))
    result["num_examples"] = int(round(weight))
    nonfinite = int(round(sum(float(o["nonfinite_sum"]) for o in outputs)))
    if nonfinite:
      result["nonfinite_examples"] = nonfinite
    return result


def override_data_config(saved: ml_collections.ConfigDict, overrides: Mapping[str, Any],
                         where: str) -> ml_collections.ConfigDict:
  """The data config of a saved model with `overrides` (field -> value) applied.

  An override of `name` evaluates on another task (e.g. `lra_listops`, the LRA release files of
  a model trained on `listops`): its fields start from that task's defaults, and those that the
  saved task has too keep the saved values, so that only what differs must be given.

  Args:
    saved: the data config the model was trained with.
    overrides: fields to replace; each must be a field of the (new) task's data config.
    where: the saved model, for the error.
  """
  name = overrides.get("name", saved.name)
  if name == saved.name:
    config = saved.copy_and_resolve_references()
  else:
    config = data.default_data_config(name)
    for key, value in saved.items():
      if key != "name" and key in config:
        config[key] = value
  for key, value in overrides.items():
    if key not in config:
      raise KeyError(f"the data config of task {name!r} ({where}) has no field {key!r}; it has "
                     f"{', '.join(sorted(config))}")
    config[key] = value
  return config


class SavedModel:
  """A saved model (checkpoint or zoo entry) on all devices, ready to evaluate (data parallel).

  Attributes:
    config: the run's config (ConfigDict), with the data overrides applied.
    spec: its task's `TaskSpec`.
    model: the rebuilt model (`flax.linen` module).
    variables: {"params", "batch_stats"}, sharded over the devices.
    info: facts for reports: checkpoint, step, task, metric, layer, params, config.
  """

  def __init__(self, config_json: dict[str, Any], load: Callable[[Any], Any], *, checkpoint: str,
               step: int, batch_size: int | None = None,
               data_overrides: dict[str, Any] | None = None):
    """Rebuilds the model of `config_json` and loads its variables with `load(target)`.

    `target` is a pytree of `ShapeDtypeStruct`s with shardings that the loaded variables
    must match; `checkpoint` and `step` describe the source for `info`. `data_overrides`
    replace fields of the saved data config (`override_data_config`).
    """
    config = ml_collections.ConfigDict(config_json)
    config.data = override_data_config(config.data, data_overrides or {}, checkpoint)
    spec = data.get_task(config.data)
    model = model_lib.build_model(config.model, spec, precision=config.train.precision)
    mesh = sharding.make_mesh(ml_collections.ConfigDict({"data": -1, "model": 1}))
    abstract = jax.eval_shape(lambda: model_lib.init_variables(model, spec, jax.random.PRNGKey(0)))
    shardings = sharding.state_shardings(mesh, abstract)
    self.config, self.spec, self.model = config, spec, model
    self.variables = load(sharding.with_shardings(abstract, shardings))
    self._evaluator = Evaluator(mesh=mesh, model=model, spec=spec, data_config=config.data,
                                batch_size=batch_size or config.train.eval_batch_size,
                                variable_shardings=shardings)
    self.info = {
        "checkpoint": checkpoint, "step": step, "task": spec.name, "metric": spec.metric,
        "layer": config.model.layer, "params": layers.count_parameters(self.variables["params"]),
        "config": config
    }

  @classmethod
  def from_checkpoint(cls, path: str | pathlib.Path, *, prefer: str = "best",
                      **kwargs: Any) -> SavedModel:
    """A run workdir or checkpoint directory (see `checkpointing.find_checkpoint`)."""
    ref = checkpointing.find_checkpoint(path, prefer=prefer)
    return cls(checkpointing.load_config_json(ref),
               lambda target: checkpointing.load_variables(ref, target), checkpoint=str(ref),
               step=ref.step, **kwargs)

  @classmethod
  def from_zoo(cls, name: str, *, directory: str | pathlib.Path | None = None,
               **kwargs: Any) -> SavedModel:
    """A zoo entry (see `ms_ssm_jax.zoo`; `directory` replaces the zoo directory)."""
    entry = zoo.get_entry(name, directory)
    where = f"zoo entry {name!r}"

    def load(target):
      return finetune.place_variables(zoo.load_variables(name, directory), target, where)

    return cls(entry.config, load, checkpoint=where, step=entry.steps, **kwargs)

  def evaluate(self, split: str, max_examples: int | None = None) -> dict[str, float]:
    """The metrics over `split`, or over its first `max_examples` examples."""
    return self._evaluator.evaluate(self.variables, split, max_examples)


def evaluate_checkpoint(path: str | pathlib.Path, split: str, *, prefer: str = "best",
                        batch_size: int | None = None, data_overrides: dict[str, Any] | None = None,
                        max_examples: int | None = None) -> tuple[dict[str, float], dict[str, Any]]:
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


def nonfinite_eval_warning(split: str, step: int, nonfinite: int, total: int) -> str:
  """What to tell the user when evaluation gave NaN or infinite losses."""
  return (f"warning: eval {split} @ {step}: {nonfinite} of {total} examples gave a NaN or "
          "infinite loss, so the split's loss is not finite. Training uses batch statistics, "
          "evaluation BatchNorm's running statistics: a channel whose running variance is tiny "
          "can overflow in deep post-norm stacks. Inspect them with `python "
          "scripts/inspect_run.py --workdir=<workdir>`; model.norm='layer' keeps no running "
          "statistics.")


def evaluations_at_best(eval_csv: pathlib.Path, metric: str) -> dict[str, Any]:
  """`{"step": s, "splits": {split: {column: value}}}` at the earliest step with the best
  validation `metric` in an eval.csv; {} when the run never evaluated validation."""
  if not eval_csv.is_file():
    return {}
  with eval_csv.open(newline="") as f:
    rows = list(csv.DictReader(f))
  scored = [(float(r[metric]), -int(r["step"])) for r in rows if r["split"] == SELECTION_SPLIT]
  if not scored:
    return {}
  step = -max(scored)[1]
  splits = {
      r["split"]: {
          k: int(float(v)) if k == "num_examples" else float(v)
          for k, v in r.items()
          if k not in ("step", "split") and v
      } for r in rows if int(r["step"]) == step
  }
  return {"step": step, "splits": splits}
