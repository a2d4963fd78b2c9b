"""LRA ListOps: our own generator of the data, its tokenizer, and a tfds builder.

ListOps (Nangia & Bowman, 2018) in the Long Range Arena form (Tay et al., 2021): nested
expressions over the digits 0-9 with the operators MAX, MIN, MED (median) and SM (sum mod 10),
written in prefix form as `[MAX 2 9 [MIN 4 7 ] 0 ]`; the label is the value of the expression
(10 classes).

The generator follows the distribution of LRA's generator: a node at depth d < 10 (the root has
depth 1) is an operator with probability 0.25 and a digit otherwise; nodes at depth 10 are
digits. (LRA's `VALUE_P = 0.25` reads like a leaf probability, but its code makes a digit when a
uniform draw exceeds it. With leaves at 0.25 a node would have 4.5 children on average and
nearly every tree would reach depth 10 with far more than 2000 tokens.) An operator has 2 to 10
children (uniform), a uniform operator, and costs two tokens (`[OP` and `]`); a digit costs one.
MED is the median as LRA computes it, `int(np.median(args))`: for an even count, the mean of the
two middle values rounded down, so `[MED 3 8 1 6 ]` is 4. Trees are kept when their token count
lies in the length window (inclusive; LRA keeps 500 < length < 2000, i.e. 501-1999), and
repeated trees are dropped so that the splits share no example.

Trees are drawn level by level with numpy operations over all nodes of a level of thousands of
attempts at once, and attempts that already exceed the window are cut off early. In LRA's
window one core makes about 6,000 trees/s (8% of attempts are kept), so the 100,000 LRA trees
take about 15 s, and 30 s with the tfds files written.

The LRA release writes the same trees with `(`/`)` around every node of a binary-tree encoding,
`( ( ( [MAX 2 ) 9 ) ] )`, in TSV files with the header `Source<TAB>Target`. Like S4 and S5 we
drop the parentheses and keep `]` as a token, so both forms give the same token ids.

Token ids: 0 padding, 1-10 the digits 0-9, 11-14 `[MIN`, `[MAX`, `[MED`, `[SM`, 15 `]`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import statistics
import time

from absl import logging
import ml_collections
from ml_collections import config_dict
import numpy as np
import tensorflow_datasets as tfds

from ms_ssm_jax.data import local_builder
from ms_ssm_jax.data.task import MappedSource, TaskDef, TaskSpec

PAD_ID = 0
LISTOPS_TOKENS = (
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "[MIN",
    "[MAX",
    "[MED",
    "[SM",
    "]",
)  # fmt: skip
LISTOPS_VOCAB_SIZE = len(LISTOPS_TOKENS) + 1  # + padding
NUM_CLASSES = 10

_TOKEN_TO_ID = {token: i + 1 for i, token in enumerate(LISTOPS_TOKENS)}
_DIGIT_OFFSET = _TOKEN_TO_ID["0"]
_OPERATOR_OFFSET = _TOKEN_TO_ID["[MIN"]  # operator k (0 MIN, 1 MAX, 2 MED, 3 SM) is id 11 + k
_END_ID = _TOKEN_TO_ID["]"]
_OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")


def _split_listops_text(text: str) -> list[str]:
  return text.replace("(", " ").replace(")", " ").split()


def tokenize_listops(text: str) -> np.ndarray:
  """Token ids `(l,)` int32 of an expression in our form or the LRA release form (with parens)."""
  try:
    return np.array([_TOKEN_TO_ID[token] for token in _split_listops_text(text)], np.int32)
  except KeyError as e:
    raise ValueError(f"unknown ListOps token {e.args[0]!r} in {text[:80]!r}...; known tokens: "
                     f"{', '.join(LISTOPS_TOKENS)} (parentheses are ignored)") from None


def listops_to_text(tokens: np.ndarray) -> str:
  """The expression `[MAX 2 9 ]` written by token ids `(l,)`; padding ids are skipped."""
  tokens = np.asarray(tokens)
  if tokens.min(initial=0) < 0 or tokens.max(initial=0) >= LISTOPS_VOCAB_SIZE:
    raise ValueError(f"ListOps token ids must lie in [0, {LISTOPS_VOCAB_SIZE}), got {tokens}")
  return " ".join(LISTOPS_TOKENS[i - 1] for i in tokens.tolist() if i != PAD_ID)


def _apply_operator(operator: str, args: list[int]) -> int:
  if operator == "[MIN":
    return min(args)
  if operator == "[MAX":
    return max(args)
  if operator == "[MED":
    # As in LRA: the median (the mean of the two middle values for an even count), truncated.
    return int(statistics.median(args))
  return sum(args) % 10


def evaluate_listops(text: str) -> int:
  """The value of an expression in our form or the LRA release form, by a stack machine."""
  frames: list[tuple[str, list[int]]] = []
  result = None
  for token in _split_listops_text(text):
    if result is not None:
      raise ValueError(f"tokens after the end of the expression in {text[:80]!r}")
    if token in _OPERATORS:
      frames.append((token, []))
      continue
    if token == "]":
      if not frames or not frames[-1][1]:
        raise ValueError(f"unmatched ']' or operator without arguments in {text[:80]!r}")
      operator, args = frames.pop()
      value = _apply_operator(operator, args)
    elif token.isdigit() and len(token) == 1:
      value = int(token)
    else:
      raise ValueError(f"unknown ListOps token {token!r} in {text[:80]!r}")
    if frames:
      frames[-1][1].append(value)
    else:
      result = value
  if frames or result is None:
    raise ValueError(f"incomplete ListOps expression {text[:80]!r}")
  return result


# The distribution of LRA's generator (`lra_benchmarks/data/listops.py`).
MAX_DEPTH = 10
MIN_ARGS = 2
MAX_ARGS = 10
OPERATOR_PROB = 0.25
# The shortest operator expression, `[OP a b ]`.
_MIN_WINDOW_LENGTH = 4

# A shard is a fixed number of accepted trees from its own seed, drawn in batches of attempts.
_ATTEMPTS_PER_BATCH = 8192
_SHARD_SIZE = 2048
# With an acceptance rate this low the window cannot be reached in reasonable time.
_MAX_ATTEMPTS_WITHOUT_ACCEPT = 10_000_000


def _sample_structure(
    rng: np.random.Generator, num_attempts: int, max_length: int
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
  """Draws tree shapes breadth first, dropping trees that already exceed `max_length`.

  Returns per-level lists (level 0 holds the roots) of `tree` (attempt index), `is_op` and
  `num_children` for every node, and per attempt the token count and whether it stayed alive.
  The children of a level's nodes are the next level's nodes, grouped by parent, in order.
  """
  tree = np.arange(num_attempts)
  length = np.zeros(num_attempts, np.int64)
  alive = np.ones(num_attempts, bool)
  levels = []
  for depth in range(1, MAX_DEPTH + 1):
    if depth < MAX_DEPTH:
      is_op = rng.random(tree.size) < OPERATOR_PROB
    else:
      is_op = np.zeros(tree.size, bool)
    num_children = np.zeros(tree.size, np.int64)
    num_children[is_op] = rng.integers(MIN_ARGS, MAX_ARGS + 1, size=int(is_op.sum()))
    length += np.bincount(tree, weights=1 + is_op, minlength=num_attempts).astype(np.int64)
    levels.append((tree, is_op, num_children))
    children = np.repeat(tree, num_children)
    # Each pending child adds at least one token, so these trees can only grow too long.
    alive &= length + np.bincount(children, minlength=num_attempts) <= max_length
    tree = children[alive[children]]
  return levels, length, alive


def _evaluate_level(child_value: np.ndarray, child_size: np.ndarray, op_type: np.ndarray,
                    num_children: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Values and token counts `(n_ops,)` of one level's operators from their children's."""
  starts = np.cumsum(num_children) - num_children
  group = np.repeat(np.arange(num_children.size), num_children)
  # Per operator, how many children are <= v for each digit v; the k-th smallest child
  # (from 0) is then the number of digits with at most k children below or at them.
  histogram = np.bincount(group * 10 + child_value, minlength=num_children.size * 10)
  at_most = np.cumsum(histogram.reshape(-1, 10), axis=1)

  def kth_smallest(k: np.ndarray) -> np.ndarray:
    return (at_most <= k[:, None]).sum(axis=1)

  minimum = kth_smallest(np.zeros_like(num_children))
  maximum = kth_smallest(num_children - 1)
  # For an even count the mean of the middle two, truncated as LRA's `int(np.median(...))`
  # does (values are non-negative, so truncation is floor).
  median = (kth_smallest((num_children - 1) // 2) + kth_smallest(num_children // 2)) // 2
  sum_mod = np.add.reduceat(child_value, starts) % 10
  value = np.choose(op_type, [minimum, maximum, median, sum_mod])
  size = 2 + np.add.reduceat(child_size, starts)
  return value, size


def _sample_trees(rng: np.random.Generator, num_attempts: int, min_length: int,
                  max_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Accepted trees of `num_attempts` draws: flat tokens (uint8), lengths and labels."""
  levels, length, alive = _sample_structure(rng, num_attempts, max_length)
  accepted = alive & (length >= min_length) & (length <= max_length)
  if not accepted.any():
    return np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64)
  # The nodes of accepted trees; children stay grouped by parent in their parents' order.
  kept = []
  for tree, is_op, num_children in levels:
    keep = accepted[tree]
    if keep.any():
      kept.append((is_op[keep], num_children[keep]))

  op_types = [rng.integers(0, len(_OPERATORS), size=int(is_op.sum())) for is_op, _ in kept]
  values = [rng.integers(0, 10, size=is_op.size) for is_op, _ in kept]
  sizes = [np.ones(is_op.size, np.int64) for is_op, _ in kept]
  for d in reversed(range(len(kept) - 1)):
    is_op, num_children = kept[d]
    values[d][is_op], sizes[d][is_op] = _evaluate_level(values[d + 1], sizes[d + 1], op_types[d],
                                                        num_children[is_op])

  # Token positions top down: a child starts after its parent's `[OP` and its older siblings.
  tokens = np.empty(int(sizes[0].sum()), np.uint8)
  position = np.cumsum(sizes[0]) - sizes[0]
  for d, (is_op, num_children) in enumerate(kept):
    tokens[position[~is_op]] = _DIGIT_OFFSET + values[d][~is_op]
    op_position, op_size = position[is_op], sizes[d][is_op]
    tokens[op_position] = _OPERATOR_OFFSET + op_types[d]
    tokens[op_position + op_size - 1] = _END_ID
    if d + 1 < len(kept):
      counts = num_children[is_op]
      start = np.cumsum(sizes[d + 1]) - sizes[d + 1]
      group_start = start[np.cumsum(counts) - counts]
      position = np.repeat(op_position + 1 - group_start, counts) + start
  return tokens, sizes[0], values[0]


def _check_window(min_length: int, max_length: int) -> None:
  if not _MIN_WINDOW_LENGTH <= min_length <= max_length:
    raise ValueError(f"ListOps length window [{min_length}, {max_length}] must satisfy "
                     f"{_MIN_WINDOW_LENGTH} <= min_length <= max_length (the shortest expression, "
                     f"`[OP a b ]`, has {_MIN_WINDOW_LENGTH} tokens)")


def generate_listops_shard(seed: int, shard_index: int, num_examples: int, min_length: int,
                           max_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """`num_examples` trees with token counts in [min_length, max_length], from `(seed, shard)`.

  Returns flat uint8 tokens of all trees one after the other, their lengths `(n,)` and their
  labels `(n,)`. Repeats within and across shards are possible (and dropped by the caller).
  """
  _check_window(min_length, max_length)
  rng = np.random.default_rng([seed, shard_index])
  tokens, lengths, labels = [], [], []
  count = attempts = 0
  while count < num_examples:
    if count == 0 and attempts >= _MAX_ATTEMPTS_WITHOUT_ACCEPT:
      raise ValueError(
          f"no ListOps tree with a length in [{min_length}, {max_length}] in {attempts} "
          "draws: under LRA's distribution this window is too rare; widen it")
    batch_tokens, batch_lengths, batch_labels = _sample_trees(rng, _ATTEMPTS_PER_BATCH, min_length,
                                                              max_length)
    attempts += _ATTEMPTS_PER_BATCH
    tokens.append(batch_tokens)
    lengths.append(batch_lengths)
    labels.append(batch_labels)
    count += batch_lengths.size
  lengths = np.concatenate(lengths)[:num_examples]
  tokens = np.concatenate(tokens)[:int(lengths.sum())]
  labels = np.concatenate(labels)[:num_examples]
  return tokens, lengths.astype(np.int32), labels.astype(np.int32)


def generate_listops(num_examples: int, *, min_length: int, max_length: int, seed: int,
                     num_workers: int = 1) -> tuple[list[np.ndarray], np.ndarray]:
  """`num_examples` distinct trees: token arrays `(l,)` uint8 and labels `(num_examples,)` int32.

  Shards of `_SHARD_SIZE` trees come from their own seeds `(seed, shard)` and are merged in
  shard order, keeping the first copy of a repeated tree, so the result depends only on the
  arguments, not on `num_workers` (processes that generate shards in parallel).
  """
  _check_window(min_length, max_length)
  if num_examples < 0 or seed < 0 or num_workers < 1:
    raise ValueError(
        f"need num_examples >= 0, seed >= 0 and num_workers >= 1, got {num_examples}, {seed}, "
        f"{num_workers}")
  shard_size = min(_SHARD_SIZE, max(num_examples, 1))
  examples: dict[bytes, tuple[np.ndarray, int]] = {}
  next_shard = trees_without_new = 0
  with contextlib.ExitStack() as stack:
    map_shards = map
    if num_workers > 1:
      # Spawned, not forked: forking a parent that runs JAX or other threads is unsafe.
      pool = concurrent.futures.ProcessPoolExecutor(num_workers,
                                                    mp_context=multiprocessing.get_context("spawn"))
      map_shards = stack.enter_context(pool).map
    while len(examples) < num_examples:
      num_shards = -(-(num_examples - len(examples)) // shard_size)
      shard_args = [(seed, shard, shard_size, min_length, max_length)
                    for shard in range(next_shard, next_shard + num_shards)]
      next_shard += num_shards
      found = len(examples)
      for tokens, lengths, labels in map_shards(generate_listops_shard, *zip(*shard_args)):
        for tree, label in zip(np.split(tokens, np.cumsum(lengths)[:-1]), labels.tolist()):
          examples.setdefault(tree.tobytes(), (tree, label))
      trees_drawn = num_shards * shard_size
      trees_without_new = 0 if len(examples) > found else trees_without_new + trees_drawn
      # Small windows hold few distinct trees; stop once new ones have become this rare.
      if trees_without_new >= 10 * num_examples:
        raise ValueError(
            f"only {found} distinct ListOps trees found with lengths in [{min_length}, "
            f"{max_length}] (the last {trees_without_new} trees drawn were all repeats), fewer "
            f"than the {num_examples} requested: widen the length window or ask for fewer")
  selected = list(examples.values())[:num_examples]
  return [tree for tree, _ in selected], np.array([label for _, label in selected], np.int32)


@dataclasses.dataclass(eq=False)
class ListOpsConfig(tfds.core.BuilderConfig):
  """Split sizes, the inclusive token-length window and the seed of a generated ListOps set."""

  num_train: int = 96_000
  num_validation: int = 2_000
  num_test: int = 2_000
  min_tree_length: int = 501
  max_tree_length: int = 1999
  seed: int = 0

  @property
  def split_sizes(self) -> dict[str, int]:
    return {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}


_VERSION = "1.0.0"
# `lra`: LRA's sizes; LRA keeps trees with 500 < length < 2000, our window is inclusive.
BUILDER_CONFIGS = (
    ListOpsConfig(name="lra", version=_VERSION, description="LRA ListOps sizes and lengths."),
    ListOpsConfig(
        name="small",
        version=_VERSION,
        description="LRA lengths, a tenth of the examples, for quick runs.",
        num_train=9_600,
        num_validation=200,
        num_test=200,
    ),
    ListOpsConfig(
        name="tiny",
        version=_VERSION,
        description="Short trees and few examples, for tests.",
        num_train=48,
        num_validation=8,
        num_test=8,
        min_tree_length=10,
        max_tree_length=60,
    ),
)


class ListOps(local_builder.LocalBuilder, skip_registration=True):
  """Generated LRA ListOps; `inputs` are uint8 token ids, `label` the value of the expression."""

  name = "listops"
  VERSION = tfds.core.Version(_VERSION)
  RELEASE_NOTES = {_VERSION: "Our generator of LRA's ListOps distribution."}
  BUILDER_CONFIGS = list(BUILDER_CONFIGS)

  def __init__(self, *, num_workers: int = 1, **kwargs):
    self._num_workers = num_workers
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    # Built here, not from metadata files, which tfds looks for next to the builder's package.
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "inputs": tfds.features.Tensor(shape=(None,), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }),
        supervised_keys=("inputs", "label"),
        homepage="https://github.com/google-research/long-range-arena",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    config = self.builder_config
    sizes = config.split_sizes
    start = time.perf_counter()
    trees, labels = generate_listops(
        sum(sizes.values()),
        min_length=config.min_tree_length,
        max_length=config.max_tree_length,
        seed=config.seed,
        num_workers=self._num_workers,
    )
    logging.info(
        "Generated %d ListOps trees in %.1f s with %d worker(s).",
        len(trees),
        time.perf_counter() - start,
        self._num_workers,
    )  # fmt: skip
    generators, offset = {}, 0
    for split, size in sizes.items():
      generators[split] = self._generate_examples(trees[offset:offset + size],
                                                  labels[offset:offset + size])
      offset += size
    return generators

  def _generate_examples(self, trees, labels):
    for index, (tree, label) in enumerate(zip(trees, labels)):
      yield index, {"inputs": tree, "label": label}


def default_config() -> ml_collections.ConfigDict:
  """The `listops` data config: LRA's sizes and lengths, padded to 2048 tokens."""
  config = ml_collections.ConfigDict()
  config.name = "listops"
  # Where tfds keeps the generated files; None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
  config.data_dir = config_dict.placeholder(str)
  config.max_length = 2048
  config.num_train = 96_000
  config.num_validation = 2_000
  config.num_test = 2_000
  # Inclusive token-length window of the trees; 501-1999 is LRA's 500 < length < 2000.
  config.min_tree_length = 501
  config.max_tree_length = 1999
  config.seed = 0
  # Processes that generate the data on first use; the data do not depend on it.
  config.generation_workers = 1
  return config


def get_spec(config: ml_collections.ConfigDict) -> TaskSpec:
  """The model's view of ListOps: 16 token ids, 10 classes, `config.max_length` steps."""
  if config.max_tree_length > config.max_length:
    raise ValueError(
        f"listops: max_tree_length {config.max_tree_length} exceeds max_length "
        f"{config.max_length}; raise max_length (the padded length) or lower max_tree_length")
  return TaskSpec(
      name="listops",
      input_type="tokens",
      vocab_size=LISTOPS_VOCAB_SIZE,
      num_classes=NUM_CLASSES,
      max_length=config.max_length,
  )


def _builder_config(config: ml_collections.ConfigDict) -> ListOpsConfig:
  fields = {
      "num_train": config.num_train,
      "num_validation": config.num_validation,
      "num_test": config.num_test,
      "min_tree_length": config.min_tree_length,
      "max_tree_length": config.max_tree_length,
      "seed": config.seed,
  }
  if min(fields["num_train"], fields["num_validation"], fields["num_test"]) < 1:
    raise ValueError(f"listops: every split needs at least one example, got {fields}")
  _check_window(config.min_tree_length, config.max_tree_length)
  for predefined in BUILDER_CONFIGS:
    if all(getattr(predefined, key) == value for key, value in fields.items()):
      return predefined
  name = "custom-{num_train}-{num_validation}-{num_test}-len{min_tree_length}-{max_tree_length}"
  return ListOpsConfig(name=(name + "-seed{seed}").format(**fields), version=_VERSION, **fields)


def make_builder(config: ml_collections.ConfigDict) -> ListOps:
  """The tfds builder of the data that `config` describes (a predefined or a custom config)."""
  builder_config = _builder_config(config)
  return ListOps(
      # A predefined config goes by name: tfds rebuilds builders from these arguments when
      # unpickling them (e.g. in data-loading workers) and rejects a copy of a predefined one.
      config=builder_config.name if builder_config in BUILDER_CONFIGS else builder_config,
      data_dir=config.data_dir,
      file_format="array_record",
      num_workers=config.generation_workers,
  )


def _to_task_example(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  # Stored as uint8 (a quarter of the disk); the task contract asks for int32.
  return {
      "inputs": example["inputs"].astype(np.int32),
      "label": np.asarray(example["label"], np.int32),
  }


def get_source(config: ml_collections.ConfigDict, split: str) -> MappedSource:
  """The examples of `split`; the data are generated and written on first use (once per
  machine: `local_builder.prepared`).

  On multi-host runs, prepare the data once beforehand (`make_builder(config)
  .download_and_prepare()`) so that hosts do not generate it concurrently.
  """
  if split not in _builder_config(config).split_sizes:
    raise ValueError(f"listops: unknown split {split!r}; known: train, validation, test")
  builder = local_builder.prepared(lambda: make_builder(config))
  return MappedSource(builder.as_data_source(split=split), _to_task_example)


TASKS = {
    "listops": TaskDef(default_config=default_config, spec=get_spec, source=get_source),
}
