"""The loader's arrays -> the engine's host data: class subset, labels, checks, class weights."""

from __future__ import annotations

import numpy as np

from microexp.data import emotions


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
