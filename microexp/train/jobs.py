"""Jobs (one (seed, fold) each) and the host-side layout of a chunk of them on the fold axis."""

from __future__ import annotations

import dataclasses

import numpy as np

from microexp.train import folds as folds_lib
from microexp.train import inputs as inputs_lib
from microexp.train import parallel
from microexp.train import steps as steps_lib

# Fold indices of the final all-subject models (their keys must not collide with real folds).
FINAL_FOLD_INDEX = 1_000_000


@dataclasses.dataclass(frozen=True)
class Job:
  seed: int
  index: int  # fold index (keys derive from it), FINAL_FOLD_INDEX for the final model
  fold: folds_lib.Fold

  @property
  def run(self) -> str:
    return f"seed{self.seed}/{self.fold.name}"


@dataclasses.dataclass(frozen=True)
class ChunkLayout:
  """A chunk's jobs padded to `length` folds (copies of the last job, results discarded).

  plan: {'key' [L, 2] uint32, 'train_mask' [L, N] bool, 'n_train' [L] int32,
         'class_weights' [L, D, K] float32} (steps.py); val_idx / test_idx: per real job, [n] int;
  eval_idx: [L, nb, Be] int32 blocks of val then test indices per fold (None: nothing to
  evaluate); n_eval: real columns of the flattened blocks.
  """

  jobs: tuple[Job, ...]
  length: int
  plan: dict
  val_idx: tuple[np.ndarray, ...]
  test_idx: tuple[np.ndarray, ...]
  eval_idx: np.ndarray | None
  n_eval: int

  @property
  def n_test_max(self) -> int:
    return max([len(t) for t in self.test_idx] + [1])


def layout(jobs, subjects: np.ndarray, labels: np.ndarray, *, num_classes: int, balanced,
           length: int, eval_batch_size: int, dataset_index: np.ndarray | None = None,
           weight_fn=None) -> ChunkLayout:
  """Host arrays per job: masks, loss weights [D, K] (inputs.loss_weights), keys, eval blocks.

  balanced: `config.train.class_balanced`; dataset_index: [N] int (None: one dataset);
  weight_fn: train mask [N] -> the fold's [K] or [D, K] weights, in place of the class weights
  (the AU task's positive weights, loop._weight_fn); a [K] row serves every dataset.
  """
  if dataset_index is None:
    dataset_index = np.zeros(len(labels), np.int32)
  num_datasets = int(dataset_index.max()) + 1 if len(dataset_index) else 1
  train_mask, val_idx, test_idx, weights = [], [], [], []
  for job in jobs:
    tr, va, te = job.fold.masks(subjects)
    train_mask.append(tr)
    val_idx.append(np.flatnonzero(va))
    test_idx.append(np.flatnonzero(te))
    if weight_fn is None:
      weights.append(inputs_lib.loss_weights(labels[tr], dataset_index[tr], num_datasets,
                                             num_classes, balanced))
    else:
      w = np.asarray(weight_fn(tr), np.float32)
      weights.append(np.broadcast_to(w, (num_datasets, w.shape[-1])).copy())
  train_mask = parallel.pad_folds(np.stack(train_mask), length)
  padded = parallel.pad_folds(np.array([[j.seed, j.index] for j in jobs]), length)
  keys = np.stack([np.asarray(steps_lib.fold_keys(int(s), [int(i)])[0]) for s, i in padded])
  plan = {"key": keys, "train_mask": train_mask,
          "n_train": train_mask.sum(1).astype(np.int32),
          "class_weights": parallel.pad_folds(np.stack(weights), length)}
  eval_idx, n_eval = _eval_blocks(val_idx, test_idx, length, eval_batch_size)
  return ChunkLayout(tuple(jobs), length, plan, tuple(val_idx), tuple(test_idx), eval_idx, n_eval)


def _eval_blocks(val_idx, test_idx, length: int, batch: int):
  """Per-fold index lists -> ([L, nb, Be] int32 with val first then test, M real), or (None, 0)."""
  rows = [np.concatenate([v, t]) for v, t in zip(val_idx, test_idx)]
  m = max(len(r) for r in rows)
  if m == 0:
    return None, 0
  return index_blocks(rows, length, min(batch, m)), m


def index_blocks(rows, length: int, block: int, group: int = 1) -> np.ndarray:
  """Per-fold clip index rows -> int32 [length, n, block]: each row zero-filled to the same
  multiple of `group * block` clips (so n is a multiple of `group`), the fold axis padded to
  `length` (`parallel.pad_folds`)."""
  per = group * block
  m = max(len(r) for r in rows)
  idx = np.zeros((len(rows), -(-m // per) * per), np.int32)
  for i, r in enumerate(rows):
    idx[i, :len(r)] = r
  return parallel.pad_folds(idx, length).reshape(length, -1, block)
