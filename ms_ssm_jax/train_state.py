"""The train state and its checkpoint items (`checkpointing.VARIABLES`, `checkpointing.TRAIN`).

Below both the loop (`train_loop.py`, which saves it) and its setup (`train_lib.py`, which
creates or restores it).
"""

from __future__ import annotations

from typing import Any

import flax
import jax

from ms_ssm_jax import checkpointing


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


def state_items(state: TrainState) -> dict[str, Any]:
  """The checkpoint items of a state (see checkpointing.py)."""
  return {
      checkpointing.VARIABLES: state.variables(),
      checkpointing.TRAIN: {"step": state.step, "opt_state": state.opt_state, "rng": state.rng}
  }


def state_from_items(items: dict[str, Any]) -> TrainState:
  """The state of restored checkpoint items (the inverse of `state_items`)."""
  variables, train = items[checkpointing.VARIABLES], items[checkpointing.TRAIN]
  return TrainState(step=train["step"], params=variables["params"], opt_state=train["opt_state"],
                    batch_stats=variables["batch_stats"], rng=train["rng"])
