"""What the engine costs beyond its training steps: a run with default bookkeeping vs the bare
epoch calls of the same jobs.

    python benchmarks/bookkeeping.py --config=configs/ststnet_megc.py:synthetic \\
        --config.train.epochs=20 --config.train.seeds='(0,)'

Prints (1) the same jobs' epochs as bare `steps.train_epoch` calls (placement, init and the
first call's compile excluded), (2) `train_and_evaluate` wall time with the defaults (evaluation
when due, TensorBoard, time-based async checkpoints, progress, selection, results; no final
model; the epoch step is already compiled by (1)), and the ratio (2) / (1): what the engine costs
beyond its training steps.
fold_parallel='auto' is run as False (sequential) on both sides; pass True to compare stacked.
"""

from __future__ import annotations

import math
import tempfile
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from microexp.data import registry
from microexp.models import builder
from microexp.train import engine
from microexp.train import folds as folds_lib
from microexp.train import inputs
from microexp.train import jobs as jobs_lib
from microexp.train import loop

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config.", lock_config=False)


def bare_epochs(config, arrays) -> tuple[float, float]:
  """(seconds of all jobs' epochs as bare epoch calls, seconds of the first call's compile)."""
  tc = config.train
  data, subset = inputs.prepare_data(arrays, config.dataset.classes)
  jobs = [jobs_lib.Job(s, i, f) for s in tc.seeds
          for i, f in enumerate(folds_lib.make_folds(data["subject"], tc, s))]
  spe = max(math.ceil(max(int(j.fold.masks(data["subject"])[0].sum()) for j in jobs)
                      / tc.batch_size), 1)
  ctx = loop.Context(config, builder.from_config(config, subset.num_classes), data,
                     subset.num_classes, None, None, None, None)
  size = len(jobs) if tc.fold_parallel is True else 1
  total, compile_s = 0.0, 0.0
  for start in range(0, len(jobs), size):
    c = loop.prepare_chunk(ctx, jobs[start:start + size], spe)
    jax.block_until_ready(c.state)
    state = c.state
    t0 = time.perf_counter()
    for epoch in range(int(tc.epochs)):
      state, metrics = c.steps.train_epoch(state, c.plan, c.data, epoch)
      if start == 0 and epoch == 0:
        jax.block_until_ready(metrics)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
    jax.block_until_ready(metrics)
    total += time.perf_counter() - t0
  return total, compile_s


def main(argv):
  del argv
  from microexp.train import cpu_devices  # pylint: disable=g-import-not-at-top
  cpu_devices.configure(cpu_devices.count())  # as main.py: one device per core by default
  config = FLAGS.config
  config.train.final_seeds = []
  if config.train.fold_parallel == "auto":  # both sides must chunk alike: sequential by default
    config.train.fold_parallel = False
  arrays = registry.load(config.dataset)
  with jax.threefry_partitionable(False):
    # Bare first: it compiles the epoch step, which the engine then finds in its cache.
    bare_s, compile_s = bare_epochs(config, arrays)
    with tempfile.TemporaryDirectory() as workdir:
      t0 = time.perf_counter()
      engine.train_and_evaluate(config, arrays, workdir)
      run_s = time.perf_counter() - t0
  jobs_epochs = f"{len(config.train.seeds)} seed(s), {config.train.epochs} epochs"
  print(f"engine (defaults, {jobs_epochs}, epoch step already compiled): {run_s:.1f} s; bare "
        f"epoch calls: {bare_s:.1f} s (compile {compile_s:.1f} s excluded); engine / bare = "
        f"{run_s / bare_s:.2f}x")


if __name__ == "__main__":
  app.run(main)
