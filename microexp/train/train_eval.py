"""The training-side report: each fold's model evaluated on its own TRAINING clips, in eval mode.

The thesis reports a training accuracy and training-set confusion matrices (its Figs 11, 15); the
running accuracy of the training steps is no such figure (augmented batches, dropout on, BatchNorm
in batch mode, weights moving during the epoch). Here each fold's model at its *reported* epoch
predicts every training clip of the fold with `train=False` (no augmentation, no dropout, BatchNorm
running statistics), and the confusions are pooled over folds like the test side.

Cost, by `config.train.selection`:
  'last': one forward pass over the training clips at the last epoch, nothing per epoch.
  'val':  the reported epoch is known only when the host reads the validation figures (at a sync
          point, epochs after the device has moved on), and keeping a copy of every candidate
          epoch's weights costs memory; so each evaluated epoch also predicts the training clips
          on the device (one forward pass, ~1/3 of a training epoch) and only the [N_train] class
          indices are kept until the selection takes or drops that epoch.
The final all-subject models (`train.final_seeds`) get none (they have no test side to compare).

Host state per chunk (L = padded chunk length, K classes): a `TrainSide`.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from microexp.train import jobs as jobs_lib
from microexp.train import metrics as metrics_lib
from microexp.train import parallel


@dataclasses.dataclass(frozen=True)
class TrainSide:
  """Per fold [L]: the training-clip confusion [L, K, K] at the epoch `epoch` [L] (0 = none)."""

  confusion: np.ndarray  # [L, K, K] int64
  epoch: np.ndarray  # [L] int32, 1-based

  @classmethod
  def empty(cls, length: int, num_classes: int) -> "TrainSide":
    return cls(np.zeros((length, num_classes, num_classes), np.int64),
               np.zeros((length,), np.int32))

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


def train_indices(layout: jobs_lib.ChunkLayout) -> list[np.ndarray]:
  """Per real job of the chunk: its training clip indices [n_train_f] (the plan's train_mask)."""
  return [np.flatnonzero(m) for m in layout.plan["train_mask"][:len(layout.jobs)]]


def blocks(train_idx: list[np.ndarray], length: int, batch: int, mesh,
           eval_shape: tuple[int, int] | None = None) -> list | None:
  """Device index blocks of each fold's training clips, as pieces [L, nb, Be] for `predict`
  (None: no fold has any).

  `eval_shape`: the (nb, Be) of the chunk's test-side blocks. The pieces then have that shape, so
  `steps.evaluate` runs the program already compiled for the test side (one eval program per
  chunk, not two: ~1 s of XLA:CPU compilation for a small model), at the price of one call per
  piece (many for a small test block: the engine passes it only when the training side runs
  once per chunk, selection 'last'); else one piece of blocks of `batch` clips.
  """
  m = max(len(r) for r in train_idx)
  if m == 0:
    return None
  if eval_shape is None:
    be = min(batch, m)
    eval_shape = (-(-m // be), be)
  nb, be = eval_shape
  idx = jobs_lib.index_blocks(train_idx, length, be, group=nb).reshape(length, -1, nb, be)
  return [parallel.put_folds(idx[:, i], mesh) for i in range(idx.shape[1])]


def predict(steps, state, pieces: list, device_data):
  """Eval-mode class indices [L, M] of every fold's model on its training blocks (device); the
  first n_train_f of fold f are its clips in `train_indices` order."""
  variables = state.variables()
  return jnp.concatenate([jnp.argmax(steps.evaluate(variables, piece, device_data), axis=-1)
                          for piece in pieces], axis=1)


def update(current: TrainSide, best_epoch: np.ndarray, epoch: int, preds, train_idx,
           labels: np.ndarray, num_classes: int) -> TrainSide:
  """After the selection of 1-based `epoch`: folds whose reported epoch is now `epoch` take the
  confusion of `preds` ([L, M] class indices, None: not evaluated at this epoch)."""
  take = np.asarray(best_epoch) == epoch
  if preds is None or not take.any():
    return current
  preds = np.asarray(preds)
  confusion = current.confusion.copy()
  for f, idx in enumerate(train_idx):
    if take[f]:
      confusion[f] = metrics_lib.confusion_matrix(labels[idx], preds[f, :len(idx)], num_classes)
  return TrainSide(confusion, np.where(take, epoch, current.epoch).astype(np.int32))


def add_to_job_results(job_results: list[dict], current: TrainSide) -> None:
  """Adds 'train_side': {'epoch', 'n_train', 'confusion'} to each job's result dict (in place)."""
  for f, r in enumerate(job_results):
    cm = current.confusion[f]
    r["train_side"] = {"epoch": int(current.epoch[f]), "n_train": int(cm.sum()),
                       "confusion": cm.tolist()}


def aggregate(job_results: list[dict], seeds, num_classes: int) -> dict | None:
  """results.json's 'train_side': per seed, the confusion summed over folds; metrics mean ± std
  over seeds; the pooled confusion (summed over seeds); per fold accuracy. None if not computed.
  """
  if not job_results or any("train_side" not in r for r in job_results):
    return None
  per_seed = {s: np.zeros((num_classes, num_classes), np.int64) for s in seeds}
  per_fold = []
  for r in job_results:
    cm = np.asarray(r["train_side"]["confusion"], np.int64)
    per_seed[r["seed"]] += cm
    per_fold.append({"seed": r["seed"], "subject": r["fold"], "epoch": r["train_side"]["epoch"],
                     "n_train": int(cm.sum()), "accuracy": metrics_lib.accuracy(cm)})
  seed_metrics = [metrics_lib.summarize(per_seed[s]) for s in seeds]
  return {"metrics": {m: metrics_lib.mean_std([sm[m] for sm in seed_metrics])
                      for m in ("accuracy", "uf1", "uar")},
          "confusion": sum(per_seed[s] for s in seeds).tolist(),
          "per_fold": per_fold}
