"""Choosing the reported epoch of each fold: a pure function over a small dataclass.

selection='last': the last epoch. selection='val': the epoch with the best `select_metric` on the
fold's validation subjects (ties: lower validation loss), never anything of the test subject; the
test probabilities are recorded at the chosen epoch.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from microexp.train import metrics as metrics_lib

SELECT_METRICS = ("loss", "accuracy", "uf1")


@dataclasses.dataclass(frozen=True)
class Selection:
  """Per fold (L = padded chunk length): the chosen epoch so far and its test probabilities."""

  best_score: np.ndarray  # [L] float32, -inf before any validation
  best_loss: np.ndarray  # [L] float32
  best_epoch: np.ndarray  # [L] int32, 1-based; 0 = none yet
  test_probs: np.ndarray  # [L, T, K] float32 (T = largest test set of the chunk)

  @classmethod
  def empty(cls, length: int, n_test: int, num_classes: int) -> "Selection":
    return cls(np.full((length,), -np.inf, np.float32), np.full((length,), np.inf, np.float32),
               np.zeros((length,), np.int32), np.zeros((length, n_test, num_classes), np.float32))

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """One evaluated epoch, per fold [L]: validation (selection) and test (monitoring) figures."""

  val_loss: np.ndarray
  val_accuracy: np.ndarray
  val_score: np.ndarray  # higher is better (the negated loss for select_metric='loss')
  test_loss: np.ndarray
  test_accuracy: np.ndarray
  test_probs: np.ndarray  # [L, T, K]


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


def _score(name: str, logits, labels, num_classes: int, loss: float, acc: float) -> float:
  if name == "loss":
    return -loss
  if name == "accuracy":
    return acc
  if name == "uf1":
    return metrics_lib.uf1(metrics_lib.confusion_matrix(labels, logits.argmax(-1), num_classes))
  raise ValueError(f"config.train.select_metric must be one of {SELECT_METRICS}, got {name!r}.")


def evaluate(logits: np.ndarray, val_idx, test_idx, labels: np.ndarray, *, select_metric: str,
             num_classes: int, length: int, n_test: int) -> Evaluation:
  """logits [L, M, K] over each fold's val indices then test indices -> an `Evaluation`."""
  out = {k: np.full((length,), np.nan, np.float32) for k in (
      "val_loss", "val_accuracy", "val_score", "test_loss", "test_accuracy")}
  probs = np.zeros((length, n_test, num_classes), np.float32)
  for f, (v, t) in enumerate(zip(val_idx, test_idx)):
    lv, lt = logits[f, :len(v)], logits[f, len(v):len(v) + len(t)]
    out["val_loss"][f], out["val_accuracy"][f] = _ce_acc(lv, labels[v])
    out["test_loss"][f], out["test_accuracy"][f] = _ce_acc(lt, labels[t])  # monitoring only
    if len(v):
      out["val_score"][f] = _score(select_metric, lv, labels[v], num_classes, out["val_loss"][f],
                                   out["val_accuracy"][f])
    probs[f, :len(t)] = _softmax(lt)
  return Evaluation(test_probs=probs, **out)


def select(current: Selection, epoch: int, *, rule: str, last: bool,
           evaluation: Evaluation | None) -> Selection:
  """The selection after 1-based `epoch` (pure: `current` is not modified).

  rule 'val' takes a fold's epoch when its validation score beats the best so far (ties: lower
  loss); rule 'last' takes the last epoch. Without an evaluation (nothing to evaluate, or not
  due) only rule 'last' at the last epoch moves `best_epoch`.
  """
  if rule not in ("val", "last"):
    raise ValueError(f"config.train.selection must be 'last' or 'val', got {rule!r}.")
  if evaluation is None:
    if rule == "last" and last:
      return dataclasses.replace(current, best_epoch=np.full_like(current.best_epoch, epoch))
    return current
  if rule == "val":
    s, l = evaluation.val_score, evaluation.val_loss
    take = (s > current.best_score) | ((s == current.best_score) & (l < current.best_loss))
  else:
    take = np.full(current.best_epoch.shape, last)
  return Selection(
      best_score=np.where(take, evaluation.val_score, current.best_score).astype(np.float32)
      if rule == "val" else current.best_score,
      best_loss=np.where(take, evaluation.val_loss, current.best_loss).astype(np.float32)
      if rule == "val" else current.best_loss,
      best_epoch=np.where(take, epoch, current.best_epoch).astype(np.int32),
      test_probs=np.where(take[:, None, None], evaluation.test_probs, current.test_probs))
