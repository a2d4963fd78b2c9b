"""Tests of the Pathfinder generator, its renderer, the tfds builder and the tasks."""

import collections

import numpy as np
import pytest

from ms_ssm_jax.data import pathfinder
from ms_ssm_jax.data import pathfinder_render as pr

# Different contours stay 2 * 1 + 6 = 8 px apart (centre lines), consecutive dashes of one
# contour 2 * margin = 2 px. Markers are the only full-intensity pixels (snake_contrast 0.5).
_SEPARATED = pr.PathfinderParams(image_size=64, contour_length=6, paddle_length=3.0,
                                 paddle_thickness=1.0, paddle_margins=(1,), marker_radius=1.5,
                                 seed_distance=14.0, continuity=1.0, distractor_budget=6.0,
                                 snake_contrast=0.5, paddle_contrast=0.75, extra_clearance=6.0)


def _components(mask: np.ndarray) -> np.ndarray:
  """8-connected component ids of a boolean mask (0 is background), by flood fill."""
  ids = np.zeros(mask.shape, np.int32)
  next_id = 0
  for start in zip(*np.nonzero(mask)):
    if ids[start]:
      continue
    next_id += 1
    ids[start] = next_id
    queue = collections.deque([start])
    while queue:
      y, x = queue.popleft()
      for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
          q = (y + dy, x + dx)
          if (0 <= q[0] < mask.shape[0] and 0 <= q[1] < mask.shape[1] and mask[q] and not ids[q]):
            ids[q] = next_id
            queue.append(q)
  return ids


def _dilate(mask: np.ndarray) -> np.ndarray:
  """Dilation by a 3x3 square."""
  padded = np.pad(mask, 1)
  h, w = mask.shape
  return np.any([padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], 0)


def test_label_matches_connectivity_of_the_pixels():
  """Label 1 iff the two markers found in the image are joined by ink.

  The markers are the two blobs of near-full intensity. Ink is every non-zero pixel; a 3x3
  dilation bridges the 2 px gaps between dashes of one contour (ink reaches about 1 px beyond
  a centre line), but not the >= 8 px between centre lines of different contours.
  """
  images, labels = pr.generate_chunk(_SEPARATED, seed=3, chunk=0, count=100)
  for image, label in zip(images, labels):
    markers = _components(image >= 200)
    assert markers.max() == 2
    ink = _components(_dilate(image > 0))
    first = set(np.unique(ink[markers == 1]))
    second = set(np.unique(ink[markers == 2]))
    assert len(first) == len(second) == 1
    assert (first == second) == bool(label)
  assert 0 < labels.sum() < len(labels)


def _dense_points(segments: np.ndarray, n: int = 41) -> np.ndarray:
  t = np.linspace(0, 1, n)[:, None]
  return segments[:, None, 0] * (1 - t) + segments[:, None, 1] * t


@pytest.mark.parametrize("size,count", [(32, 12), (64, 6), (128, 4)])
def test_lra_scenes_keep_geometry_and_marker_rules(size, count):
  params = pr.lra_params(size)
  rng = np.random.default_rng(size)
  labels = np.arange(count) % 2
  scenes = pr.sample_scenes(params, labels, rng)
  for i in range(count):
    owner = scenes.owner[i]
    segments = scenes.segments[i][owner >= 0]
    owner = owner[owner >= 0]
    margin = scenes.margins[i]
    assert margin in params.paddle_margins
    np.testing.assert_allclose(np.linalg.norm(segments[:, 1] - segments[:, 0], axis=-1),
                               params.paddle_length)
    assert segments.min() >= params.padding
    assert segments.max() <= size - 1 - params.padding
    lengths = np.bincount(owner)
    assert lengths[0] == lengths[1] == params.contour_length
    # A distractor that finds no room is left out whole, as in the original generator.
    assert np.all((lengths[2:] == params.distractor_length) | (lengths[2:] == 0))
    for contour in np.unique(owner):
      path = segments[owner == contour]
      gap = np.linalg.norm(path[1:, 0] - path[:-1, 1], axis=-1)
      direction = path[:, 1] - path[:, 0]
      cos_turn = np.sum(direction[1:] * direction[:-1], -1) / params.paddle_length**2
      turn = np.arccos(np.clip(cos_turn, -1, 1))
      assert np.all(turn <= np.pi / (2 * params.continuity) + 1e-9)
      np.testing.assert_allclose(gap, 2 * margin * np.cos(turn / 2), atol=1e-9)
    # Paddles of different contours: centre lines at least 2 * margin apart.
    points = _dense_points(segments)
    other = owner[:, None] != owner[None, :]
    dist = np.linalg.norm(points[:, None, :, None] - points[None, :, None, :], axis=-1)
    assert dist.min((2, 3))[other].min() >= 2 * margin - 0.05
    # Markers sit on the start of one target and the end of the same or the other one.
    starts = [segments[owner == c][0, 0] for c in (0, 1)]
    ends = [segments[owner == c][-1, 1] for c in (0, 1)]
    first, second = scenes.markers[i]
    on_start = [np.allclose(first, s) for s in starts]
    on_end = [np.allclose(second, e) for e in ends]
    assert sum(on_start) == sum(on_end) == 1
    assert (on_start.index(True) == on_end.index(True)) == bool(labels[i])


def test_render_matches_exact_area_coverage():
  """With 8x8 subpixels the box-filtered render is the area of a paddle and a disc per pixel."""
  params = pr.PathfinderParams(image_size=12, contour_length=1, paddle_length=4.0,
                               paddle_thickness=1.5, paddle_margins=(1,), marker_radius=2.0,
                               seed_distance=7.0, continuity=1.0, distractor_budget=0.0,
                               snake_contrast=1.0, paddle_contrast=1.0, antialias_scale=8)
  paddle = np.array([[2.3, 2.6], [4.1, 6.2]])
  marker = np.array([8.4, 7.7])
  scenes = pr.Scenes(segments=paddle[None, None], owner=np.zeros((1, 1), np.int32), tips=np.zeros(
      (1, 4, 2)), markers=np.stack([marker, marker])[None], labels=np.ones(1, np.int32),
                     margins=np.ones(1))
  image = pr.render(params, scenes)[0]
  # Area of the capsule and disc in each pixel, from a 64x64 grid of points per pixel.
  fine = (np.arange(12 * 64) + 0.5) / 64 - 0.5
  y, x = np.meshgrid(fine, fine, indexing="ij")
  a, b = paddle
  t = np.clip(((y - a[0]) * (b[0] - a[0]) + (x - a[1]) * (b[1] - a[1])) / 16.0, 0, 1)
  in_paddle = np.hypot(y - a[0] - t * (b[0] - a[0]), x - a[1] - t * (b[1] - a[1])) <= 0.75
  in_marker = np.hypot(y - marker[0], x - marker[1]) <= 2.0
  area = lambda inside: inside.reshape(12, 64, 12, 64).mean((1, 3))
  expected = np.maximum(area(in_paddle), area(in_marker))
  expected = 255 * expected / expected.max()
  np.testing.assert_allclose(image, expected, atol=0.04 * 255)
  assert image.max() == 255


def test_chunks_are_balanced_and_deterministic():
  params = pr.lra_params(32)
  images, labels = pr.generate_chunk(params, seed=(7, 1), chunk=2, count=30)
  again, labels_again = pr.generate_chunk(params, seed=(7, 1), chunk=2, count=30)
  other, _ = pr.generate_chunk(params, seed=(7, 2), chunk=2, count=30)
  assert images.shape == (30, 32, 32) and images.dtype == np.uint8
  assert labels.dtype == np.int32 and labels.sum() == 15
  np.testing.assert_array_equal(images, again)
  np.testing.assert_array_equal(labels, labels_again)
  assert not np.array_equal(images, other)
  assert np.all(images.max((1, 2)) == 255)
  assert len({image.tobytes() for image in images}) == 30


def test_generation_does_not_depend_on_the_number_of_workers():
  params = pr.lra_params(32)
  num_images = pr.CHUNK_SIZE + 10
  serial = list(pr.generate(params, num_images, seed=5))
  parallel = list(pr.generate(params, num_images, seed=5, num_workers=2))
  assert [len(labels) for _, labels in serial] == [pr.CHUNK_SIZE, 10]
  for (images, labels), (images_p, labels_p) in zip(serial, parallel, strict=True):
    np.testing.assert_array_equal(images, images_p)
    np.testing.assert_array_equal(labels, labels_p)


def test_params_reject_markers_that_would_touch():
  with pytest.raises(ValueError, match="seed_distance"):
    pr.PathfinderParams(image_size=32, contour_length=14, paddle_length=2.0, paddle_thickness=0.5,
                        paddle_margins=(1,), marker_radius=1.5, seed_distance=4.0, continuity=1.0,
                        distractor_budget=20.0, snake_contrast=2.0, paddle_contrast=0.75)
  with pytest.raises(ValueError, match="use 32, 64 or 128"):
    pr.lra_params(48)


def test_lra_settings():
  pf32, pf128 = pr.lra_params(32), pr.lra_params(128)
  assert (pf32.distractor_length, pf32.num_distractors) == (4, 5)  # 14 / 3; ceil(20 / (14/3))
  assert (pf128.distractor_length, pf128.num_distractors) == (4, 8)  # ceil(35 / (14/3))
  assert pf128.paddle_margins == (2, 3) and pf128.seed_distance == 20


def _tiny_config(name, tmp_path, **overrides):
  config = pathfinder.TASKS[name].default_config()
  config.data_dir = str(tmp_path)
  config.num_train, config.num_validation, config.num_test = 24, 8, 8
  config.update(overrides)
  return config


def test_builder_splits_and_source_examples(tmp_path):
  task = pathfinder.TASKS["pathfinder32"]
  config = _tiny_config("pathfinder32", tmp_path)
  assert pathfinder.make_builder(config, 32).builder_config.name == "tiny32"
  spec = task.spec(config)
  assert (spec.input_type, spec.num_channels, spec.num_classes, spec.max_length) == ("continuous",
                                                                                     1, 2, 1024)
  seen = set()
  for split, size in (("train", 24), ("validation", 8), ("test", 8)):
    source = task.source(config, split)
    assert len(source) == size
    examples = [source[i] for i in range(size)]
    assert sum(int(e["label"]) for e in examples) == size // 2
    for example in examples:
      inputs, label = example["inputs"], example["label"]
      assert inputs.shape == (1024, 1) and inputs.dtype == np.float32
      assert label.dtype == np.int32 and label.shape == ()
      assert inputs.min() == -1.0 and inputs.max() == 1.0
      # Pixels are k / 127.5 - 1 for uint8 k.
      np.testing.assert_allclose((inputs + 1) * 127.5, np.round((inputs + 1) * 127.5), atol=1e-4)
      seen.add(inputs.tobytes())
  assert len(seen) == 40  # no image repeats across splits
  # The stored images are the generator's: the validation split is stream (seed, 1).
  images, labels = next(pr.generate(pr.lra_params(32), 8, seed=(0, 1)))
  expected = {(img.astype(np.float32).reshape(-1, 1) / 127.5 - 1).tobytes() for img in images}
  stored = {task.source(config, "validation")[i]["inputs"].tobytes() for i in range(8)}
  assert stored == expected
  with pytest.raises(ValueError, match="unknown split"):
    task.source(config, "dev")


def test_overridden_sizes_make_a_custom_config(tmp_path):
  config = _tiny_config("pathx", tmp_path, num_train=4, num_validation=2, num_test=2,
                        contour_length=9)
  builder = pathfinder.make_builder(config, 128)
  assert builder.builder_config.name == "custom128-cl9-4-2-2-seed0"
  source = pathfinder.TASKS["pathx"].source(config, "test")
  assert len(source) == 2
  assert source[0]["inputs"].shape == (128 * 128, 1)
  config.num_test = 0
  with pytest.raises(ValueError, match="at least one image"):
    pathfinder.make_builder(config, 128)
