"""The engine's chunked, fold-parallel training of (seed, fold) jobs, returning the trained models.

    train(config, data, jobs, ckpt_root, num_classes=K) -> [{'seed', 'fold', ..., 'variables'}]

The protocols that apply a fold's model to something the engine does not evaluate (the spotter on
the test subject's whole videos, the recogniser on the spotted intervals: spot_protocol.py,
str_protocol.py) train through this: the same chunks (runner.plan_chunks: fold-parallel or
sequential), compiled steps, checkpoints and resume as `engine.train_and_evaluate`, and each job's
final variables as host arrays (loop.train_chunk(keep_variables=True)); the reported model is the
last epoch's (a fixed schedule: nothing of the test subject chooses it).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from microexp.models import builder
from microexp.train import checkpoint as checkpoint_lib
from microexp.train import folds as folds_lib
from microexp.train import jobs as jobs_lib
from microexp.train import loop
from microexp.train import progress as progress_lib
from microexp.train import runner
from microexp.train import writers as writers_lib


def loso_jobs(subjects, seeds) -> list[jobs_lib.Job]:
  """One job per (seed, LOSO fold) over `subjects` (fold index = the subject's sorted rank)."""
  folds = folds_lib.loso_folds(subjects)
  return [jobs_lib.Job(int(s), i, f) for s in seeds for i, f in enumerate(folds)]


def all_subjects_jobs(subjects, seeds) -> list[jobs_lib.Job]:
  """The final models' jobs: every subject trains."""
  fold = folds_lib.all_subjects_fold(subjects)
  return [jobs_lib.Job(int(s), jobs_lib.FINAL_FOLD_INDEX, fold) for s in seeds]


def train(config, data: dict, jobs: list, ckpt_root: str | Path, *, num_classes: int,
          name: str = "jobs") -> list[dict]:
  """Trains `jobs` on host `data` (inputs, labels, subject [N], au_targets? ...) under `config`.

  Returns one dict per job, in job order (results.job_results, plus 'variables'). A killed run
  resumes from the chunks' checkpoints (rerun the same command); SIGTERM / SIGINT save and stop
  (loop.StopRequested).
  """
  if config.train.selection != "last":
    raise ValueError("Spotting and STR train a fixed schedule and report the last epoch; set "
                     f"config.train.selection='last' (got {config.train.selection!r}).")
  ckpt_root = Path(ckpt_root)
  model = builder.from_config(config, num_classes)
  epochs = int(config.train.epochs)
  max_train = max(int(j.fold.masks(data["subject"])[0].sum()) for j in jobs)
  steps = runner.steps_per_epoch(config, max_train)
  with jax.threefry_partitionable(False), checkpoint_lib.StopSignals() as signals:
    ctx = loop.Context(config=config, model=model, data=data, num_classes=num_classes,
                       ckpt_root=ckpt_root,
                       writers=writers_lib.CurveWriters(
                           ckpt_root.parent / "tensorboard" / ckpt_root.name,
                           enabled=bool(config.train.get("tensorboard", False))),
                       progress=progress_lib.Progress(len(jobs) * epochs), signals=signals,
                       pretrained=builder.pretrained(model))
    try:
      out, first = [], 0
      for chunk in runner.plan_chunks(ctx, jobs, steps):
        chunk_name = f"{name}_{first:04d}-{first + len(chunk) - 1:04d}"
        first += len(chunk)
        out += loop.train_chunk(ctx, chunk_name, chunk, epochs=epochs, steps_per_epoch=steps,
                                keep_variables=True)
    finally:
      ctx.writers.close()
  return out


def predict(model, variables, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
  """Logits [N, K] of one trained model on inputs x [N, ...] (inference mode), in batches."""
  apply = _apply_fn(model)
  x = np.asarray(x, np.float32)
  if not len(x):
    return np.zeros((0, model.num_classes), np.float32)
  outs = []
  for start in range(0, len(x), batch_size):
    block = x[start:start + batch_size]
    pad = batch_size - len(block) if len(x) > batch_size else 0  # one compiled shape
    if pad:
      block = np.concatenate([block, np.zeros((pad,) + block.shape[1:], block.dtype)])
    outs.append(np.asarray(apply(variables, block))[:len(block) - pad])
  return np.concatenate(outs)


_APPLY: dict = {}


def _apply_fn(model):
  if model not in _APPLY:
    _APPLY[model] = jax.jit(lambda v, x: model.apply(v, x, train=False))
  return _APPLY[model]
