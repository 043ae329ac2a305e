"""The training engine: LOSO or fixed-split training of many folds at once, then reporting.

    run(config, workdir)                      loads `config.dataset` through the registry, then
    train_and_evaluate(config, arrays, workdir)   works on in-memory arrays (tests pass fake ones)

A *job* is one (seed, fold). Jobs are trained in chunks: with `config.train.fold_parallel` one
chunk holds every job (or `fold_chunk` of them), otherwise one job; the default 'auto' is
fold-parallel on GPU/TPU and sequential on CPU. A chunk's
models are stacked on a leading fold axis, the train step is `jax.vmap`-ed over it and sharded over
a ('fold', 'data') device mesh under one `jax.jit` (see steps.py, parallel.py). Sequential mode is
the same code with a fold axis of size 1. Every random draw derives from (seed, fold index, epoch,
step), so the chunking changes nothing but speed, and a killed run resumes exactly (checkpoint.py).
See docs/training.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from microexp import models
from microexp.data import emotions
from microexp.train import checkpoint as checkpoint_lib
from microexp.train import folds as folds_lib
from microexp.train import metrics as metrics_lib
from microexp.train import parallel
from microexp.train import state as state_lib
from microexp.train import steps as steps_lib
from microexp.train import writers as writers_lib

FLOW_REPRESENTATIONS = ("apex_flow", "flow_sequences")
# Fold indices of the final all-subject models (their keys must not collide with real folds).
FINAL_FOLD_INDEX = 1_000_000
# Config fields that may change between a killed run and its restart.
_RESUME_FREE = ("stop_after_epochs", "log_every_s", "tensorboard")


class StopRequested(Exception):
  """Raised after `config.train.stop_after_epochs` epochs (a test hook simulating a kill)."""


class NaNLossError(FloatingPointError):
  """The training loss became NaN/inf; the message names seed, fold and step."""


@dataclasses.dataclass(frozen=True)
class Job:
  seed: int
  index: int  # fold index (keys derive from it), FINAL_FOLD_INDEX for the final model
  fold: folds_lib.Fold

  @property
  def run(self) -> str:
    return f"seed{self.seed}/{self.fold.name}"


# ----------------------------------------------------------------------------------------- data


def prepare_data(arrays: dict[str, np.ndarray], classes: str):
  """Applies the class subset. Returns (host dict with 'labels' [N] int32, ClassSubset)."""
  for key in ("inputs", "emotion", "subject"):
    if key not in arrays:
      raise ValueError(f"The dataset loader returned no {key!r} array (got {sorted(arrays)}); see "
                       "the arrays contract in docs/ARCHITECTURE.md.")
  subset = emotions.get_subset(classes)
  labels, keep = subset.map_emotions(arrays["emotion"])
  if not keep.any():
    raise ValueError(f"No clip of the dataset falls in class subset {classes!r} "
                     f"(emotions present: {sorted(set(map(str, arrays['emotion'])))}).")
  n = len(labels)
  data = {k: np.asarray(v)[keep] for k, v in arrays.items() if np.ndim(v) and len(v) == n}
  data["labels"] = labels[keep]
  data["inputs"] = data["inputs"].astype(np.float32)
  data["subject"] = data["subject"].astype(str)
  data.setdefault("dataset", np.full(len(data["labels"]), "dataset"))
  data.setdefault("clip", np.array([f"clip{i}" for i in range(len(data["labels"]))]))
  if not np.isfinite(data["inputs"]).all():
    bad = np.unique(data["clip"][~np.isfinite(data["inputs"]).reshape(len(data["labels"]), -1)
                                 .all(1)])
    raise ValueError(f"Non-finite input values in clips {bad[:10].tolist()}; rebuild the dataset.")
  return data, subset


def class_weights(labels: np.ndarray, num_classes: int, balanced: bool) -> np.ndarray:
  """[K] weights n / (K_present * count_k) (mean 1 over the samples), 0 for absent classes."""
  if not balanced:
    return np.ones(num_classes, np.float32)
  counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
  present = counts > 0
  w = np.where(present, len(labels) / (present.sum() * np.maximum(counts, 1)), 0.0)
  return w.astype(np.float32)


def is_flow(dataset_config) -> bool:
  return dataset_config.representation in FLOW_REPRESENTATIONS


# ----------------------------------------------------------------------------------------- model


def _tuples(x):
  """Lists (from JSON or the command line) -> tuples: flax module attributes must be hashable."""
  if isinstance(x, dict):
    return {k: _tuples(v) for k, v in x.items()}
  return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def create_model(config, num_classes: int):
  """The registered model with `config.model.kwargs`; handles a missing pretrained file."""
  kwargs = _tuples(config.model.kwargs.to_dict() if "kwargs" in config.model else {})
  if (kwargs.get("flow_bound") is not None
      and config.dataset.get("flow_normalization") != "none"):
    raise ValueError("config.model.kwargs.flow_bound (a fixed speed scale in pixels) needs raw "
                     "flow: set config.dataset.flow_normalization='none' (it is "
                     f"{config.dataset.get('flow_normalization', 'per_clip')!r}).")
  weights = kwargs.get("weights")
  if weights and not Path(weights).exists():
    if config.dataset.get("synthetic", False):
      logging.warning("Pretrained weights %s not found: synthetic run, TRAINING FROM SCRATCH "
                      "(random initialization).", weights)
      kwargs["weights"] = None
    else:
      from microexp.models.weights import source  # pylint: disable=g-import-not-at-top

      source.check_readable(weights)  # raises the weight loader's missing-file error
  return models.get(config.model.name, num_classes=num_classes,
                    dtype=jnp.dtype(config.model.get("dtype", "float32")), **kwargs)


# ----------------------------------------------------------------------------------------- chunks


def resolve_fold_parallel(value, backend: str | None = None) -> bool:
  """`config.train.fold_parallel` -> bool: 'auto' = fold-parallel on GPU/TPU, sequential on CPU.

  On XLA CPU vmapped folds (grouped convolutions) measured ~3x slower than sequential jitted
  steps (benchmarks/fold_parallel.py); on accelerators one small model leaves the device idle.
  """
  if isinstance(value, bool):
    return value
  if isinstance(value, str) and value.lower() == "auto":
    return (backend or jax.default_backend()) != "cpu"
  if isinstance(value, str) and value.lower() in ("true", "false"):
    return value.lower() == "true"
  raise ValueError(f"config.train.fold_parallel must be 'auto', True or False, got {value!r}.")


def chunk_jobs(jobs: list[Job], train_config, backend: str | None = None) -> list[list[Job]]:
  """Fold-parallel: chunks of `fold_chunk` jobs (0 = all of them); sequential: one job each."""
  if not resolve_fold_parallel(train_config.get("fold_parallel", "auto"), backend):
    return [[job] for job in jobs]
  size = int(train_config.get("fold_chunk", 0) or 0) or len(jobs)
  return [jobs[i:i + size] for i in range(0, len(jobs), size)]


class _Progress:
  """Epoch counter with an ETA from the mean epoch time (first epoch of a chunk = compile)."""

  def __init__(self, total_epochs: int):
    self.total, self.done, self.times = total_epochs, 0, []

  def tick(self, seconds: float, first: bool) -> str:
    self.done += 1
    if not first:
      self.times.append(seconds)
    per = np.mean(self.times) if self.times else seconds
    eta = max(self.total - self.done, 0) * per
    return f"{self.done}/{self.total} epochs, {seconds:.1f}s, ETA {eta / 60:.1f} min"


# Jitted step functions, reused by later runs of the same config in this process (tests, sweeps):
# key = the config's JSON minus fields the steps do not read, steps/epoch, mesh.
_STEPS_CACHE: dict = {}
_NOT_IN_STEPS = ("seeds", "final_seeds", "stop_after_epochs", "tensorboard", "checkpoint_every",
                 "eval_every", "fold_parallel", "fold_chunk", "test_subjects", "selection",
                 "num_val_subjects", "select_metric", "class_balanced")


def _steps_key(config, steps_per_epoch: int, mesh) -> str:
  cfg = _config_dict(config)
  for key in _NOT_IN_STEPS:
    cfg["train"].pop(key, None)
  return json.dumps([cfg, steps_per_epoch, mesh.shape_tuple, [d.id for d in mesh.devices.flat]],
                    sort_keys=True)


@dataclasses.dataclass
class _Context:
  config: Any
  model: Any
  data: dict  # host arrays
  num_classes: int
  is_flow: bool
  ckpt_root: Path
  writers: writers_lib.CurveWriters
  progress: _Progress
  epochs_run: int = 0

  def steps_for(self, steps_per_epoch: int, mesh):
    """(tx, train_step, eval_step, order_fn, init_fn) for this config, cached per process."""
    key = _steps_key(self.config, steps_per_epoch, mesh) + f"{self.num_classes}{self.is_flow}"
    if key not in _STEPS_CACHE:
      tx = state_lib.create_optimizer(self.config.train, steps_per_epoch)
      steps = steps_lib.make_steps(self.model, tx, self.config, is_flow=self.is_flow,
                                   num_classes=self.num_classes, mesh=mesh)
      fold_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("fold"))
      model = self.model

      def init_one(key, sample_x, sample_mask):
        return state_lib.create_train_state(
            model, jax.random.fold_in(key, steps_lib.STREAM_INIT), sample_x, sample_mask, tx)

      init = jax.jit(jax.vmap(init_one, in_axes=(0, None, None)), out_shardings=fold_sharding)
      _STEPS_CACHE[key] = (tx, *steps, init)
    return _STEPS_CACHE[key]


def _fold_layout(jobs: list[Job], subjects: np.ndarray, labels: np.ndarray, num_classes: int,
                 balanced: bool, length: int):
  """Host arrays per job (padded to `length`): masks, eval indices, class weights."""
  train_mask, val_idx, test_idx, weights = [], [], [], []
  for job in jobs:
    tr, va, te = job.fold.masks(subjects)
    train_mask.append(tr)
    val_idx.append(np.flatnonzero(va))
    test_idx.append(np.flatnonzero(te))
    weights.append(class_weights(labels[tr], num_classes, balanced))
  train_mask = parallel.pad_folds(np.stack(train_mask), length)
  return train_mask, val_idx, test_idx, parallel.pad_folds(np.stack(weights), length)


def _eval_batches(val_idx, test_idx, length: int, batch: int):
  """[F] index lists -> (list of [F_pad, Be] int32 blocks, M) with val first, then test."""
  rows = [np.concatenate([v, t]).astype(np.int32) for v, t in zip(val_idx, test_idx)]
  m = max(len(r) for r in rows)
  if m == 0:
    return [], 0
  be = min(batch, m)
  mp = -(-m // be) * be
  idx = np.zeros((len(rows), mp), np.int32)
  for i, r in enumerate(rows):
    idx[i, :len(r)] = r
  idx = parallel.pad_folds(idx, length)
  return [idx[:, i:i + be] for i in range(0, mp, be)], m


def _ce_acc(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
  if len(labels) == 0:
    return float("nan"), float("nan")
  logp = logits - logits.max(-1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
  return (float(-logp[np.arange(len(labels)), labels].mean()),
          float((logits.argmax(-1) == labels).mean()))


def _softmax(logits: np.ndarray) -> np.ndarray:
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _better(score, loss, best_score, best_loss) -> bool:
  return score > best_score or (score == best_score and loss < best_loss)


def _select_score(name: str, logits: np.ndarray, labels: np.ndarray, num_classes: int,
                  loss: float, acc: float) -> float:
  if name == "loss":
    return -loss
  if name == "accuracy":
    return acc
  if name == "uf1":
    return metrics_lib.uf1(metrics_lib.confusion_matrix(labels, logits.argmax(-1), num_classes))
  raise ValueError(f"config.train.select_metric must be 'loss', 'accuracy' or 'uf1', got {name!r}.")


def train_chunk(ctx: _Context, name: str, jobs: list[Job], *, epochs: int,
                steps_per_epoch: int, keep_variables: bool = False) -> list[dict]:
  """Trains one chunk of jobs stacked on the fold axis; resumes from / writes checkpoints.

  Returns one dict per job: test_idx, test_probs [n_test, K] (at the selected epoch), history,
  best_epoch, and (keep_variables) the final variables as host arrays.
  """
  cfg, tc = ctx.config, ctx.config.train
  chunk_dir = ctx.ckpt_root / name
  done = checkpoint_lib.read_json(chunk_dir / "result.json")
  if done is not None and not keep_variables:
    logging.info("[%s] already finished, skipping.", name)
    ctx.progress.done += epochs
    return done

  data = ctx.data
  mesh = parallel.make_mesh(len(jobs))
  length = parallel.padded_folds(len(jobs), mesh)
  f_real, k = len(jobs), ctx.num_classes
  train_mask, val_idx, test_idx, weights = _fold_layout(
      jobs, data["subject"], data["labels"], k, bool(tc.class_balanced), length)
  n_train = train_mask.sum(1).astype(np.int32)
  eval_blocks, m_eval = _eval_batches(val_idx, test_idx, length, int(tc.eval_batch_size))
  fold_idx = parallel.pad_folds(np.array([j.index for j in jobs]), length)
  seeds = parallel.pad_folds(np.array([j.seed for j in jobs]), length)
  keys = np.stack([np.asarray(steps_lib.fold_keys(int(s), [int(i)])[0])
                   for s, i in zip(seeds, fold_idx)])

  _, train_step, eval_step, order_fn, init = ctx.steps_for(steps_per_epoch, mesh)
  device_data = parallel.put_replicated(
      {"inputs": data["inputs"], "labels": data["labels"],
       **({"mask": data["mask"]} if "mask" in data else {})}, mesh)
  plan = parallel.put_folds({"key": keys, "n_train": n_train, "class_weights": weights}, mesh)
  train_mask_dev = parallel.put_folds(train_mask, mesh)
  eval_blocks_dev = [parallel.put_folds(b, mesh) for b in eval_blocks]

  sample_x = data["inputs"][:1]
  sample_mask = data["mask"][:1] if "mask" in data else None
  state = init(plan["key"], sample_x, sample_mask)
  if tc.get("freeze"):
    state_lib.check_freeze(jax.tree.map(lambda x: x[0], state.params), tc.freeze)

  n_test_max = max([len(t) for t in test_idx] + [1])
  curves = ("epoch_loss", "epoch_categorical_accuracy")
  host = {"history": {split: {c: np.full((epochs, length), np.nan, np.float32) for c in curves}
                      for split in ("train", "val", "test")},
          "best_score": np.full((length,), -np.inf, np.float32),
          "best_loss": np.full((length,), np.inf, np.float32),
          "best_epoch": np.zeros((length,), np.int32),
          "test_probs": np.zeros((length, n_test_max, k), np.float32)}
  ckpt = checkpoint_lib.ChunkCheckpointer(chunk_dir, every=int(tc.get("checkpoint_every", 1)))
  start, restored = ckpt.restore_latest({"state": state, "host": host})
  if restored is not None:
    state, host = restored["state"], jax.tree.map(np.asarray, restored["host"])
    logging.info("[%s] resumed after epoch %d.", name, start)
    ctx.progress.done += start

  selection = tc.selection
  eval_every = max(int(tc.get("eval_every", 1)), 1)
  labels = data["labels"]
  for epoch in range(start, epochs):
    t0 = time.time()
    order = order_fn(plan["key"], train_mask_dev, epoch)
    step_metrics = []
    for step in range(steps_per_epoch):
      state, m = train_step(state, plan, order, device_data, epoch, step)
      step_metrics.append(m)
    losses = np.stack([np.asarray(m["loss"]) for m in step_metrics])[:, :f_real]  # [S, F]
    correct = np.stack([np.asarray(m["correct"]) for m in step_metrics])[:, :f_real]
    bad = np.argwhere(~np.isfinite(losses))
    if len(bad):
      s, f = bad[0]
      raise NaNLossError(
          f"Loss became {losses[s, f]} at epoch {epoch + 1}, step {s + 1}/{steps_per_epoch} of "
          f"fold {jobs[f].fold.name!r} (test subject(s) {list(jobs[f].fold.test_subjects)}, "
          f"seed {jobs[f].seed}); lower config.train.learning_rate or check the inputs.")
    hist = host["history"]
    hist["train"]["epoch_loss"][epoch, :f_real] = losses.mean(0)
    hist["train"]["epoch_categorical_accuracy"][epoch, :f_real] = (
        correct.sum(0) / (steps_per_epoch * tc.batch_size))

    last = epoch == epochs - 1
    if m_eval and ((epoch + 1) % eval_every == 0 or last):
      variables = state.variables()
      logits = np.concatenate([np.asarray(eval_step(variables, b, device_data))
                               for b in eval_blocks_dev], axis=1)  # [F_pad, M, K]
      for f in range(f_real):
        nv, nt = len(val_idx[f]), len(test_idx[f])
        lv, lt = logits[f, :nv], logits[f, nv:nv + nt]
        v_loss, v_acc = _ce_acc(lv, labels[val_idx[f]])
        t_loss, t_acc = _ce_acc(lt, labels[test_idx[f]])  # monitoring only
        hist["val"]["epoch_loss"][epoch, f], hist["val"]["epoch_categorical_accuracy"][
            epoch, f] = v_loss, v_acc
        hist["test"]["epoch_loss"][epoch, f], hist["test"]["epoch_categorical_accuracy"][
            epoch, f] = t_loss, t_acc
        if selection == "val":
          score = _select_score(tc.select_metric, lv, labels[val_idx[f]], k, v_loss, v_acc)
          take = _better(score, v_loss, host["best_score"][f], host["best_loss"][f])
        else:
          take = last
        if take:
          if selection == "val":
            host["best_score"][f], host["best_loss"][f] = score, v_loss
          host["best_epoch"][f] = epoch + 1
          host["test_probs"][f, :nt] = _softmax(lt)
    elif last:
      host["best_epoch"][:] = epochs

    for f, job in enumerate(jobs):
      for split in ("train", "val", "test"):
        ctx.writers.write(job.run, split, epoch + 1,
                          {c: hist[split][c][epoch, f] for c in curves})
    ckpt.maybe_save(epoch + 1, {"state": state, "host": host}, force=last)
    line = ctx.progress.tick(time.time() - t0, first=epoch == start)
    logging.info("[%s] epoch %d/%d: train loss %.4f acc %.3f | val acc %s | test acc %s "
                 "(monitor) | %s", name, epoch + 1, epochs,
                 np.nanmean(hist["train"]["epoch_loss"][epoch, :f_real]),
                 np.nanmean(hist["train"]["epoch_categorical_accuracy"][epoch, :f_real]),
                 _nanmean_str(hist["val"]["epoch_categorical_accuracy"][epoch, :f_real]),
                 _nanmean_str(hist["test"]["epoch_categorical_accuracy"][epoch, :f_real]), line)
    ctx.epochs_run += 1
    stop = int(tc.get("stop_after_epochs", 0) or 0)
    if stop and ctx.epochs_run >= stop and not last:
      ckpt.maybe_save(epoch + 1, {"state": state, "host": host}, force=True)
      ckpt.close()
      raise StopRequested(f"stopped after {ctx.epochs_run} epochs (config.train.stop_after_epochs)")
  ckpt.close()

  results = []
  for f, job in enumerate(jobs):
    results.append({
        "seed": job.seed, "fold": job.fold.name, "test_subjects": list(job.fold.test_subjects),
        "val_subjects": list(job.fold.val_subjects), "test_idx": test_idx[f].tolist(),
        "test_probs": host["test_probs"][f, :len(test_idx[f])].tolist(),
        "best_epoch": int(host["best_epoch"][f]),
        "history": {f"{split}/{c}": [float(v) for v in host["history"][split][c][:, f]]
                    for split in ("train", "val", "test") for c in curves
                    if split != "val" or selection == "val"}})
  if keep_variables:
    variables = jax.tree.map(np.asarray, state.variables())
    for f, r in enumerate(results):
      r["variables"] = jax.tree.map(lambda x, f=f: x[f], variables)
  else:
    checkpoint_lib.write_json_atomic(chunk_dir / "result.json", results)
  return results


def _nanmean_str(x) -> str:
  return "-" if np.all(np.isnan(x)) else f"{np.nanmean(x):.3f}"


# ----------------------------------------------------------------------------------------- report


def aggregate(job_results: list[dict], data: dict, subset, seeds, fold_names) -> dict:
  """Pooled metrics per seed (mean ± std), seed ensemble, per dataset, per fold, predictions."""
  k = subset.num_classes
  labels = data["labels"]
  per_seed_cm, per_fold, predictions, history = {}, [], [], {}
  probs_by_sample = {}
  for r in job_results:
    idx = np.asarray(r["test_idx"], np.int64)
    probs = np.asarray(r["test_probs"], np.float32).reshape(len(idx), k)
    preds = probs.argmax(-1) if len(idx) else np.zeros(0, np.int64)
    cm = metrics_lib.confusion_matrix(labels[idx], preds, k)
    per_seed_cm[r["seed"]] = per_seed_cm.get(r["seed"], 0) + cm
    per_fold.append({"seed": r["seed"], "subject": r["fold"], "test_subjects": r["test_subjects"],
                     "val_subjects": r["val_subjects"], "n_test": int(len(idx)),
                     "accuracy": metrics_lib.accuracy(cm), "best_epoch": r["best_epoch"],
                     "confusion": cm.tolist()})
    for i, p, pr in zip(idx, preds, probs):
      predictions.append({"seed": r["seed"], "subject": str(data["subject"][i]),
                          "dataset": str(data["dataset"][i]), "clip": str(data["clip"][i]),
                          "label": int(labels[i]), "pred": int(p),
                          "probs": [round(float(x), 6) for x in pr]})
      probs_by_sample.setdefault(int(i), []).append(pr)
    history[f"seed{r['seed']}/{r['fold']}"] = r["history"]

  seed_metrics = [metrics_lib.summarize(per_seed_cm[s]) for s in seeds]
  results = {
      "class_names": list(subset.class_names), "seeds": list(seeds), "folds": list(fold_names),
      "metrics": {m: metrics_lib.mean_std([sm[m] for sm in seed_metrics])
                  for m in ("accuracy", "uf1", "uar")},
  }
  pooled = sum(per_seed_cm[s] for s in seeds)
  results["confusion"] = pooled.tolist()
  results["class_report"] = metrics_lib.class_report(pooled, subset.class_names)
  # Seed ensemble: average probabilities over seeds per test clip.
  ens_idx = np.array(sorted(probs_by_sample), np.int64)
  if len(ens_idx):
    ens_pred = np.array([np.mean(probs_by_sample[i], 0).argmax() for i in ens_idx])
    ens_cm = metrics_lib.confusion_matrix(labels[ens_idx], ens_pred, k)
    results["ensemble"] = {"metrics": metrics_lib.summarize(ens_cm), "confusion": ens_cm.tolist()}
  datasets = sorted(set(map(str, data["dataset"])))
  if len(datasets) > 1:
    results["per_dataset"] = {}
    for ds in datasets:
      per = []
      for s in seeds:
        sel = [(p["label"], p["pred"]) for p in predictions if p["seed"] == s and p["dataset"] == ds]
        y, p = (np.array(v) for v in zip(*sel)) if sel else (np.zeros(0, int), np.zeros(0, int))
        per.append(metrics_lib.summarize(metrics_lib.confusion_matrix(y, p, k)))
      results["per_dataset"][ds] = {m: metrics_lib.mean_std([x[m] for x in per])
                                    for m in ("accuracy", "uf1", "uar")}
  results["per_fold"] = per_fold
  results["predictions"] = predictions
  results["history"] = history
  return results


def _config_dict(config) -> dict:
  return json.loads(config.to_json_best_effort())


def _check_resume_config(ckpt_root: Path, config) -> None:
  """Refuses to resume a workdir that was started with a different training config."""
  cfg = _config_dict(config)
  for key in _RESUME_FREE:
    cfg["train"].pop(key, None)
  path = ckpt_root / "config.json"
  previous = checkpoint_lib.read_json(path)
  if previous is not None and previous != cfg:
    raise ValueError(f"{path} records a run with a different config; use a new --workdir (or "
                     "delete the old one) to train this config.")
  checkpoint_lib.write_json_atomic(path, cfg)


def training_crop_size(dataset_config) -> list[int] | None:
  """[H, W] of the face crops the flow was computed on (predict crops to it), None if unknown.

  `config.dataset.crop_size` if set, else the synthetic CASME II's image size; None (predict's
  default, CASME II's ~340x280) for real data.
  """
  size = dataset_config.get("crop_size")
  if size is None and dataset_config.get("synthetic") and dataset_config.get("name") == "casme2":
    size = (dataset_config.get("synthetic_kwargs") or {}).get("image_size")
  if size is None:
    return None
  return [int(size), int(size)] if isinstance(size, (int, float)) else [int(s) for s in size]


def preprocessing_spec(ds, input_shape) -> dict:
  """model.json's `preprocessing`: how the inputs were made, everything predict must repeat."""
  from microexp import flow as flow_lib  # pylint: disable=g-import-not-at-top

  third = ds.get("third_channel", "magnitude")
  channels = (["u", "v", third] if is_flow(ds) else
              ["gray"] if ds.get("sequence", {}).get("grayscale", False) else ["r", "g", "b"])
  return {"dataset": ds.name, "representation": ds.representation,
          "image_size": ds.get("image_size"), "flow_method": ds.get("flow_method"),
          "flow_kwargs": dict(ds.get("flow_kwargs") or {}),
          "third_channel": third, "channel_order": channels,
          "flow_normalization": flow_lib.flow_normalization(ds) if is_flow(ds) else None,
          "crop_size": training_crop_size(ds),
          "alignment": ds.get("alignment"),  # microexp/align.py; predict repeats it
          "sequence": dict(ds.get("sequence", {}) or {}),
          "input_shape": list(input_shape)}


def save_final(workdir: Path, config, subset, results: list[dict], epochs: int, input_shape):
  """WORKDIR/final/: model.json + variables.msgpack (first seed) + variables_seed<s>.msgpack."""
  out = workdir / "final"
  out.mkdir(parents=True, exist_ok=True)
  files = []
  for i, r in enumerate(results):
    fname = "variables.msgpack" if i == 0 else f"variables_seed{r['seed']}.msgpack"
    (out / fname).write_bytes(flax.serialization.to_bytes(r["variables"]))
    files.append({"seed": r["seed"], "file": fname})
  model_json = {
      "config": _config_dict(config), "class_names": list(subset.class_names),
      "model": {"name": config.model.name, "kwargs": config.model.kwargs.to_dict(),
                "dtype": config.model.get("dtype", "float32")},
      "preprocessing": preprocessing_spec(config.dataset, input_shape),
      "trained_epochs": epochs, "variables": files,
  }
  checkpoint_lib.write_json_atomic(out / "model.json", model_json)
  logging.info("Final model(s) on all subjects written to %s (%d seed(s)).", out, len(files))


def train_and_evaluate(config, arrays: dict[str, np.ndarray], workdir: str | Path) -> dict | None:
  """Trains every (seed, fold), writes the workdir outputs, returns the results dict.

  Returns None when stopped early by `config.train.stop_after_epochs`.
  """
  # Partitionable threefry compiles ~5x slower on XLA CPU (10 s for one jax.random.uniform on
  # this project's machines); every key here is per fold, so the classic scheme loses nothing.
  with jax.threefry_partitionable(False):
    return _train_and_evaluate(config, arrays, workdir)


def _train_and_evaluate(config, arrays, workdir):
  t_start = time.time()
  checkpoint_lib.quiet_orbax_logs()
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  tc = config.train
  data, subset = prepare_data(arrays, config.dataset.classes)
  k = subset.num_classes
  seeds = [int(s) for s in tc.seeds]
  jobs = []
  for seed in seeds:
    jobs += [Job(seed, i, f) for i, f in enumerate(folds_lib.make_folds(data["subject"], tc, seed))]
  fold_names = [j.fold.name for j in jobs if j.seed == seeds[0]]
  max_train = max(int(j.fold.masks(data["subject"])[0].sum()) for j in jobs)
  steps_per_epoch = max(math.ceil(max_train / tc.batch_size), 1)
  logging.info("%d clips in %d classes %s, %d subjects; %d seed(s) x %d fold(s); %d steps/epoch "
               "of batch %d; devices: %s", len(data["labels"]), k, subset.class_names,
               len(set(data["subject"])), len(seeds), len(fold_names), steps_per_epoch,
               tc.batch_size, jax.devices())

  model = create_model(config, k)
  ckpt_root = workdir / "checkpoints"
  _check_resume_config(ckpt_root, config)
  chunks = chunk_jobs(jobs, tc)
  logging.info("fold_parallel=%r on %s: %d chunk(s) of up to %d job(s).",
               tc.get("fold_parallel", "auto"), jax.default_backend(), len(chunks),
               max(len(c) for c in chunks))
  final_seeds = [int(s) for s in (tc.get("final_seeds") or [])]
  total = len(chunks) * tc.epochs + (tc.epochs if final_seeds else 0)
  ctx = _Context(config=config, model=model, data=data, num_classes=k,
                 is_flow=is_flow(config.dataset), ckpt_root=ckpt_root,
                 writers=writers_lib.CurveWriters(workdir / "tensorboard",
                                                  enabled=bool(tc.get("tensorboard", True))),
                 progress=_Progress(total))
  job_results = []
  try:
    for i, chunk in enumerate(chunks):
      name = f"jobs_{i * len(chunks[0]):04d}-{i * len(chunks[0]) + len(chunk) - 1:04d}"
      job_results += train_chunk(ctx, name, chunk, epochs=int(tc.epochs),
                                 steps_per_epoch=steps_per_epoch)
    results = aggregate(job_results, data, subset, seeds, fold_names)
    results = {"config": _config_dict(config), **results}
    if final_seeds:
      epochs = int(tc.epochs)
      if tc.selection == "val":  # chosen on validation subjects only, never on a test subject
        epochs = max(int(round(np.median([r["best_epoch"] for r in job_results]))), 1)
      all_fold = folds_lib.all_subjects_fold(data["subject"])
      final_jobs = [Job(s, FINAL_FOLD_INDEX, all_fold) for s in final_seeds]
      n_all = len(data["labels"])
      final = train_chunk(ctx, "final", final_jobs, epochs=epochs,
                          steps_per_epoch=max(math.ceil(n_all / tc.batch_size), 1),
                          keep_variables=True)
      save_final(workdir, config, subset, final, epochs, data["inputs"].shape[1:])
      results["final"] = {"seeds": final_seeds, "epochs": epochs}
  except StopRequested as e:
    logging.warning("%s; rerun the same command to resume.", e)
    return None
  finally:
    ctx.writers.close()
  results["wall_time_s"] = time.time() - t_start
  writers_lib.write_outputs(workdir, results)
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
  return results


def run(config, workdir: str | Path) -> dict | None:
  """Loads `config.dataset` through the dataset registry and trains (see train_and_evaluate)."""
  from microexp import loaders as registry  # pylint: disable=g-import-not-at-top

  logging.info("Loading dataset %s (%s, synthetic=%s)...", config.dataset.name,
               config.dataset.representation, config.dataset.get("synthetic", False))
  arrays = registry.load(config.dataset)
  return train_and_evaluate(config, arrays, workdir)
