"""The training engine: LOSO or fixed-split training of many folds at once, then reporting.

    run(config, workdir)                      loads `config.dataset` through the registry, then
    train_and_evaluate(config, arrays, workdir)   works on in-memory arrays (tests pass fake ones)

A *job* is one (seed, fold) (jobs.py). Jobs are trained in chunks (chunking.py): fold-parallel
chunks stack as many jobs as fit in device memory (or `fold_chunk`), sequential chunks hold one;
'auto' measures both. A chunk's models are stacked on a leading fold axis, an epoch of steps is
one `jax.jit` call, `jax.vmap`-ed over the folds and sharded over a ('fold', 'data') device mesh
(steps.py, parallel.py); the loop (loop.py) reads results back only at sync points, selects the
reported epoch (selection.py) and checkpoints on a time budget (checkpoint.py). Every random draw
derives from (seed, fold index, epoch, step), so the chunking changes nothing but speed, and a
killed run resumes exactly. See docs/training.md.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import jax
import numpy as np
from absl import logging

from microexp.train import workdir as workdir_lib
from microexp.models import builder
from microexp.train import checkpoint as checkpoint_lib
from microexp.train import folds as folds_lib
from microexp.train import jobs as jobs_lib
from microexp.train import loop
from microexp.train import progress as progress_lib
from microexp.train import ensemble as ensemble_lib
from microexp.train import protocols
from microexp.train import runner
from microexp.train import search as search_lib
from microexp.train import train_eval
from microexp.train import tasks as tasks_lib
from microexp.train import writers as writers_lib

# Re-exported: what callers of the engine catch.
NaNLossError = loop.NaNLossError
StopRequested = loop.StopRequested
# Config fields that may change between a killed run and its restart (they change no result).
_RESUME_FREE = ("stop_after_epochs", "tensorboard", "checkpoint_every_s", "memory_budget_gb")


def _check_resume_config(ckpt_root: Path, config) -> None:
  """Refuses to resume a workdir that was started with a different training config."""
  cfg = workdir_lib.config_dict(config)
  for key in _RESUME_FREE:
    cfg["train"].pop(key, None)
  path = ckpt_root / "config.json"
  if path.exists() and workdir_lib.read_json(path) != cfg:
    raise ValueError(f"{path} records a run with a different config; use a new --workdir (or "
                     "delete the old one) to train this config.")
  workdir_lib.write_json_atomic(path, cfg)


plan_chunks = runner.plan_chunks  # re-exported


def train_and_evaluate(config, arrays: dict[str, np.ndarray], workdir: str | Path) -> dict | None:
  """Trains every (seed, fold), writes the workdir outputs, returns the results dict.

  Returns None when stopped early by `config.train.stop_after_epochs`; exits with status
  128 + signal after saving when stopped by SIGTERM / SIGINT.
  """
  # Partitionable threefry compiles ~5x slower on XLA CPU (10 s for one jax.random.uniform on
  # this project's machines); every key here is per fold, so the classic scheme loses nothing.
  with jax.threefry_partitionable(False), checkpoint_lib.StopSignals() as signals:
    try:
      return _train_and_evaluate(config, arrays, workdir, signals)
    except StopRequested as e:
      logging.warning("%s; rerun the same command to resume.", e)
      if e.signum is not None:
        raise SystemExit(128 + e.signum) from e
      return None


def _train_and_evaluate(config, arrays, workdir, signals):
  t_start = time.time()
  checkpoint_lib.quiet_orbax_logs()
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  tc = config.train
  if "checkpoint_every" in tc:  # an epoch count, before checkpoints went on a time budget
    logging.warning("config.train.checkpoint_every is no longer read; checkpoints are taken every "
                    "config.train.checkpoint_every_s seconds (%s).",
                    tc.get("checkpoint_every_s", 120.0))
  task = tasks_lib.from_config(tc)
  _check_task(task, config)
  data, class_names = task.prepare(arrays, config)  # the K output names
  k = len(class_names)
  data = protocols.qualify(data, tc.protocol)  # cross-dataset: 'casme2/sub01'
  seeds = [int(s) for s in tc.seeds]
  jobs = []
  for seed in seeds:
    jobs += [jobs_lib.Job(seed, i, f)
             for i, f in enumerate(protocols.make_folds(data, tc, seed))]
  fold_names = [j.fold.name for j in jobs if j.seed == seeds[0]]
  max_train = max(int(j.fold.masks(data["subject"])[0].sum()) for j in jobs)
  steps_per_epoch = runner.steps_per_epoch(config, max_train)
  logging.info("%d clips in %d %s %s, %d subjects; %d seed(s) x %d fold(s); %d steps/epoch "
               "of batch %d; devices: %s", len(data["labels"]), k,
               task.output_unit, list(class_names),
               len(set(data["subject"])), len(seeds), len(fold_names), steps_per_epoch,
               tc.batch_size, jax.devices())

  model = builder.from_config(config, k)
  ckpt_root = workdir / "checkpoints"
  _check_resume_config(ckpt_root, config)
  final_seeds = [int(s) for s in (tc.get("final_seeds") or [])]
  epochs = int(tc.epochs)
  planned = (ensemble_lib.planned_job_epochs(config, jobs) if ensemble_lib.enabled(config)
             else search_lib.planned_job_epochs(config, jobs)) + len(final_seeds) * epochs
  ctx = loop.Context(config=config, model=model, data=data, num_classes=k, ckpt_root=ckpt_root,
                     writers=writers_lib.CurveWriters(workdir / "tensorboard",
                                                      enabled=bool(tc.get("tensorboard", True))),
                     progress=progress_lib.Progress(planned),
                     signals=signals, pretrained=builder.pretrained(model))
  summarize = lambda res: task.aggregate(res, data, class_names, seeds, fold_names)
  try:
    job_results, extra = _train_jobs(ctx, jobs, max_train=max_train, summarize=summarize)
    results = summarize(job_results)
    results = {"config": workdir_lib.config_dict(config), **results, **extra}
    # Plain and nested runs: the reported (retrained, outer) models; an ensemble has none.
    train_side = train_eval.aggregate(job_results, seeds, k)
    if train_side is not None:
      results["train_side"] = train_side
    if final_seeds:
      if "search" in extra:  # the candidate most folds chose
        ctx = runner.recipe_context(ctx, search_lib.final_config(config, extra["search"]),
                                    ckpt_root)
        epochs = int(ctx.config.train.epochs)
      final_epochs = epochs
      if tc.selection == "val":  # chosen on validation subjects only, never on a test subject
        final_epochs = max(int(round(np.median([r["best_epoch"] for r in job_results]))), 1)
      all_fold = folds_lib.all_subjects_fold(data["subject"])
      final_jobs = [jobs_lib.Job(s, jobs_lib.FINAL_FOLD_INDEX, all_fold) for s in final_seeds]
      final = loop.train_chunk(ctx, "final", final_jobs, epochs=final_epochs,
                               steps_per_epoch=runner.steps_per_epoch(ctx.config,
                                                                       len(data["labels"])),
                               keep_variables=True)
      workdir_lib.save_final(workdir, ctx.config, class_names, final, final_epochs,
                             data["inputs"].shape[1:])
      results["final"] = {"seeds": final_seeds, "epochs": final_epochs}
  finally:
    ctx.writers.close()
  results["wall_time_s"] = time.time() - t_start
  task.write_outputs(workdir, results)
  task.log_summary(results, workdir)
  return results


def _check_task(task: tasks_lib.Task, config) -> None:
  """Refuses what `task` cannot serve: final models, nested selection, ensembles, its own."""
  tc = config.train
  if task.trainer:
    raise ValueError(f"config.train.task={task.name!r} trains on long videos through "
                     f"{task.trainer}.run(config, workdir) (engine.run dispatches there), not on "
                     "clip arrays.")
  if tc.get("final_seeds") and not task.final_models:
    raise ValueError(f"config.train.task={task.name!r}: final models are not written yet "
                     "(predict reads emotion models); set config.train.final_seeds=().")
  if not task.search_and_ensembles and (ensemble_lib.enabled(config) or search_lib.grid(config)):
    raise ValueError(f"config.train.task={task.name!r} trains one recipe: nested selection "
                     "(config.train.search) and ensembles (config.ensemble) score and average "
                     "emotion classes; remove them for this task.")
  task.check_config(config)


def _train_jobs(ctx, jobs, *, max_train, summarize) -> tuple[list[dict], dict]:
  """The outer jobs' results, and what the run adds to results.json: 'members' (an ensemble,
  ensemble.py) or 'search' (nested selection, search.py); plain training otherwise."""
  if ensemble_lib.enabled(ctx.config):
    return ensemble_lib.train(ctx, jobs, max_train=max_train, summarize=summarize)
  job_results, info = search_lib.train_any(ctx, ctx.config, jobs, ctx.ckpt_root,
                                           max_train=max_train)
  return job_results, ({"search": info} if info else {})


def run(config, workdir: str | Path) -> dict | None:
  """Loads `config.dataset` through the dataset registry and trains (see train_and_evaluate);
  a task with its own trainer (tasks/base.py: the long-video tasks) runs that instead."""
  from microexp import loaders  # pylint: disable=g-import-not-at-top

  task = tasks_lib.from_config(config.train)
  if task.trainer:
    return importlib.import_module(task.trainer).run(config, workdir)
  logging.info("Loading dataset %s (%s, synthetic=%s)...", config.dataset.name,
               config.dataset.representation, config.dataset.get("synthetic", False))
  arrays = loaders.load(config.dataset)
  return train_and_evaluate(config, arrays, workdir)
