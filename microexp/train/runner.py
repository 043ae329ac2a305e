"""Training a list of jobs under one recipe: chunk planning, the chunks, a recipe's own context.

`train_jobs` is the plain engine path (one config, its chunks under `ctx.ckpt_root`);
`train_recipe` trains jobs under another config (a search candidate, an ensemble member) in its
own checkpoint folder, with its own model and compiled steps: jobs of different recipes never
share a chunk, since a chunk is one compiled step (steps.StepSpec) of one model.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax
from absl import logging

from microexp.train import workdir as workdir_lib
from microexp.models import builder
from microexp.train import chunking
from microexp.train import loop
from microexp.train import parallel
from microexp.train import steps as steps_lib
from microexp.train import writers as writers_lib


def plan_chunks(ctx: loop.Context, jobs: list, steps_per_epoch: int) -> list[list]:
  """Chunks of jobs (chunking.py); the decision is kept in checkpoints/chunking.json."""
  tc = ctx.config.train
  mode = chunking.parse_fold_parallel(tc.get("fold_parallel", "auto"))
  if mode is False:
    return chunking.split(jobs, 1)
  path = ctx.ckpt_root / "chunking.json"
  key = chunking.decision_key(ctx.config, len(jobs), ctx.data)
  saved = workdir_lib.read_json(path) if path.exists() else {}
  if saved.get("key") == key:
    logging.info("Chunking from %s: fold_parallel=%s, chunks of %d.", path,
                 saved["fold_parallel"], saved["chunk"])
    return chunking.split(jobs, saved["chunk"] if saved["fold_parallel"] else 1)
  spec = steps_lib.StepSpec.from_config(ctx.config, steps_per_epoch=steps_per_epoch,
                                        num_classes=ctx.num_classes)
  size = chunking.fitting_chunk(ctx.model, spec, ctx.data, tc, len(jobs))
  decision = {"key": key, "fold_parallel": True, "chunk": size}
  mesh = parallel.make_mesh(size) if mode is None and size > 1 else None
  if mesh is not None and steps_lib.fold_group(spec, mesh) == 1:
    # CPU devices run a stacked chunk a fold at a time each: the per-fold program of a sequential
    # run, the folds spread over the devices, one dispatch per epoch. Nothing to measure.
    logging.info("fold_parallel='auto' on cpu: fold-parallel, chunks of %d (%d device(s), a fold "
                 "at a time on each: a sequential job's program, side by side).", size,
                 mesh.devices.size)
  elif mesh is not None:  # 'auto' where stacked folds are vmapped: measure both modes
    # A probe of 2 jobs per device, not the whole chunk: stacking more jobs only fills the device
    # better, and the probe stays cheap where fold-parallel loses (CPU: a whole chunk of a reduced
    # ResNet took 3.5 min of the 12 min README demo on a loaded 2-core machine).
    probe = min(size, 2 * jax.device_count())
    times = loop.seconds_per_job_epoch(
        ctx, {"sequential": jobs[:1], "fold_parallel": jobs[:probe]}, steps_per_epoch)
    seq, par = times["sequential"], times["fold_parallel"]
    decision.update(fold_parallel=chunking.prefer_parallel(seq, par), seconds_per_job_epoch={
        "sequential": seq, "fold_parallel": par, "probe_jobs": probe})
    logging.info("fold_parallel='auto' on %s: %.4f s per job-epoch sequential, %.4f s "
                 "fold-parallel (%d jobs stacked): %s.", jax.default_backend(), seq, par, probe,
                 f"fold-parallel, chunks of {size}" if decision["fold_parallel"] else "sequential")
  ctx.ckpt_root.mkdir(parents=True, exist_ok=True)
  workdir_lib.write_json_atomic(path, decision)
  return chunking.split(jobs, size if decision["fold_parallel"] else 1)


def train_jobs(ctx: loop.Context, jobs: list, *, epochs: int, steps_per_epoch: int,
               train_side: bool | None = None) -> list[dict]:
  """Trains `jobs` under `ctx.config` in chunks; one result dict per job, in job order.

  train_side: the training-side report (loop.train_chunk; None: its default)."""
  chunks = plan_chunks(ctx, jobs, steps_per_epoch)
  logging.info("%d chunk(s) of up to %d job(s) on %s.", len(chunks),
               max(len(c) for c in chunks), jax.default_backend())
  out, first = [], 0
  for chunk in chunks:
    name = f"jobs_{first:04d}-{first + len(chunk) - 1:04d}"
    first += len(chunk)
    out += loop.train_chunk(ctx, name, chunk, epochs=epochs, steps_per_epoch=steps_per_epoch,
                            train_side=train_side)
  return out


def steps_per_epoch(config, max_train: int) -> int:
  """Steps of an epoch of `config`'s batch size over the largest training set (`max_train`)."""
  return max(math.ceil(max_train / int(config.train.batch_size)), 1)


def recipe_context(ctx: loop.Context, config, ckpt_root: Path, *,
                   writers: writers_lib.CurveWriters | None = None) -> loop.Context:
  """`ctx` with another config: its own model, pretrained weights and checkpoint folder (and
  curve writers, if given)."""
  model = builder.from_config(config, ctx.num_classes)
  return dataclasses.replace(ctx, config=config, model=model, ckpt_root=Path(ckpt_root),
                             pretrained=builder.pretrained(model),
                             writers=writers if writers is not None else ctx.writers)


def train_recipe(ctx: loop.Context, config, jobs: list, ckpt_root: Path, *,
                 max_train: int, train_side: bool | None = None) -> list[dict]:
  """Trains `jobs` under `config` (its epochs, batch size, model...) in `ckpt_root`.

  max_train: the training-set size that fixes the steps per epoch (the OUTER folds' largest, also
  for inner folds: a candidate takes the same number of updates inside and outside).
  """
  # Curves under tensorboard/<the recipe's folder below checkpoints/>: candidates and members
  # that train the same (seed, fold) write apart.
  try:
    sub_dir = Path(ckpt_root).relative_to(ctx.ckpt_root)
  except ValueError:
    sub_dir = Path(Path(ckpt_root).name)
  writers = writers_lib.CurveWriters(ctx.writers.logdir / sub_dir, enabled=ctx.writers.enabled)
  sub = recipe_context(ctx, config, ckpt_root, writers=writers)
  try:
    return train_jobs(sub, jobs, epochs=int(config.train.epochs),
                      steps_per_epoch=steps_per_epoch(config, max_train), train_side=train_side)
  finally:
    writers.close()
