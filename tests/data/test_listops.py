"""Tests of the ListOps generator, tokenizer, evaluator and tfds builder."""

import csv
import pickle

import numpy as np
import pytest

from ms_ssm_jax.data import listops

# Ids by the documented vocabulary: digits 0-9 are 1-10, [MIN [MAX [MED [SM are 11-14, ] is 15.
_IDS = {str(d): d + 1 for d in range(10)} | {"[MIN": 11, "[MAX": 12, "[MED": 13, "[SM": 14, "]": 15}


def _lra_release_form(text: str) -> str:
  """Writes `[MAX 2 9 ]` as LRA's release does: a left-nested pair per argument, each in parens.

  LRA encodes `[OP a b ]` as `((([OP, a), b), ])` and prints a pair `(x, y)` as `( x y )`.
  """

  def parse(tokens, i):
    if tokens[i] != "[" and not tokens[i].startswith("["):
      return tokens[i], i + 1
    node, i = tokens[i], i + 1
    while tokens[i] != "]":
      child, i = parse(tokens, i)
      node = f"( {node} {child} )"
    return f"( {node} ] )", i + 1

  tree, end = parse(text.split(), 0)
  assert end == len(text.split())
  return tree


def _trees(tokens, lengths):
  return np.split(tokens, np.cumsum(lengths)[:-1])


def test_tokenize_gives_the_documented_ids():
  text = "[MAX 2 9 [MIN 4 7 ] 0 ]"
  expected = [_IDS[t] for t in text.split()]
  np.testing.assert_array_equal(listops.tokenize_listops(text), expected)
  assert listops.tokenize_listops(text).dtype == np.int32
  assert listops.LISTOPS_VOCAB_SIZE == 16
  assert listops.listops_to_text(np.array(expected + [0, 0])) == text


def test_tokenize_rejects_unknown_tokens():
  with pytest.raises(ValueError, match="unknown ListOps token '\\[FIRST'"):
    listops.tokenize_listops("[FIRST 1 2 ]")


@pytest.mark.parametrize(
    "text, value",
    [
        ("7", 7),
        ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
        ("[MIN 3 [MAX 1 8 ] 5 ]", 3),
        ("[SM 9 9 9 ]", 7),
        ("[MED 1 2 ]", 1),  # median 1.5, truncated
        ("[MED 3 8 1 6 ]", 4),  # median 4.5, truncated
        ("[MED 5 0 9 ]", 5),
        ("[SM [MED 9 8 ] [MAX 0 0 ] 4 ]", 2),  # MED 8.5 -> 8; 8 + 0 + 4 = 12
    ],
)
def test_evaluate_listops(text, value):
  assert listops.evaluate_listops(text) == value
  assert listops.evaluate_listops(_lra_release_form(text)) == value


@pytest.mark.parametrize("text", ["[MAX 1 2", "[MAX ]", "1 2", "]", "[MIN 1 [SM 2 ] ] 3"])
def test_evaluate_listops_rejects_malformed_expressions(text):
  with pytest.raises(ValueError):
    listops.evaluate_listops(text)


def test_release_tsv_format(tmp_path):
  # One row as LRA's generator writes it, and generated trees in the same form.
  written = "( ( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )"
  assert _lra_release_form("[MAX 2 9 [MIN 4 7 ] 0 ]") == written
  tokens, lengths, labels = listops.generate_listops_shard(0, 0, 20, 10, 80)
  trees = [listops.listops_to_text(tree) for tree in _trees(tokens, lengths)]
  path = tmp_path / "basic_test.tsv"
  with open(path, "w", newline="") as f:
    writer = csv.writer(f, delimiter="\t")
    writer.writerow(["Source", "Target"])
    writer.writerow([written, 9])
    writer.writerows([_lra_release_form(tree), label] for tree, label in zip(trees, labels))
  assert path.read_text().startswith("Source\tTarget\n( ( ( ( ( [MAX 2 ) 9 )")

  with open(path, newline="") as f:
    rows = list(csv.DictReader(f, delimiter="\t"))
  assert len(rows) == 21
  np.testing.assert_array_equal(listops.tokenize_listops(rows[0]["Source"]),
                                [12, 3, 10, 11, 5, 8, 15, 1, 15])
  for row, tree, label in zip(rows[1:], _trees(tokens, lengths), labels):
    np.testing.assert_array_equal(listops.tokenize_listops(row["Source"]), tree)
    assert listops.evaluate_listops(row["Source"]) == int(row["Target"]) == label


@pytest.mark.parametrize("window", [(4, 40), (501, 1999)])
def test_generated_labels_and_lengths(window):
  trees, labels = listops.generate_listops(300 if window[0] < 100 else 40, min_length=window[0],
                                           max_length=window[1], seed=1)
  for tree, label in zip(trees, labels):
    assert tree.dtype == np.uint8
    assert window[0] <= tree.size <= window[1]
    assert 1 <= tree.min() and tree.max() < listops.LISTOPS_VOCAB_SIZE
    assert listops.evaluate_listops(listops.listops_to_text(tree)) == label
  assert labels.dtype == np.int32 and set(labels.tolist()) <= set(range(10))


def _exact_length_distribution(max_length):
  """P(token count = l), l <= max_length, of an LRA-distributed tree, by recursion on depth."""
  leaf = np.zeros(max_length + 1)
  leaf[1] = 1.0
  subtree = leaf  # depth 10: always a leaf
  for _ in range(9):  # depths 9, ..., 1
    with_k_children, op = subtree, np.zeros(max_length + 1)
    for _children in range(2, 11):
      with_k_children = np.convolve(with_k_children, subtree)[:max_length + 1]
      op[2:] += with_k_children[:-2] / 9
    subtree = 0.75 * leaf + 0.25 * op
  return subtree


@pytest.mark.parametrize("window", [(4, 40), (501, 1999)])
def test_length_distribution_matches_lra(window):
  min_length, max_length = window
  _, lengths, _ = listops.generate_listops_shard(5, 0, 2000, min_length, max_length)
  expected = _exact_length_distribution(max_length)[min_length:]
  expected /= expected.sum()
  # Pearson chi-square over 20 bins of about equal probability: ~19 +- 6 when right; an
  # operator probability of 0.2, 2-9 children or a maximum depth of 9 give hundreds.
  edges = np.searchsorted(np.cumsum(expected), np.linspace(0, 1, 21)[1:-1]) + min_length + 1
  bins = np.unique(np.concatenate([[min_length], edges, [max_length + 1]]))
  observed = np.histogram(lengths, bins)[0]
  expected = lengths.size * np.add.reduceat(expected, bins[:-1] - min_length)
  chi2 = np.sum((observed - expected)**2 / expected)
  assert chi2 < 50, chi2


def test_symbols_are_uniform():
  tokens, _, _ = listops.generate_listops_shard(2, 0, 2000, 20, 200)
  operators = np.bincount(tokens, minlength=16)[11:15]
  digits = np.bincount(tokens, minlength=16)[1:11]
  for counts in (operators, digits):
    expected = counts.sum() / counts.size
    assert np.sum((counts - expected)**2 / expected) < 30, counts


def test_generation_is_deterministic_and_independent_of_workers():
  kwargs = dict(num_examples=50, min_length=10, max_length=100)
  trees, labels = listops.generate_listops(**kwargs, seed=3)
  again, again_labels = listops.generate_listops(**kwargs, seed=3)
  other, _ = listops.generate_listops(**kwargs, seed=4)
  assert all(np.array_equal(a, b) for a, b in zip(trees, again))
  np.testing.assert_array_equal(labels, again_labels)
  assert not all(a.size == b.size and np.array_equal(a, b) for a, b in zip(trees, other))


def test_generation_with_workers_gives_the_same_data():
  kwargs = dict(num_examples=3000, min_length=10, max_length=100, seed=3)
  trees, labels = listops.generate_listops(**kwargs)
  parallel, parallel_labels = listops.generate_listops(**kwargs, num_workers=2)
  assert all(np.array_equal(a, b) for a, b in zip(trees, parallel))
  np.testing.assert_array_equal(labels, parallel_labels)


def test_generated_trees_are_distinct():
  # Only 4 * 10**2 + 4 * 10**3 trees have 4 or 5 tokens, so raw draws repeat often.
  trees, _ = listops.generate_listops(2500, min_length=4, max_length=5, seed=0)
  assert len({tree.tobytes() for tree in trees}) == 2500
  with pytest.raises(ValueError, match="only 400 distinct ListOps trees"):
    listops.generate_listops(401, min_length=4, max_length=4, seed=0)


@pytest.mark.parametrize("window", [(3, 10), (20, 10)])
def test_invalid_window(window):
  with pytest.raises(ValueError, match="length window"):
    listops.generate_listops(5, min_length=window[0], max_length=window[1], seed=0)


def _tiny_config(data_dir):
  config = listops.default_config()
  config.data_dir = str(data_dir)
  config.num_train, config.num_validation, config.num_test = 48, 8, 8
  config.min_tree_length, config.max_tree_length = 10, 60
  return config


def test_default_config_is_lra():
  config = listops.default_config()
  assert listops.make_builder(config).builder_config.name == "lra"
  assert (config.num_train, config.num_validation, config.num_test) == (96_000, 2_000, 2_000)
  spec = listops.TASKS["listops"].spec(config)
  assert (spec.vocab_size, spec.num_classes, spec.max_length) == (16, 10, 2048)
  assert spec.input_type == "tokens" and spec.target == "class"
  config.max_tree_length = 3000
  with pytest.raises(ValueError, match="raise max_length"):
    listops.get_spec(config)


def test_builder_config_names(tmp_path):
  config = _tiny_config(tmp_path)
  assert listops.make_builder(config).builder_config.name == "tiny"
  config.seed = 7
  custom = listops.make_builder(config).builder_config
  assert custom.name == "custom-48-8-8-len10-60-seed7"
  assert (custom.num_train, custom.min_tree_length, custom.seed) == (48, 10, 7)
  config.num_test = 0
  with pytest.raises(ValueError, match="at least one example"):
    listops.make_builder(config)


def test_tfds_builder_on_tiny_config(tmp_path):
  config = _tiny_config(tmp_path)
  task = listops.TASKS["listops"]
  sources = {split: task.source(config, split) for split in task.splits}
  assert {split: len(s) for split, s in sources.items()
         } == {"train": 48, "validation": 8, "test": 8}  # fmt: skip
  seen = {}
  for split, source in sources.items():
    for i in range(len(source)):
      example = source[i]
      inputs, label = example["inputs"], example["label"]
      assert set(example) == {"inputs", "label"}
      assert inputs.dtype == np.int32 and inputs.ndim == 1 and 10 <= inputs.size <= 60
      assert label.dtype == np.int32 and label.shape == ()
      assert listops.evaluate_listops(listops.listops_to_text(inputs)) == label
      seen.setdefault(inputs.tobytes(), []).append(split)
  assert len(seen) == 64, "an example repeats within or across splits"
  # The files hold exactly the generator's output for the config.
  trees, labels = listops.generate_listops(64, min_length=10, max_length=60, seed=0)
  assert set(seen) == {tree.astype(np.int32).tobytes() for tree in trees}
  with pytest.raises(ValueError, match="unknown split"):
    task.source(config, "val")


@pytest.mark.parametrize("seed", [0, 5])  # the predefined `tiny` config and a custom one
def test_sources_survive_pickling(tmp_path, seed):
  # Data-loading worker processes receive sources by pickle.
  config = _tiny_config(tmp_path)
  config.seed = seed
  source = listops.get_source(config, "validation")
  copy = pickle.loads(pickle.dumps(source))
  assert len(copy) == 8
  np.testing.assert_array_equal(copy[3]["inputs"], source[3]["inputs"])
