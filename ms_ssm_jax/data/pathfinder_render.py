"""Our own generator of Pathfinder images (Linsley et al. 2018, arXiv 1805.08315), in numpy.

A scene holds two *target* contours and a few shorter *distractor* contours. A contour is a
chain of straight paddles (dashes): each paddle starts `margin` past a pivot, is
`paddle_length` long, and the next pivot lies `margin` past its end, so consecutive paddles are
`2 * margin` apart. Each new paddle turns by an angle drawn with density proportional to
`cos(continuity * turn)**2` on `|turn| < pi / (2 * continuity)` (higher continuity: straighter),
among the turns that keep the paddle inside the image and away from everything drawn so far
(the occupancy test below). The two target contours start `seed_distance` apart and grow
together, one paddle each in turn. Markers (discs) go on one target's start and on the end of
the same target (label 1) or of the other target (label 0), so both classes show the same
two long contours and differ only in where the markers sit.

Occupancy: every paddle and marker owns the region within `margin` of it (its centre line or
disc), and regions of different contours, or of non-consecutive paddles of one contour, never
overlap; `extra_clearance` widens the gaps between different contours further. With
`extra_clearance = 0` different contours come as close as consecutive dashes of one contour (as
in the original generator), so only good continuation tells them apart; a positive
`extra_clearance` makes connectivity decidable by proximity alone, which the tests use to check
labels against the pixels. Scenes whose target contours get stuck are redrawn whole; every
rejection is blind to the label, so both classes share one distribution of contours.

Intensities follow the original: target paddles `snake_contrast * paddle_contrast`, distractor
paddles `snake_contrast`, markers 1, then each image is divided by its maximum.

Where we differ from the original code (same description, our own choices): turns are drawn
from continuous angles instead of pixel positions on a circle, occupancy is tested on exact
segment distances instead of dilated raster masks, and other contours also keep clear of the
marker discs (the original lets distractors touch a marker, a source of label noise).

Scenes for a batch of images are grown in lockstep: every step evaluates a fixed set of
candidate paddles for all images at once, so the Python loop runs over paddles, not images.
Images are rendered by supersampling (`antialias_scale**2` box-filtered subpixels per pixel).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import math
import multiprocessing
from typing import Iterator

import numpy as np

# Turn angles tried per growth step (one uniform draw inside each of this many equal bins).
_NUM_TURN_CANDIDATES = 16
# Random start positions tried per contour seed.
_NUM_SEED_CANDIDATES = 32
# Tries per distractor before it is left out (the original generator also tolerates this).
_DISTRACTOR_TRIES = 5
# Scenes whose target contours get stuck are redrawn, in at most this many rounds of at most
# this many scenes.
_MAX_TARGET_RETRIES = 50
_MAX_SCENES_PER_ROUND = 4096


@dataclasses.dataclass(frozen=True)
class PathfinderParams:
  """Generator parameters, in pixels unless stated (names follow Linsley et al. 2018)."""

  image_size: int
  contour_length: int  # paddles per target contour (LRA: 14, the hardest level)
  paddle_length: float
  paddle_thickness: float
  paddle_margins: tuple[int, ...]  # one drawn per image
  marker_radius: float
  seed_distance: float  # between the start points of the two target contours
  continuity: float
  distractor_budget: float  # number of distractors = ceil(budget / (contour_length / 3))
  snake_contrast: float  # intensity of distractor paddles, and scale of target paddles
  paddle_contrast: float  # target paddles are drawn at snake_contrast * paddle_contrast
  antialias_scale: int = 2
  padding: int = 1  # border rows/columns that stay empty
  extra_clearance: float = 0.0

  def __post_init__(self):
    positive = ("image_size", "contour_length", "paddle_length", "paddle_thickness",
                "marker_radius", "seed_distance", "continuity", "snake_contrast", "paddle_contrast",
                "antialias_scale")
    for name in positive:
      if not getattr(self, name) > 0:
        raise ValueError(f"PathfinderParams.{name} must be > 0, got {getattr(self, name)}")
    if self.continuity < 1:
      raise ValueError(f"continuity must be >= 1 (turns of at most 90 degrees), "
                       f"got {self.continuity}")
    if not self.paddle_margins or min(self.paddle_margins) <= 0:
      raise ValueError(f"paddle_margins must be positive integers, got {self.paddle_margins}")
    if self.distractor_budget < 0 or self.extra_clearance < 0 or self.padding < 0:
      raise ValueError("distractor_budget, extra_clearance and padding must be >= 0")
    closest = 2 * self.marker_radius + self.clearance(max(self.paddle_margins))
    if self.seed_distance < closest:
      raise ValueError(f"seed_distance {self.seed_distance} puts the two markers closer than "
                       f"2 * marker_radius + clearance = {closest}; increase it")

  @property
  def distractor_length(self) -> int:
    """Paddles per distractor contour (a third of the target length, at least one)."""
    return max(1, self.contour_length // 3)

  @property
  def num_distractors(self) -> int:
    return math.ceil(self.distractor_budget / (self.contour_length / 3))

  def clearance(self, margin):
    """Smallest distance between centre lines of paddles of different contours."""
    return 2 * margin + self.extra_clearance


@dataclasses.dataclass
class Scenes:
  """Geometry of a batch of B scenes with at most S paddles each.

  segments: (B, S, 2, 2) float, paddle start and end points as (y, x); owner: (B, S) int,
  the contour of each paddle (0 and 1 are the targets, -1 marks unused rows);
  tips: (B, 4, 2), start of target 0, start of target 1, end of target 0, end of target 1;
  markers: (B, 2, 2), the two marker centres; labels: (B,) int32; margins: (B,) float.
  """

  segments: np.ndarray
  owner: np.ndarray
  tips: np.ndarray
  markers: np.ndarray
  labels: np.ndarray
  margins: np.ndarray


def _point_segment_distance(p, a, b):
  """Distance from points p to segments [a, b]; all (..., 2) and broadcast."""
  ab_y, ab_x = b[..., 0] - a[..., 0], b[..., 1] - a[..., 1]
  ap_y, ap_x = p[..., 0] - a[..., 0], p[..., 1] - a[..., 1]
  t = (ap_y * ab_y + ap_x * ab_x) / np.maximum(ab_y * ab_y + ab_x * ab_x, 1e-12)
  t = np.clip(t, 0.0, 1.0)
  d_y, d_x = ap_y - t * ab_y, ap_x - t * ab_x
  return np.sqrt(d_y * d_y + d_x * d_x)


def _cross(u, v):
  return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _segment_distance(a0, a1, b0, b1):
  """Distance between segments [a0, a1] and [b0, b1]; all (..., 2) and broadcast."""
  d = np.minimum(
      np.minimum(_point_segment_distance(a0, b0, b1), _point_segment_distance(a1, b0, b1)),
      np.minimum(_point_segment_distance(b0, a0, a1), _point_segment_distance(b1, a0, a1)))
  da, db = a1 - a0, b1 - b0
  crossing = ((_cross(da, b0 - a0) * _cross(da, b1 - a0) < 0) &
              (_cross(db, a0 - b0) * _cross(db, a1 - b0) < 0))
  return np.where(crossing, 0.0, d)


def _too_close(starts, ends, segments, need, paddle_length):
  """Whether candidate paddles come closer to any paddle than that paddle's `need`.

  starts, ends: (M, K, 2); segments: (M, S, 2, 2); need: (M, S), 0 for paddles to ignore.
  Returns (M, K). Paddles lie within paddle_length / 2 of their midpoints, so only pairs with
  midpoints closer than need + paddle_length get the exact (costlier) segment distance.
  """
  mid = (starts + ends) / 2
  seg_mid = segments.mean(2)
  gap_y = mid[:, :, None, 0] - seg_mid[:, None, :, 0]
  gap_x = mid[:, :, None, 1] - seg_mid[:, None, :, 1]
  reach = np.where(need > 0, need + paddle_length, 0.0)[:, None, :]
  near = gap_y * gap_y + gap_x * gap_x < reach * reach
  m, k, s = np.nonzero(near)
  dist = _segment_distance(starts[m, k], ends[m, k], segments[m, s, 0], segments[m, s, 1])
  blocked = np.zeros(starts.shape[:2], bool)
  hit = dist < need[m, s]
  blocked[m[hit], k[hit]] = True
  return blocked


def _unit(theta):
  return np.stack([np.sin(theta), np.cos(theta)], -1)


class _SceneBuilder:
  """Grows the contours of B scenes together; rows of `alive` are still valid."""

  def __init__(self, params: PathfinderParams, margins: np.ndarray, rng: np.random.Generator):
    p = params
    self.p = p
    self.rng = rng
    self.margins = margins
    self.clearance = p.clearance(margins)
    b = len(margins)
    max_paddles = 2 * p.contour_length + p.num_distractors * p.distractor_length
    self.segments = np.zeros((b, max_paddles, 2, 2))
    self.owner = np.full((b, max_paddles), -1, np.int32)
    self.count = np.zeros(b, np.int64)
    self.tips = np.zeros((b, 4, 2))
    self.tip_set = np.zeros((b, 4), bool)
    self.alive = np.ones(b, bool)

  def free(self, rows, starts, ends, contour, skip):
    """Whether candidate paddles keep clear of the border, other paddles and markers.

    rows: (M,) scene indices; starts, ends: (M, K, 2); contour: the candidates' contour id;
    skip: (M,) index of the paddle they attach to (exempt from the test), or -1.
    Returns (M, K) bool.
    """
    p = self.p
    lo, hi = p.padding, p.image_size - 1 - p.padding
    inside = np.all((starts >= lo) & (starts <= hi) & (ends >= lo) & (ends <= hi), -1)
    used = int(self.count[rows].max(initial=0))
    slots = np.arange(used)
    active = (slots < self.count[rows, None]) & (slots != skip[:, None])
    # extra_clearance separates contours; a contour only keeps clear of itself by 2 * margin.
    own = self.owner[rows, :used] == contour
    need = np.where(own, 2 * self.margins[rows, None], self.clearance[rows, None]) * active
    clear_of_paddles = ~_too_close(starts, ends, self.segments[rows, :used], need, p.paddle_length)
    tip_owner = np.array([0, 1, 0, 1])
    tip_active = self.tip_set[rows] & (tip_owner != contour)[None, :]
    tip_dist = _point_segment_distance(self.tips[rows][:, None, :, :], starts[:, :, None],
                                       ends[:, :, None])
    tip_need = (p.marker_radius - self.margins[rows] + self.clearance[rows])[:, None, None]
    clear_of_markers = np.all((tip_dist >= tip_need) | ~tip_active[:, None, :], -1)
    return inside & clear_of_paddles & clear_of_markers

  def append(self, rows, starts, ends, contour):
    slot = self.count[rows]
    self.segments[rows, slot, 0] = starts
    self.segments[rows, slot, 1] = ends
    self.owner[rows, slot] = contour
    self.count[rows] += 1
    return slot

  def seed_targets(self):
    """Places the first paddle of both targets, `seed_distance` apart, near the centre."""
    p, rng, b = self.p, self.rng, len(self.margins)
    q = _NUM_SEED_CANDIDATES
    # The first start point avoids a border of 2 * seed_distance, as in the original.
    lo = min(2 * p.seed_distance, (p.image_size - 1) / 2)
    hi = p.image_size - 1 - lo
    tip0 = rng.uniform(lo, hi, (b, q, 2))
    tip1 = tip0 + p.seed_distance * _unit(rng.uniform(0, 2 * np.pi, (b, q)))
    theta = rng.uniform(0, 2 * np.pi, (b, q, 2))
    end0 = tip0 + p.paddle_length * _unit(theta[..., 0])
    end1 = tip1 + p.paddle_length * _unit(theta[..., 1])
    lim_lo, lim_hi = p.padding, p.image_size - 1 - p.padding
    pts = np.stack([tip0, tip1, end0, end1], -2)
    inside = np.all((pts >= lim_lo) & (pts <= lim_hi), (-2, -1))
    clearance = self.clearance[:, None]
    apart = _segment_distance(tip0, end0, tip1, end1) >= clearance
    tip_need = p.marker_radius - self.margins[:, None] + clearance
    apart &= _point_segment_distance(tip0, tip1, end1) >= tip_need
    apart &= _point_segment_distance(tip1, tip0, end0) >= tip_need
    ok = inside & apart
    pick = np.argmax(ok, 1)
    rows = np.arange(b)
    self.alive &= ok[rows, pick]
    self.tips[:, 0], self.tips[:, 1] = tip0[rows, pick], tip1[rows, pick]
    self.tip_set[:, :2] = True
    heads = []
    for contour, (start, end) in enumerate([(tip0, end0), (tip1, end1)]):
      slot = self.append(rows, start[rows, pick], end[rows, pick], contour)
      direction = theta[rows, pick, contour]
      pivot = end[rows, pick] + self.margins[:, None] * _unit(direction)
      heads.append((pivot, direction, slot))
    return heads

  def seed(self, rows, contour):
    """Places the first paddle of a new contour at a free random spot; returns its head."""
    p, rng, m = self.p, self.rng, len(rows)
    q = _NUM_SEED_CANDIDATES
    starts = rng.uniform(p.padding, p.image_size - 1 - p.padding, (m, q, 2))
    theta = rng.uniform(0, 2 * np.pi, (m, q))
    ends = starts + p.paddle_length * _unit(theta)
    ok = self.free(rows, starts, ends, contour, np.full(m, -1))
    pick = np.argmax(ok, 1)
    found = ok[np.arange(m), pick]
    idx = np.arange(m)[found]
    slot = self.append(rows[found], starts[idx, pick[found]], ends[idx, pick[found]], contour)
    direction = theta[idx, pick[found]]
    pivot = ends[idx, pick[found]] + self.margins[rows[found], None] * _unit(direction)
    return found, (pivot, direction, slot)

  def extend(self, rows, contour, head):
    """Adds one paddle to a contour in each of `rows`; returns which succeeded and new heads."""
    p, rng = self.p, self.rng
    pivot, direction, slot = head
    m, k = len(rows), _NUM_TURN_CANDIDATES
    max_turn = np.pi / (2 * p.continuity)
    edges = np.linspace(-max_turn, max_turn, k + 1)
    turn = edges[:-1] + rng.random((m, k)) * (edges[1] - edges[0])
    theta = direction[:, None] + turn
    unit = _unit(theta)
    margin = self.margins[rows, None, None]
    starts = pivot[:, None] + margin * unit
    ends = starts + p.paddle_length * unit
    weight = np.cos(p.continuity * turn)**2 * self.free(rows, starts, ends, contour, slot)
    total = weight.sum(1)
    found = total > 0
    cdf = np.cumsum(weight, 1) / np.where(found, total, 1)[:, None]
    pick = np.minimum(np.sum(cdf < rng.random((m, 1)), 1), k - 1)
    idx = np.arange(m)[found]
    pick = pick[found]
    new_slot = self.append(rows[found], starts[idx, pick], ends[idx, pick], contour)
    new_direction = theta[idx, pick]
    new_pivot = ends[idx, pick] + margin[idx, 0] * unit[idx, pick]
    return found, (new_pivot, new_direction, new_slot)

  def grow_targets(self):
    heads = self.seed_targets()
    for _ in range(self.p.contour_length - 1):
      for contour in (0, 1):
        rows = np.flatnonzero(self.alive)
        pivot, direction, slot = heads[contour]
        found, new = self.extend(rows, contour, (pivot[rows], direction[rows], slot[rows]))
        self.alive[rows[~found]] = False
        pivot[rows[found]], direction[rows[found]], slot[rows[found]] = new
    rows = np.arange(len(self.margins))
    for contour in (0, 1):
      self.tips[:, 2 + contour] = self.segments[rows, heads[contour][2], 1]
    self.tip_set[:] = True
    self._check_end_markers()

  def _check_end_markers(self):
    """Drops scenes where a target's end marker would touch the other target or marker."""
    p, segs = self.p, self.segments
    tip_need = p.marker_radius - self.margins + self.clearance
    for end_tip, other in ((2, 1), (3, 0)):
      dist = _point_segment_distance(self.tips[:, end_tip, None], segs[:, :, 0], segs[:, :, 1])
      near = (dist < tip_need[:, None]) & (self.owner == other)
      self.alive &= ~near.any(1)
      tip_dist = np.linalg.norm(
          self.tips[:, end_tip] - self.tips[:, [other, other + 2]].transpose(1, 0, 2), axis=-1)
      self.alive &= np.all(tip_dist >= 2 * p.marker_radius + self.clearance, 0)

  def add_distractors(self):
    """Adds distractor contours; one that gets stuck is removed and tried again elsewhere."""
    p = self.p
    slots = np.arange(self.segments.shape[1])
    for contour in range(2, 2 + p.num_distractors):
      placed = np.zeros(len(self.margins), bool)
      for _ in range(_DISTRACTOR_TRIES):
        rows = np.flatnonzero(self.alive & ~placed)
        if rows.size == 0:
          break
        first_slot = self.count[rows].copy()
        found, head = self.seed(rows, contour)
        grown_rows = rows[found]
        for _ in range(p.distractor_length - 1):
          found, head = self.extend(grown_rows, contour, head)
          grown_rows = grown_rows[found]
        placed[grown_rows] = True
        stuck = ~np.isin(rows, grown_rows)
        stuck_rows = rows[stuck]
        erase = slots[None, :] >= first_slot[stuck, None]
        self.owner[stuck_rows] = np.where(erase, -1, self.owner[stuck_rows])
        self.count[stuck_rows] = first_slot[stuck]


def sample_scenes(params: PathfinderParams, labels: np.ndarray, rng: np.random.Generator) -> Scenes:
  """Samples one scene per label (1: markers on the two ends of one contour).

  Scenes whose target contours get stuck are redrawn, with choices that never depend on the
  label, so both classes see the same distribution of contours.
  """
  labels = np.asarray(labels, np.int32)
  b = len(labels)
  p = params
  max_paddles = 2 * p.contour_length + p.num_distractors * p.distractor_length
  segments = np.zeros((b, max_paddles, 2, 2))
  owner = np.full((b, max_paddles), -1, np.int32)
  tips = np.zeros((b, 4, 2))
  margins = np.zeros(b)
  todo = np.arange(b)
  acceptance = 0.5
  for _ in range(_MAX_TARGET_RETRIES):
    if todo.size == 0:
      break
    # Draw enough scenes that one round usually fills every open slot.
    num_draws = min(int(todo.size / acceptance * 1.2) + 8, _MAX_SCENES_PER_ROUND)
    draw_margins = rng.choice(np.asarray(p.paddle_margins, float), size=num_draws)
    builder = _SceneBuilder(p, draw_margins, rng)
    builder.grow_targets()
    builder.add_distractors()
    acceptance = max(builder.alive.mean(), 0.01)
    done = np.flatnonzero(builder.alive)[:todo.size]
    filled, todo = todo[:done.size], todo[done.size:]
    segments[filled] = builder.segments[done]
    owner[filled] = builder.owner[done]
    tips[filled] = builder.tips[done]
    margins[filled] = draw_margins[done]
  if todo.size:
    raise RuntimeError(
        f"Pathfinder generation failed: target contours did not fit after "
        f"{_MAX_TARGET_RETRIES} rounds with {p}. Lower contour_length, paddle_length or "
        f"extra_clearance, or enlarge image_size.")
  segments[owner < 0] = 0.0
  # Marker 1 sits on the start of a random target; marker 2 on the end of the same target
  # (label 1) or of the other one (label 0).
  first = rng.integers(0, 2, b)
  second = np.where(labels == 1, first, 1 - first)
  rows = np.arange(b)
  markers = np.stack([tips[rows, first], tips[rows, 2 + second]], 1)
  return Scenes(segments, owner, tips, markers, labels, margins)


def _splat(canvas, corner, values):
  """Max-accumulates (N, W, W) patches into canvas (B, H, H), in place.

  corner: (N, 3) int, the image index and the (y, x) pixel of each patch's top-left corner.
  """
  b, size, _ = canvas.shape
  w = values.shape[-1]
  offsets = np.arange(w)
  ys = corner[:, 1, None, None] + offsets[None, :, None]
  xs = corner[:, 2, None, None] + offsets[None, None, :]
  inside = (ys >= 0) & (ys < size) & (xs >= 0) & (xs < size) & (values > 0)
  flat = (corner[:, 0, None, None] * size + ys) * size + xs
  np.maximum.at(canvas.reshape(-1), flat[inside], values[inside])


def _subpixel_offsets(scale: int) -> np.ndarray:
  """(scale**2, 2) centres of the subpixels of a pixel, relative to the pixel centre."""
  centres = (np.arange(scale) + 0.5) / scale - 0.5
  return np.stack(np.meshgrid(centres, centres, indexing="ij"), -1).reshape(-1, 2)


def _coverage(distance_to_edge, scale):
  """Box-filtered pixel coverage from (..., scale**2) signed subpixel distances inside."""
  return np.clip(distance_to_edge * scale + 0.5, 0.0, 1.0).mean(-1)


def render(params: PathfinderParams, scenes: Scenes) -> np.ndarray:
  """Renders scenes to (B, H, W) uint8 images, normalized so each image's maximum is 255."""
  p = params
  b, s = scenes.owner.shape
  canvas = np.zeros((b, p.image_size, p.image_size))
  sub = _subpixel_offsets(p.antialias_scale)
  image_of = np.broadcast_to(np.arange(b)[:, None], (b, s))

  rows, cols = np.nonzero(scenes.owner >= 0)
  seg = scenes.segments[rows, cols]
  width = int(math.ceil(p.paddle_length + p.paddle_thickness)) + 3
  corner = np.floor(seg.min(1) - p.paddle_thickness / 2).astype(np.int64) - 1
  grid = np.stack(np.meshgrid(np.arange(width), np.arange(width), indexing="ij"), -1)
  points = (corner[:, None, None, None] + grid[None, :, :, None] + sub).astype(float)
  dist = _point_segment_distance(points, seg[:, None, None, None, 0], seg[:, None, None, None, 1])
  is_target = scenes.owner[rows, cols] < 2
  contrast = np.where(is_target, p.snake_contrast * p.paddle_contrast, p.snake_contrast)
  values = _coverage(p.paddle_thickness / 2 - dist, p.antialias_scale) * contrast[:, None, None]
  _splat(canvas, np.concatenate([image_of[rows, cols, None], corner], 1), values)

  centres = scenes.markers.reshape(-1, 2)
  width = int(math.ceil(2 * p.marker_radius)) + 3
  corner = np.floor(centres - p.marker_radius).astype(np.int64) - 1
  grid = np.stack(np.meshgrid(np.arange(width), np.arange(width), indexing="ij"), -1)
  points = corner[:, None, None, None] + grid[None, :, :, None] + sub
  dist = np.linalg.norm(points - centres[:, None, None, None], axis=-1)
  values = _coverage(p.marker_radius - dist, p.antialias_scale)
  image_idx = np.repeat(np.arange(b), 2)[:, None]
  _splat(canvas, np.concatenate([image_idx, corner], 1), values)

  canvas /= canvas.max((1, 2), keepdims=True)
  return np.round(canvas * 255).astype(np.uint8)


def lra_params(image_size: int, contour_length: int = 14) -> PathfinderParams:
  """The generator settings of the LRA Pathfinder levels (Linsley et al. 2018; Tay et al. 2021).

  32 (Pathfinder) and 128 (Path-X) follow the original settings. The original 64x64 settings
  are not published with LRA; ours sit between the two: thickness 1, margins 1-2, marker
  radius 2, seed distance 12, continuity 1.4, distractor budget 27, snake contrast 1.
  """
  common = dict(image_size=image_size, contour_length=contour_length, paddle_length=2.0,
                paddle_contrast=0.75, antialias_scale=2)
  if image_size == 32:
    return PathfinderParams(paddle_thickness=0.5, paddle_margins=(1,), marker_radius=1.5,
                            seed_distance=7.0, continuity=1.0, distractor_budget=20.0,
                            snake_contrast=2.0, **common)
  if image_size == 64:
    return PathfinderParams(paddle_thickness=1.0, paddle_margins=(1, 2), marker_radius=2.0,
                            seed_distance=12.0, continuity=1.4, distractor_budget=27.0,
                            snake_contrast=1.0, **common)
  if image_size == 128:
    return PathfinderParams(paddle_thickness=1.5, paddle_margins=(2, 3), marker_radius=3.0,
                            seed_distance=20.0, continuity=1.8, distractor_budget=35.0,
                            snake_contrast=0.9, **common)
  raise ValueError(f"no Pathfinder settings for image_size={image_size}; use 32, 64 or 128, "
                   f"or build PathfinderParams yourself")


# Images are generated in chunks of this many, each from its own random stream, so that the
# i-th image of a dataset does not depend on how the work is spread over processes.
CHUNK_SIZE = 256


def generate_chunk(params: PathfinderParams, seed: int | tuple[int, ...], chunk: int,
                   count: int = CHUNK_SIZE) -> tuple[np.ndarray, np.ndarray]:
  """Images (count, H, W) uint8 and labels (count,) int32 of chunk `chunk` of stream `seed`.

  Each chunk holds count // 2 negatives and the rest positives, in random order.
  """
  rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), chunk])
  labels = rng.permutation(np.arange(count) % 2).astype(np.int32)
  return render(params, sample_scenes(params, labels, rng)), labels


def generate(params: PathfinderParams, num_images: int, seed: int | tuple[int, ...], *,
             num_workers: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Yields (images, labels) chunks, in order, for `num_images` images of stream `seed`.

  The output depends only on (params, num_images, seed), not on num_workers: chunks are
  generated in `num_workers` spawned processes and yielded in order.
  """
  counts = [min(CHUNK_SIZE, num_images - start) for start in range(0, num_images, CHUNK_SIZE)]
  if num_workers <= 1:
    for chunk, count in enumerate(counts):
      yield generate_chunk(params, seed, chunk, count)
    return
  # Spawned, not forked: the parent may hold JAX threads that a fork would copy broken.
  context = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=context) as pool:
    pending = collections.deque()
    for chunk, count in enumerate(counts):
      pending.append(pool.submit(generate_chunk, params, seed, chunk, count))
      # A bounded window keeps memory flat when the consumer (a file writer) is slower.
      if len(pending) >= 2 * num_workers:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()
