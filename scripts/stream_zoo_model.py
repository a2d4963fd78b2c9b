r"""Streams a released model one sample at a time and prints its prediction after every sample.

    python scripts/stream_zoo_model.py --zoo=ms_ssm_japanese_vowels --example=0

Feeds the `--example`-th sequence of the test split to `ms_ssm_jax.streaming` sample by
sample (the variables prepared once, one jitted step of constant cost per sample), prints the
predicted class and its probability after each one, and checks that the last step's logits
equal the parallel pass that `eval.py` runs on the whole sequence.
"""

from __future__ import annotations

from absl import app
from absl import flags
import jax
import numpy as np

from ms_ssm_jax import data
from ms_ssm_jax import evaluation
from ms_ssm_jax import streaming

_ZOO = flags.DEFINE_string("zoo", "ms_ssm_japanese_vowels", "A released model's name.")
_EXAMPLE = flags.DEFINE_integer("example", 0, "Which test example to stream.")
_SPLIT = flags.DEFINE_string("split", "test", "The split to take the example from.")


def _example(saved: evaluation.SavedModel, index: int) -> dict[str, np.ndarray]:
  """The `index`-th example of the split as a batch of one (its valid steps only)."""
  batches = data.make_iterator(saved.config.data, _SPLIT.value, global_batch_size=1, seed=0,
                               shuffle=False, drop_remainder=False, max_examples=index + 1,
                               process_index=0, process_count=1)
  *_, batch = batches
  length = int(batch["lengths"][0])
  return {
      "inputs": batch["inputs"][:, :length], "lengths": batch["lengths"], "labels": batch["labels"]
  }


def main(argv: list[str]) -> None:
  del argv
  saved = evaluation.SavedModel.from_zoo(_ZOO.value)
  model, variables = saved.model, jax.device_get(saved.variables)
  batch = _example(saved, _EXAMPLE.value)
  length = batch["inputs"].shape[1]
  print(f"{_ZOO.value}: {_SPLIT.value} example {_EXAMPLE.value}, {length} samples, "
        f"label {int(batch['labels'][0])}")

  prepared = streaming.prepare(model, variables)
  step = streaming.jit_step(model)
  state = streaming.init_stream(model, variables, batch_size=1)
  for t in range(length):
    state, logits = step(prepared, state, batch["inputs"][:, t])
    probabilities = jax.nn.softmax(logits[0])
    predicted = int(np.argmax(probabilities))
    print(f"  after sample {t + 1:3d}: class {predicted} (p = {probabilities[predicted]:.3f})")

  parallel = model.apply(variables, {"inputs": batch["inputs"], "lengths": batch["lengths"]})
  difference = float(np.max(np.abs(np.asarray(logits) - np.asarray(parallel))))
  print(f"last streamed logits vs the parallel pass (eval.py): max |difference| {difference:.2e}")
  if difference > 1e-4:
    raise SystemExit("the streamed logits differ from the parallel pass")


if __name__ == "__main__":
  app.run(main)
