"""Prints how many Pathfinder images per second our generator makes, for each image size.

  python scripts/bench_pathfinder_gen.py --num_images=1024 --num_workers=2
"""

import time

from absl import app
from absl import flags

from ms_ssm_jax.data import pathfinder_render

_NUM_IMAGES = flags.DEFINE_integer("num_images", 1024, "Images generated per size.")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 1, "Generator processes.")
_SIZES = flags.DEFINE_list("sizes", ["32", "64", "128"], "Image sizes.")


def main(argv):
  del argv
  for size in map(int, _SIZES.value):
    params = pathfinder_render.lra_params(size)
    # Includes starting the worker processes, as a real data preparation would.
    start = time.perf_counter()
    count = 0
    for _, labels in pathfinder_render.generate(params, _NUM_IMAGES.value, seed=0,
                                                num_workers=_NUM_WORKERS.value):
      count += len(labels)
    seconds = time.perf_counter() - start
    print(f"{size}x{size}: {count} images in {seconds:.1f} s = {count / seconds:.0f} images/s "
          f"({_NUM_WORKERS.value} worker(s))")


if __name__ == "__main__":
  app.run(main)
