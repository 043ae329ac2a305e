"""MER metrics on a confusion matrix: accuracy, UF1 (macro F1), UAR (macro recall).

Conventions (MEGC2019): metrics are computed on the confusion matrix *pooled* over all folds,
rows = true class, columns = predicted class. Macro averages run over the classes present in the
labels (support > 0); a present class never predicted scores F1 = recall = 0.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
  """labels, preds: [N] int -> [K, K] int64 counts (row = true, column = predicted)."""
  cm = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(cm, (np.asarray(labels, np.int64), np.asarray(preds, np.int64)), 1)
  return cm


def accuracy(cm: np.ndarray) -> float:
  total = cm.sum()
  return float(np.trace(cm) / total) if total else float("nan")


def _per_class(cm: np.ndarray):
  cm = np.asarray(cm, np.float64)
  tp = np.diag(cm)
  support = cm.sum(1)
  predicted = cm.sum(0)
  with np.errstate(invalid="ignore", divide="ignore"):
    precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
    recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
    f1 = np.where(2 * tp + (predicted - tp) + (support - tp) > 0,
                  2 * tp / np.maximum(2 * tp + (predicted - tp) + (support - tp), 1), 0.0)
  return precision, recall, f1, support


def uf1(cm: np.ndarray) -> float:
  """Unweighted F1: mean over present classes of 2TP / (2TP + FP + FN)."""
  _, _, f1, support = _per_class(cm)
  present = support > 0
  return float(f1[present].mean()) if present.any() else float("nan")


def uar(cm: np.ndarray) -> float:
  """Unweighted average recall: mean over present classes of TP / support."""
  _, recall, _, support = _per_class(cm)
  present = support > 0
  return float(recall[present].mean()) if present.any() else float("nan")


def summarize(cm: np.ndarray) -> dict[str, float]:
  return {"accuracy": accuracy(cm), "uf1": uf1(cm), "uar": uar(cm)}


def class_report(cm: np.ndarray, class_names: Sequence[str]) -> list[dict]:
  """Per-class precision, recall, F1 and support."""
  precision, recall, f1, support = _per_class(cm)
  return [{"class": name, "precision": float(p), "recall": float(r), "f1": float(f),
           "support": int(s)} for name, p, r, f, s in zip(class_names, precision, recall, f1,
                                                           support)]


def mean_std(values: Sequence[float]) -> dict:
  """Over seeds: {'mean', 'std' (population, 0 for one seed), 'per_seed'}."""
  v = np.asarray(values, np.float64)
  return {"mean": float(v.mean()), "std": float(v.std()), "per_seed": [float(x) for x in v]}
