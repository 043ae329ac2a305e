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

import math
import time
from pathlib import Path

import jax
import numpy as np
from absl import logging

from microexp import workdir as workdir_lib
from microexp.models import builder
from microexp.train import checkpoint as checkpoint_lib
from microexp.train import chunking
from microexp.train import folds as folds_lib
from microexp.train import inputs as inputs_lib
from microexp.train import jobs as jobs_lib
from microexp.train import loop
from microexp.train import progress as progress_lib
from microexp.train import protocols
from microexp.train import results as results_lib
from microexp.train import steps as steps_lib
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
  if mode is None and size > 1:  # 'auto': measure both modes, per job-epoch
    # A probe of 2 jobs per device, not the whole chunk: stacking more jobs only fills the device
    # better, and the probe stays cheap where fold-parallel loses (CPU: a whole chunk of a reduced
    # ResNet took 3.5 min of the 12 min README demo on a loaded 2-core machine).
    probe = min(size, 2 * jax.device_count())
    seq = loop.seconds_per_job_epoch(ctx, jobs[:1], steps_per_epoch)
    par = loop.seconds_per_job_epoch(ctx, jobs[:probe], steps_per_epoch)
    decision.update(fold_parallel=par < seq, seconds_per_job_epoch={
        "sequential": seq, "fold_parallel": par, "probe_jobs": probe})
    logging.info("fold_parallel='auto' on %s: %.4f s per job-epoch sequential, %.4f s "
                 "fold-parallel (%d jobs stacked): %s.", jax.default_backend(), seq, par, probe,
                 f"fold-parallel, chunks of {size}" if par < seq else "sequential")
  workdir_lib.write_json_atomic(path, decision)
  return chunking.split(jobs, size if decision["fold_parallel"] else 1)


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
  task = tasks_lib.task_of(tc)
  if task == "au":  # K sigmoid outputs, one per AU (tasks.py)
    if tc.get("final_seeds"):
      raise ValueError("config.train.task='au': final models are not written yet (predict "
                       "reads emotion models); set config.train.final_seeds=().")
    data, au_names = tasks_lib.prepare_au(arrays, int(tc.get("au_min_count", 1)))
    subset = None
    k, class_names = len(au_names), au_names
  else:
    data, subset = inputs_lib.prepare_data(arrays, config.dataset.classes)
    k, class_names = subset.num_classes, subset.class_names
  data = protocols.qualify(data, tc.protocol)  # cross-dataset: 'casme2/sub01'
  seeds = [int(s) for s in tc.seeds]
  jobs = []
  for seed in seeds:
    jobs += [jobs_lib.Job(seed, i, f)
             for i, f in enumerate(protocols.make_folds(data, tc, seed))]
  fold_names = [j.fold.name for j in jobs if j.seed == seeds[0]]
  max_train = max(int(j.fold.masks(data["subject"])[0].sum()) for j in jobs)
  steps_per_epoch = max(math.ceil(max_train / tc.batch_size), 1)
  logging.info("%d clips in %d %s %s, %d subjects; %d seed(s) x %d fold(s); %d steps/epoch "
               "of batch %d; devices: %s", len(data["labels"]), k,
               "AUs" if task == "au" else "classes", list(class_names),
               len(set(data["subject"])), len(seeds), len(fold_names), steps_per_epoch,
               tc.batch_size, jax.devices())

  model = builder.from_config(config, k)
  ckpt_root = workdir / "checkpoints"
  _check_resume_config(ckpt_root, config)
  final_seeds = [int(s) for s in (tc.get("final_seeds") or [])]
  epochs = int(tc.epochs)
  ctx = loop.Context(config=config, model=model, data=data, num_classes=k, ckpt_root=ckpt_root,
                     writers=writers_lib.CurveWriters(workdir / "tensorboard",
                                                      enabled=bool(tc.get("tensorboard", True))),
                     progress=progress_lib.Progress((len(jobs) + len(final_seeds)) * epochs),
                     signals=signals, pretrained=builder.pretrained(model))
  try:
    chunks = plan_chunks(ctx, jobs, steps_per_epoch)
    logging.info("%d chunk(s) of up to %d job(s) on %s.", len(chunks),
                 max(len(c) for c in chunks), jax.default_backend())
    job_results, first = [], 0
    for chunk in chunks:
      name = f"jobs_{first:04d}-{first + len(chunk) - 1:04d}"
      first += len(chunk)
      job_results += loop.train_chunk(ctx, name, chunk, epochs=epochs,
                                      steps_per_epoch=steps_per_epoch)
    if task == "au":
      results = tasks_lib.aggregate_au(job_results, data, class_names, seeds, fold_names)
    else:
      results = results_lib.aggregate(job_results, data, subset, seeds, fold_names)
    results = {"config": workdir_lib.config_dict(config), **results}
    train_side = train_eval.aggregate(job_results, seeds, k)
    if train_side is not None:
      results["train_side"] = train_side
    if final_seeds:
      final_epochs = epochs
      if tc.selection == "val":  # chosen on validation subjects only, never on a test subject
        final_epochs = max(int(round(np.median([r["best_epoch"] for r in job_results]))), 1)
      all_fold = folds_lib.all_subjects_fold(data["subject"])
      final_jobs = [jobs_lib.Job(s, jobs_lib.FINAL_FOLD_INDEX, all_fold) for s in final_seeds]
      final = loop.train_chunk(ctx, "final", final_jobs, epochs=final_epochs,
                               steps_per_epoch=max(math.ceil(len(data["labels"]) / tc.batch_size),
                                                   1),
                               keep_variables=True)
      workdir_lib.save_final(workdir, config, subset.class_names, final, final_epochs,
                             data["inputs"].shape[1:])
      results["final"] = {"seeds": final_seeds, "epochs": final_epochs}
  finally:
    ctx.writers.close()
  results["wall_time_s"] = time.time() - t_start
  if task == "au":
    tasks_lib.write_outputs(workdir, results)
    for line in tasks_lib.log_lines(results):
      logging.info("%s", line)
    logging.info("Done in %.1f s. Outputs in %s.", results["wall_time_s"], workdir)
  else:
    writers_lib.write_outputs(workdir, results)
    _log_summary(results, seeds, workdir)
  return results


def _log_summary(results: dict, seeds, workdir) -> None:
  m = results["metrics"]
  logging.info("Done in %.1f s: accuracy %.4f ± %.4f, UF1 %.4f ± %.4f, UAR %.4f ± %.4f%s. "
               "Outputs in %s.", results["wall_time_s"], m["accuracy"]["mean"],
               m["accuracy"]["std"], m["uf1"]["mean"], m["uf1"]["std"], m["uar"]["mean"],
               m["uar"]["std"],
               (f"; seed ensemble UF1 {results['ensemble']['metrics']['uf1']:.4f}"
                if "ensemble" in results and len(seeds) > 1 else ""), workdir)
  for name, dm in sorted(results.get("per_dataset", {}).items()):
    logging.info("  %-8s UF1 %.4f ± %.4f, UAR %.4f ± %.4f, accuracy %.4f ± %.4f", name,
                 dm["uf1"]["mean"], dm["uf1"]["std"], dm["uar"]["mean"], dm["uar"]["std"],
                 dm["accuracy"]["mean"], dm["accuracy"]["std"])


def run(config, workdir: str | Path) -> dict | None:
  """Loads `config.dataset` through the dataset registry and trains (see train_and_evaluate)."""
  from microexp import loaders  # pylint: disable=g-import-not-at-top

  logging.info("Loading dataset %s (%s, synthetic=%s)...", config.dataset.name,
               config.dataset.representation, config.dataset.get("synthetic", False))
  arrays = loaders.load(config.dataset)
  return train_and_evaluate(config, arrays, workdir)
