"""Where the engine's train step spends its time: the same epoch step with one component removed
at a time (an ablation profile), on the configs/ststnet_megc.py recipe.

    python benchmarks/step_profile.py                  # STSTNet, batch 32, 28x28x3, 14 steps
    python benchmarks/step_profile.py --folds=8 --repeats=7

Rows (each its own compiled `steps.train_epoch`, timed side by side, medians of --repeats epochs):
  full            the recipe as shipped (flip_h, crop 2, rotation 8, mixup 0.2; BN + dropout;
                  AdamW with warmup-cosine; class-balanced label-smoothed CE)
  -rotation       without the rotation
  -augment        without any augmentation (no flip, crop, rotation, mixup)
  -augment -bn/do the bare network (no BatchNorm, no dropout) and no augmentation
  -... sgd        and plain SGD at a constant rate instead of AdamW + schedule
The difference between rows is what a component costs. ms per step = per fold-step; with
--folds > 1 the folds are stacked (vmap) and the figure is divided by the fold count.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

import jax
import numpy as np


def _config():
  from configs import ststnet_megc  # pylint: disable=g-import-not-at-top
  return ststnet_megc.get_config()


def time_step(config, model_kwargs: dict, *, folds: int, steps: int, repeats: int,
              n: int = 442) -> float:
  """Median seconds per fold-step of the engine's epoch step for `config` on random flow."""
  from microexp import models  # pylint: disable=g-import-not-at-top
  from microexp.train import parallel  # pylint: disable=g-import-not-at-top
  from microexp.train import steps as steps_lib  # pylint: disable=g-import-not-at-top

  model = models.get("ststnet", num_classes=3, **model_kwargs)
  rng = np.random.default_rng(0)
  size = 28
  data_host = {"inputs": rng.normal(size=(n, size, size, 3)).astype(np.float32),
               "labels": rng.integers(0, 3, n).astype(np.int32),
               "dataset_index": rng.integers(0, 3, n).astype(np.int32)}
  mesh = parallel.make_mesh(folds)
  length = parallel.padded_folds(folds, mesh)
  spec = steps_lib.StepSpec.from_config(config, steps_per_epoch=steps, num_classes=3)
  st = steps_lib.make_steps(model, spec, mesh)
  plan = parallel.put_folds({"key": np.asarray(steps_lib.fold_keys(0, range(length))),
                             "train_mask": rng.random((length, n)) < 0.98,
                             "n_train": np.full(length, int(0.98 * n), np.int32),
                             "class_weights": np.ones((length, 3, 3), np.float32)}, mesh)
  data = parallel.put_replicated(data_host, mesh)
  state = st.init(plan["key"], data_host["inputs"][:1], None)
  state, m = st.train_epoch(state, plan, data, 0)  # compile + warm-up
  jax.block_until_ready(m)
  times = []
  for e in range(1, repeats + 1):
    t0 = time.perf_counter()
    state, m = st.train_epoch(state, plan, data, e)
    jax.block_until_ready((state, m))
    times.append(time.perf_counter() - t0)
  return statistics.median(times) / (steps * folds)


def variants():
  """(name, config, model kwargs) of the ablation rows."""
  out = []
  full = _config()
  out.append(("full", full, {"batch_norm": True, "dropout": 0.5}))
  c = _config()
  c.train.augment.rotation = 0.0
  out.append(("-rotation", c, {"batch_norm": True, "dropout": 0.5}))
  c = _config()
  c.train.augment.update({"flip_h": False, "crop": 0, "rotation": 0.0, "mixup": 0.0})
  out.append(("-augment", c, {"batch_norm": True, "dropout": 0.5}))
  out.append(("-augment -bn/do", c, {}))
  c = _config()
  c.train.augment.update({"flip_h": False, "crop": 0, "rotation": 0.0, "mixup": 0.0})
  c.train.optimizer, c.train.schedule, c.train.warmup_epochs = "sgd", "constant", 0.0
  c.train.weight_decay, c.train.grad_clip = 0.0, 0.0
  out.append(("-augment -bn/do sgd", c, {}))
  return out


def main(argv=None) -> list[tuple[str, float]]:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--folds", type=int, default=1)
  p.add_argument("--steps", type=int, default=14)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--only", default="", help="comma-separated row names (default: all)")
  args = p.parse_args(argv)
  only = {s.strip() for s in args.only.split(",") if s.strip()}
  rows = []
  with jax.threefry_partitionable(False):
    for name, config, kwargs in variants():
      if only and name not in only:
        continue
      dt = time_step(config, kwargs, folds=args.folds, steps=args.steps, repeats=args.repeats)
      rows.append((name, dt))
      print(f"  {name:22s} {1e3 * dt:8.2f} ms per fold-step", flush=True)
  print(f"| step ({args.folds} fold(s), {args.steps} steps/epoch, batch 32, 28x28x3) | ms |")
  print("|---|---:|")
  for name, dt in rows:
    print(f"| {name} | {1e3 * dt:.2f} |")
  return rows


if __name__ == "__main__":
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
  main()
