"""The training loop of one chunk of jobs stacked on the fold axis.

Per epoch, one jitted call (`steps.train_epoch`: all steps under `lax.scan`) and, when due, one
evaluation call; both return device arrays that the host reads only at a *sync point*: every
~10 s (the progress line), before a checkpoint, at a stop request and at the end. At a sync point
the loop checks the losses (NaN), fills the curves, updates the selection (selection.py) and
writes TensorBoard, for all epochs since the last sync at once. The host stays at most two epochs
ahead of the device, so the time-based decisions (checkpoints, progress) follow the device.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec as P

from microexp.train import workdir as workdir_lib
from microexp.models import builder
from microexp.train import checkpoint as checkpoint_lib
from microexp.train import jobs as jobs_lib
from microexp.train import parallel
from microexp.train import progress as progress_lib
from microexp.train import results as results_lib
from microexp.train import selection as selection_lib
from microexp.train import steps as steps_lib
from microexp.train import train_eval
from microexp.train import tasks as tasks_lib
from microexp.train import writers as writers_lib

# Evaluations per run when config.train.eval_every = 0 (test-subject monitoring curves).
DEFAULT_EVALUATIONS = 5


class StopRequested(Exception):
  """Training stopped early, state saved: by `config.train.stop_after_epochs` (a test hook
  simulating a kill) or by SIGTERM / SIGINT (`signum`)."""

  def __init__(self, message: str, signum: int | None = None):
    super().__init__(message)
    self.signum = signum


class NaNLossError(FloatingPointError):
  """The training loss became NaN/inf; the message names seed, fold and step."""


@dataclasses.dataclass
class Context:
  """What every chunk of a run shares."""

  config: Any
  model: Any
  data: dict  # host arrays (inputs.prepare_data)
  num_classes: int
  ckpt_root: Path
  writers: writers_lib.CurveWriters
  progress: progress_lib.Progress
  signals: checkpoint_lib.StopSignals
  pretrained: Any = None  # builder.pretrained(model): host variables merged after init
  epochs_run: int = 0  # chunk-epochs trained by this process (stop_after_epochs counts them)


def eval_every(train_config, epochs: int) -> int:
  """`config.train.eval_every`, 0 = about DEFAULT_EVALUATIONS evaluations per run."""
  every = int(train_config.get("eval_every", 0) or 0)
  return every if every > 0 else max(1, -(-epochs // DEFAULT_EVALUATIONS))


@functools.lru_cache(maxsize=8)
def _merge_pretrained(model, mesh):
  """Jitted: fold-stacked state [F] + one model's pretrained variables -> state [F]."""

  def merge(state, pretrained):
    variables = builder.load_pretrained(model, state.variables(), pretrained)
    return state.replace(params=variables["params"],
                         batch_stats=variables.get("batch_stats", state.batch_stats))

  return jax.jit(jax.vmap(merge, in_axes=(0, None)),
                 out_shardings=NamedSharding(mesh, P("fold")), donate_argnums=(0,))


@dataclasses.dataclass
class Chunk:
  """A chunk placed on the devices, its models initialised."""

  layout: jobs_lib.ChunkLayout
  spec: steps_lib.StepSpec
  steps: steps_lib.Steps
  plan: dict  # device arrays [L, ...] sharded over 'fold'
  data: dict  # the resident dataset, replicated
  eval_idx: Any  # [L, nb, Be] device array, or None
  state: Any  # TrainState [L]


def prepare_chunk(ctx: Context, jobs, steps_per_epoch: int) -> Chunk:
  """Layout, compiled steps, placement and initial (pretrained) state of a chunk of jobs."""
  data, tc = ctx.data, ctx.config.train
  mesh = parallel.make_mesh(len(jobs))
  length = parallel.padded_folds(len(jobs), mesh)
  lay = jobs_lib.layout(jobs, data["subject"], data["labels"], num_classes=ctx.num_classes,
                        balanced=tc.class_balanced, length=length,
                        eval_batch_size=int(tc.eval_batch_size),
                        dataset_index=data.get("dataset_index"), weight_fn=_weight_fn(ctx))
  spec = steps_lib.StepSpec.from_config(ctx.config, steps_per_epoch=steps_per_epoch,
                                        num_classes=ctx.num_classes)
  steps = steps_lib.make_steps(ctx.model, spec, mesh)
  device_data = parallel.put_replicated(
      {key: data[key] for key in steps_lib.DEVICE_DATA if key in data}, mesh)
  plan = parallel.put_folds(lay.plan, mesh)
  eval_idx = None if lay.eval_idx is None else parallel.put_folds(lay.eval_idx, mesh)
  state = steps.init(plan["key"], data["inputs"][:1], data["mask"][:1] if "mask" in data else None)
  if ctx.pretrained is not None:
    state = _merge_pretrained(ctx.model, mesh)(state, ctx.pretrained)
  return Chunk(lay, spec, steps, plan, device_data, eval_idx, state)


def _weight_fn(ctx: Context):
  """The AU task's per-fold positive weights [K] (tasks.pos_weights), one row for every
  dataset (jobs.layout); None: the class weights [D, K] of `config.train.class_balanced`."""
  tc = ctx.config.train
  if tasks_lib.task_of(tc) != "au":
    return None
  weighted = bool(tc.get("au_pos_weight", False))
  return lambda train_mask: tasks_lib.pos_weights(ctx.data["au_targets"][train_mask], weighted)


def seconds_per_job_epoch(ctx: Context, jobs, steps_per_epoch: int) -> float:
  """Times one epoch of `jobs` stacked (after a warm-up epoch that compiles), per job."""
  c = prepare_chunk(ctx, jobs, steps_per_epoch)
  state = c.state
  times = []
  for epoch in range(2):
    t0 = time.perf_counter()
    state, metrics = c.steps.train_epoch(state, c.plan, c.data, epoch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  return times[-1] / len(jobs)


def _nanmean(x) -> str:
  return "-" if np.all(np.isnan(x)) else f"{np.nanmean(x):.3f}"


def train_chunk(ctx: Context, name: str, jobs: list[jobs_lib.Job], *, epochs: int,
                steps_per_epoch: int, keep_variables: bool = False,
                train_side: bool | None = None) -> list[dict]:
  """Trains one chunk of jobs stacked on the fold axis; resumes from / writes checkpoints.

  Returns one dict per job (results.job_results) and, with keep_variables, the final variables
  of each job as host arrays under 'variables' (the chunk then writes no result.json).
  train_side: the training-side report (train_eval.py); default: not for keep_variables chunks
  (the final all-subject models) nor for the AU task.
  """
  tc = ctx.config.train
  chunk_dir = ctx.ckpt_root / name
  if (chunk_dir / "result.json").exists() and not keep_variables:
    logging.info("[%s] already finished, skipping.", name)
    ctx.progress.skip(epochs * len(jobs))
    return workdir_lib.read_json(chunk_dir / "result.json")

  data, k = ctx.data, ctx.num_classes
  f_real = len(jobs)
  c = prepare_chunk(ctx, jobs, steps_per_epoch)
  lay, spec, steps, length = c.layout, c.spec, c.steps, c.layout.length
  plan, device_data, eval_idx, state = c.plan, c.data, c.eval_idx, c.state

  history = {split: {c: np.full((epochs, length), np.nan, np.float32)
                     for c in results_lib.CURVES} for split in results_lib.SPLITS}
  sel = selection_lib.Selection.empty(length, lay.n_test_max, k)
  # Training-side report (train_eval.py): not for the final all-subject models.
  train_idx = train_eval.train_indices(lay)
  if train_side is None:  # the AU task has no class confusion to report (tasks.py)
    train_side = not keep_variables and tasks_lib.task_of(tc) != "au"
  train_blocks = None if not train_side else train_eval.blocks(
      train_idx, length, int(tc.eval_batch_size), parallel.make_mesh(len(jobs)))
  side = train_eval.TrainSide.empty(length, k)
  train_preds = {}  # epoch -> device [L, M] class indices, until the selection reads them
  ckpt = checkpoint_lib.ChunkCheckpointer(chunk_dir,
                                          every_s=float(tc.get("checkpoint_every_s", 120.0)))
  start, restored = ckpt.restore_latest({"state": state, "host": {
      "history": history, "selection": sel.as_dict(), "train_side": side.as_dict()}})
  if restored is not None:
    state = restored["state"]
    history = jax.tree.map(np.asarray, restored["host"]["history"])
    sel = selection_lib.Selection(**jax.tree.map(np.asarray, restored["host"]["selection"]))
    side = train_eval.TrainSide(**jax.tree.map(np.asarray, restored["host"]["train_side"]))
    logging.info("[%s] resumed after epoch %d.", name, start)
    ctx.progress.skip(start * f_real)
  ctx.progress.start_chunk()

  rule = tc.selection
  every = eval_every(tc, epochs)
  labels = data["labels"]
  au_task = tasks_lib.task_of(tc) == "au"
  evaluate = tasks_lib.evaluate_au if au_task else selection_lib.evaluate
  pending = []  # (epoch, train metrics, eval logits | None): device arrays not yet read

  def sync():
    """Reads the pending epochs: NaN check, curves, selection, TensorBoard, progress."""
    nonlocal sel, side
    for epoch, metrics, logits in pending:
      losses = np.asarray(metrics["loss"])[:f_real]  # [F, S]
      correct = np.asarray(metrics["correct"])[:f_real]
      bad = np.argwhere(~np.isfinite(losses))
      if len(bad):
        f, s = bad[np.argmin(bad[:, 1])]
        raise NaNLossError(
            f"Loss became {losses[f, s]} at epoch {epoch + 1}, step {s + 1}/{steps_per_epoch} of "
            f"fold {jobs[f].fold.name!r} (test subject(s) {list(jobs[f].fold.test_subjects)}, "
            f"seed {jobs[f].seed}); lower config.train.learning_rate or check the inputs.")
      history["train"]["epoch_loss"][epoch, :f_real] = losses.mean(1)
      history["train"]["epoch_categorical_accuracy"][epoch, :f_real] = (
          correct.sum(1) / (steps_per_epoch * spec.batch_size))
      evaluation = None
      if logits is not None:
        evaluation = evaluate(
            np.asarray(logits), lay.val_idx, lay.test_idx,
            data["au_targets"] if au_task else labels, select_metric=tc.select_metric,
            num_classes=k, length=length, n_test=lay.n_test_max)
        for split in ("val", "test"):
          history[split]["epoch_loss"][epoch] = getattr(evaluation, f"{split}_loss")
          history[split]["epoch_categorical_accuracy"][epoch] = getattr(
              evaluation, f"{split}_accuracy")
      sel = selection_lib.select(sel, epoch + 1, rule=rule, last=epoch == epochs - 1,
                                 evaluation=evaluation)
      side = train_eval.update(side, sel.best_epoch, epoch + 1,
                                     train_preds.pop(epoch, None), train_idx, labels, k)
      for f, job in enumerate(jobs):
        for split in results_lib.SPLITS:
          ctx.writers.write(job.run, split, epoch + 1,
                            {c: history[split][c][epoch, f] for c in results_lib.CURVES})
    if pending and ctx.progress.due():
      e = pending[-1][0]
      ctx.progress.log(f"[{name}] epoch {e + 1}/{epochs}: train loss "
                          f"{np.nanmean(history['train']['epoch_loss'][e, :f_real]):.4f} acc "
                          f"{_nanmean(history['train']['epoch_categorical_accuracy'][e, :f_real])}"
                          f" | last val acc {_nanmean(_last_row(history['val'], e)[:f_real])} | "
                          f"last test acc {_nanmean(_last_row(history['test'], e)[:f_real])} "
                          "(monitor)")
    pending.clear()

  def host_tree():
    return {"history": history, "selection": sel.as_dict(), "train_side": side.as_dict()}

  in_flight = []
  try:
    for epoch in range(start, epochs):
      last = epoch == epochs - 1
      state, metrics = steps.train_epoch(state, plan, device_data, epoch)
      logits = None
      if eval_idx is not None and (rule == "val" or (epoch + 1) % every == 0 or last):
        logits = steps.evaluate(state.variables(), eval_idx, device_data)
      if train_blocks is not None and (last or (rule == "val" and logits is not None)):
        train_preds[epoch] = train_eval.predict(steps, state, train_blocks, device_data)
      pending.append((epoch, metrics, logits))
      # Keep the host at most two epochs ahead of the device (time-based decisions below).
      in_flight.append(metrics)
      if len(in_flight) > 2:
        jax.block_until_ready(in_flight.pop(0))
      ctx.epochs_run += 1
      ctx.progress.add(f_real)
      stop_after = int(tc.get("stop_after_epochs", 0) or 0)
      stop = ctx.signals.requested is not None or bool(stop_after and ctx.epochs_run >= stop_after)
      # At the end, result.json marks the chunk done; only the final models (kept in memory
      # until save_final) need a checkpoint there.
      save = (not last and (stop or ckpt.due())) or (last and keep_variables)
      if last or save or ctx.progress.due():
        sync()
      if save:
        ckpt.save(epoch + 1, {"state": state, "host": host_tree()})
      if stop and not last:
        signum = ctx.signals.requested
        raise StopRequested(
            f"stopped after {ctx.epochs_run} epochs ("
            + (f"signal {signum}" if signum else "config.train.stop_after_epochs") + ")", signum)
  finally:
    ckpt.close()

  out = results_lib.job_results(lay, history, sel, with_val=rule == "val")
  if train_blocks is not None:
    train_eval.add_to_job_results(out, side)
  if keep_variables:
    variables = jax.tree.map(np.asarray, state.variables())
    for f, r in enumerate(out):
      r["variables"] = jax.tree.map(lambda x, f=f: x[f], variables)
  else:
    workdir_lib.write_json_atomic(chunk_dir / "result.json", out)
  return out


def _last_row(curves: dict, epoch: int) -> np.ndarray:
  """The accuracy row of the latest evaluated epoch <= `epoch` (NaN row if none)."""
  acc = curves["epoch_categorical_accuracy"][:epoch + 1]
  done = np.flatnonzero(~np.all(np.isnan(acc), axis=1))
  return acc[done[-1]] if len(done) else acc[-1]
