"""Tasks and their data: the registry, the batch pipeline and the task contract.

    config = default_data_config("japanese_vowels")
    spec = get_task(config)
    batches = make_iterator(config, "train", global_batch_size=32, seed=0, shuffle=True,
                            drop_remainder=True)
"""

from ms_ssm_jax.data.registry import (default_data_config, get_source, get_task, get_task_def,
                                      list_tasks, make_iterator, num_examples)
from ms_ssm_jax.data.task import MissingDataError, TaskDef, TaskSpec

__all__ = [
    "MissingDataError",
    "TaskDef",
    "TaskSpec",
    "default_data_config",
    "get_source",
    "get_task",
    "get_task_def",
    "list_tasks",
    "make_iterator",
    "num_examples",
]
