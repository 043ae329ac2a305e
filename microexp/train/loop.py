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
class RunState:
  """What the chunks and recipes of one run share and update (one object: the contexts of a
  run's recipes, runner.recipe_context, hold the same one)."""

  epochs_run: int = 0  # chunk-epochs trained by this process (stop_after_epochs counts them)
  placed: dict = dataclasses.field(default_factory=dict)  # (mesh, keys) -> the device dataset

  def device_data(self, data: dict, task, mesh) -> dict:
    """The dataset arrays the steps of `task` read, replicated on `mesh`: placed on the first
    call for that mesh, then the same device arrays for every chunk of the run."""
    host = steps_lib.device_data(data, task)
    key = (mesh, tuple(sorted(host)))
    if key not in self.placed or self.placed[key][0] is not data:
      self.placed[key] = (data, parallel.put_replicated(host, mesh))
    return self.placed[key][1]


@dataclasses.dataclass
class Context:
  """What every chunk of a run shares."""

  config: Any
  model: Any
  data: dict  # host arrays (the task's prepare)
  num_classes: int
  ckpt_root: Path
  writers: writers_lib.CurveWriters
  progress: progress_lib.Progress
  signals: checkpoint_lib.StopSignals
  pretrained: Any = None  # builder.pretrained(model): host variables merged after init
  run: RunState = dataclasses.field(default_factory=RunState)


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
  mesh: Any  # parallel.make_mesh: ('fold', 'data')


def prepare_chunk(ctx: Context, jobs, steps_per_epoch: int) -> Chunk:
  """Layout, compiled steps, placement and initial (pretrained) state of a chunk of jobs."""
  data, tc = ctx.data, ctx.config.train
  mesh = parallel.make_mesh(len(jobs))
  spec = steps_lib.StepSpec.from_config(ctx.config, steps_per_epoch=steps_per_epoch,
                                        num_classes=ctx.num_classes)
  lay = jobs_lib.layout(jobs, data["subject"], data["labels"], num_classes=ctx.num_classes,
                        balanced=tc.class_balanced, length=parallel.padded_folds(len(jobs), mesh),
                        eval_batch_size=int(tc.eval_batch_size),
                        dataset_index=data.get("dataset_index"),
                        weight_fn=spec.task.loss_weight_fn(data))
  steps = steps_lib.make_steps(ctx.model, spec, mesh)
  device_data = ctx.run.device_data(data, spec.task, mesh)
  plan = parallel.put_folds(lay.plan, mesh)
  eval_idx = None if lay.eval_idx is None else parallel.put_folds(lay.eval_idx, mesh)
  state = steps.init(plan["key"], data["inputs"][:1], data["mask"][:1] if "mask" in data else None)
  if ctx.pretrained is not None:
    state = _merge_pretrained(ctx.model, mesh)(state, ctx.pretrained)
  return Chunk(lay, spec, steps, plan, device_data, eval_idx, state, mesh)


def seconds_per_job_epoch(ctx: Context, probes: dict[str, list], steps_per_epoch: int, *,
                          rounds: int = 3, budget_s: float = 10.0) -> dict[str, float]:
  """{name: seconds per job-epoch} of each chunk of `probes` ({name: jobs}) trained stacked.

  A warm-up epoch each (it compiles), then up to `rounds` rounds of one epoch per chunk, the
  chunks alternated (the order reversed every other round) so that a drift of a shared machine's
  speed hits them alike; the fastest round per chunk (a shared machine's noise only ever adds
  time). Rounds stop once they have taken `budget_s` (at least one): a long epoch is timed less
  noisily than a short one. One timed epoch each, as before, flipped the README demo's choice
  between runs (sequential 0.10 / 0.15 s, fold-parallel 0.15 / 0.09 s per job-epoch in two runs
  of the same config).
  """
  chunks = {name: prepare_chunk(ctx, jobs, steps_per_epoch) for name, jobs in probes.items()}
  states = {name: c.state for name, c in chunks.items()}
  times = {name: [] for name in chunks}
  timed_since = None
  for r in range(rounds + 1):  # round 0 warms up
    for name in (list(chunks) if r % 2 == 0 else list(chunks)[::-1]):
      c = chunks[name]
      start = time.perf_counter()
      states[name], metrics = c.steps.train_epoch(states[name], c.plan, c.data, r)
      jax.block_until_ready(metrics)
      if r:
        times[name].append((time.perf_counter() - start) / len(probes[name]))
    if r == 0:
      timed_since = time.perf_counter()
    elif time.perf_counter() - timed_since >= budget_s:
      break
  return {name: min(t) for name, t in times.items()}


@dataclasses.dataclass
class HostState:
  """What the host keeps of a chunk in training (L = padded chunk length, E epochs).

  history: {split: {curve: [E, L]}}; selection, train_side: as read at the last sync point;
  pending: (epoch, train metrics, eval logits | None) device arrays not yet read;
  train_preds: epoch -> device [L, M] training-clip class indices, until the selection reads them.
  Only the first three are checkpointed (`as_tree`): a sync point precedes every save.
  """

  history: dict
  selection: selection_lib.Selection
  train_side: train_eval.TrainSide
  pending: list = dataclasses.field(default_factory=list)
  train_preds: dict = dataclasses.field(default_factory=dict)

  @classmethod
  def empty(cls, epochs: int, layout: jobs_lib.ChunkLayout, num_classes: int) -> "HostState":
    history = {split: {c: np.full((epochs, layout.length), np.nan, np.float32)
                       for c in results_lib.CURVES} for split in results_lib.SPLITS}
    return cls(history, selection_lib.Selection.empty(layout.length, layout.n_test_max,
                                                      num_classes),
               train_eval.TrainSide.empty(layout.length, num_classes))

  @classmethod
  def from_tree(cls, tree: dict) -> "HostState":
    return cls(jax.tree.map(np.asarray, tree["history"]),
               selection_lib.Selection(**jax.tree.map(np.asarray, tree["selection"])),
               train_eval.TrainSide(**jax.tree.map(np.asarray, tree["train_side"])))

  def as_tree(self) -> dict:
    return {"history": self.history, "selection": self.selection.as_dict(),
            "train_side": self.train_side.as_dict()}


def _nanmean(x) -> str:
  return "-" if np.all(np.isnan(x)) else f"{np.nanmean(x):.3f}"


def _check_finite(losses: np.ndarray, epoch: int, jobs, steps_per_epoch: int) -> None:
  """losses [F, S] of the real jobs: raises NaNLossError naming the first bad step."""
  bad = np.argwhere(~np.isfinite(losses))
  if len(bad):
    f, s = bad[np.argmin(bad[:, 1])]
    raise NaNLossError(
        f"Loss became {losses[f, s]} at epoch {epoch + 1}, step {s + 1}/{steps_per_epoch} of "
        f"fold {jobs[f].fold.name!r} (test subject(s) {list(jobs[f].fold.test_subjects)}, "
        f"seed {jobs[f].seed}); lower config.train.learning_rate or check the inputs.")


def sync(ctx: Context, c: Chunk, host: HostState, *, name: str, epochs: int,
         train_idx: list[np.ndarray]) -> None:
  """Reads the pending epochs into `host`: NaN check, curves, selection, TensorBoard, progress."""
  tc, lay, task = ctx.config.train, c.layout, c.spec.task
  jobs, history = lay.jobs, host.history
  f_real, steps_per_epoch = len(jobs), c.spec.steps_per_epoch
  for epoch, metrics, logits in host.pending:
    losses = np.asarray(metrics["loss"])[:f_real]  # [F, S]
    correct = np.asarray(metrics["correct"])[:f_real]
    _check_finite(losses, epoch, jobs, steps_per_epoch)
    history["train"]["epoch_loss"][epoch, :f_real] = losses.mean(1)
    history["train"]["epoch_categorical_accuracy"][epoch, :f_real] = (
        correct.sum(1) / (steps_per_epoch * c.spec.batch_size))
    evaluation = None
    if logits is not None:
      evaluation = task.evaluate(np.asarray(logits), lay.val_idx, lay.test_idx, ctx.data,
                                 select_metric=tc.select_metric, num_classes=ctx.num_classes,
                                 length=lay.length, n_test=lay.n_test_max)
      for split in ("val", "test"):
        history[split]["epoch_loss"][epoch] = getattr(evaluation, f"{split}_loss")
        history[split]["epoch_categorical_accuracy"][epoch] = getattr(
            evaluation, f"{split}_accuracy")
    host.selection = selection_lib.select(host.selection, epoch + 1, rule=tc.selection,
                                          last=epoch == epochs - 1, evaluation=evaluation)
    preds = host.train_preds.pop(epoch, None)
    if preds is not None:
      host.train_side = train_eval.update(host.train_side, host.selection.best_epoch, epoch + 1,
                                          preds, train_idx, ctx.data["labels"], ctx.num_classes)
    for f, job in enumerate(jobs):
      for split in results_lib.SPLITS:
        ctx.writers.write(job.run, split, epoch + 1,
                          {c: history[split][c][epoch, f] for c in results_lib.CURVES})
  if host.pending and ctx.progress.due():
    e = host.pending[-1][0]
    ctx.progress.log(f"[{name}] epoch {e + 1}/{epochs}: train loss "
                     f"{np.nanmean(history['train']['epoch_loss'][e, :f_real]):.4f} acc "
                     f"{_nanmean(history['train']['epoch_categorical_accuracy'][e, :f_real])}"
                     f" | last val acc {_nanmean(_last_row(history['val'], e)[:f_real])} | "
                     f"last test acc {_nanmean(_last_row(history['test'], e)[:f_real])} "
                     "(monitor)")
  host.pending.clear()


def _stop_requested(ctx: Context) -> bool:
  """After counting an epoch: a signal came, or config.train.stop_after_epochs is reached."""
  stop_after = int(ctx.config.train.get("stop_after_epochs", 0) or 0)
  return ctx.signals.requested is not None or bool(stop_after
                                                   and ctx.run.epochs_run >= stop_after)


def train_chunk(ctx: Context, name: str, jobs: list[jobs_lib.Job], *, epochs: int,
                steps_per_epoch: int, keep_variables: bool = False,
                train_side: bool | None = None) -> list[dict]:
  """Trains one chunk of jobs stacked on the fold axis; resumes from / writes checkpoints.

  Returns one dict per job (results.job_results) and, with keep_variables, the final variables
  of each job as host arrays under 'variables' (the chunk then writes no result.json).
  train_side: the training-side report (train_eval.py); default: not for keep_variables chunks
  (the final all-subject models) nor for a task without one (`Task.train_side`).
  """
  tc = ctx.config.train
  chunk_dir = ctx.ckpt_root / name
  if (chunk_dir / "result.json").exists() and not keep_variables:
    logging.info("[%s] already finished, skipping.", name)
    ctx.progress.skip(epochs * len(jobs))
    return workdir_lib.read_json(chunk_dir / "result.json")

  c = prepare_chunk(ctx, jobs, steps_per_epoch)
  lay, steps, state = c.layout, c.steps, c.state
  if train_side is None:
    train_side = not keep_variables and c.spec.task.train_side
  train_idx = train_eval.train_indices(lay)
  # Under 'last' the training side runs once per chunk: in the test side's block shape (no second
  # eval program to compile). Under 'val' it runs at every evaluated epoch, where many pieces of a
  # small test block would cost more than that compilation saves.
  reuse_eval = lay.eval_idx is not None and tc.selection != "val"
  train_blocks = None if not train_side else train_eval.blocks(
      train_idx, lay.length, int(tc.eval_batch_size), c.mesh,
      eval_shape=lay.eval_idx.shape[1:] if reuse_eval else None)
  host = HostState.empty(epochs, lay, ctx.num_classes)
  ckpt = checkpoint_lib.ChunkCheckpointer(chunk_dir,
                                          every_s=float(tc.get("checkpoint_every_s", 120.0)))
  start, restored = ckpt.restore_latest({"state": state, "host": host.as_tree()})
  if restored is not None:
    state, host = restored["state"], HostState.from_tree(restored["host"])
    logging.info("[%s] resumed after epoch %d.", name, start)
    ctx.progress.skip(start * len(jobs))
  ctx.progress.start_chunk()

  rule, every = tc.selection, eval_every(tc, epochs)
  in_flight = []
  try:
    for epoch in range(start, epochs):
      last = epoch == epochs - 1
      state, metrics = steps.train_epoch(state, c.plan, c.data, epoch)
      logits = None
      if c.eval_idx is not None and (rule == "val" or (epoch + 1) % every == 0 or last):
        logits = steps.evaluate(state.variables(), c.eval_idx, c.data)
      if train_blocks is not None and (last or (rule == "val" and logits is not None)):
        host.train_preds[epoch] = train_eval.predict(steps, state, train_blocks, c.data)
      host.pending.append((epoch, metrics, logits))
      # Keep the host at most two epochs ahead of the device (time-based decisions below).
      in_flight.append(metrics)
      if len(in_flight) > 2:
        jax.block_until_ready(in_flight.pop(0))
      ctx.run.epochs_run += 1
      ctx.progress.add(len(jobs))
      stop = _stop_requested(ctx)
      # At the end, result.json marks the chunk done; only the final models (kept in memory
      # until save_final) need a checkpoint there.
      save = (not last and (stop or ckpt.due())) or (last and keep_variables)
      if last or save or ctx.progress.due():
        sync(ctx, c, host, name=name, epochs=epochs, train_idx=train_idx)
      if save:
        ckpt.save(epoch + 1, {"state": state, "host": host.as_tree()})
      if stop and not last:
        signum = ctx.signals.requested
        raise StopRequested(
            f"stopped after {ctx.run.epochs_run} epochs ("
            + (f"signal {signum}" if signum else "config.train.stop_after_epochs") + ")", signum)
  finally:
    ckpt.close()

  out = results_lib.job_results(lay, host.history, host.selection, with_val=rule == "val")
  if train_blocks is not None:
    train_eval.add_to_job_results(out, host.train_side)
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
