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
  # [N] int32: the clip's source dataset (sorted names); per-dataset loss weights index it.
  data["dataset_index"] = np.unique(data["dataset"].astype(str),
                                    return_inverse=True)[1].astype(np.int32).reshape(-1)
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


def loss_weights(labels: np.ndarray, dataset_index: np.ndarray, num_datasets: int,
                 num_classes: int, class_balanced) -> np.ndarray:
  """Per-(dataset, class) loss weights [D, K] float32 from one fold's TRAINING clips.

  labels, dataset_index: [n] of the training clips. `config.train.class_balanced`:
  False: ones; True: `class_weights` over the pooled training set (every row the same);
  'per_dataset': `class_weights` within each source dataset, so each dataset's classes weigh
  alike (mean weight 1 over that dataset's clips: datasets keep their share of the loss).
  """
  mode = parse_class_balanced(class_balanced)
  if mode != "per_dataset":
    return np.tile(class_weights(labels, num_classes, mode == "global"), (num_datasets, 1))
  out = np.zeros((num_datasets, num_classes), np.float32)
  for d in range(num_datasets):
    sel = dataset_index == d
    if sel.any():
      out[d] = class_weights(labels[sel], num_classes, True)
  return out


def parse_class_balanced(value) -> str:
  """`config.train.class_balanced` (False | True | 'per_dataset') -> 'none' | 'global' | 'per_dataset'."""
  if isinstance(value, (bool, np.bool_)):
    return "global" if value else "none"
  if isinstance(value, str) and value.lower() in ("true", "false", "global", "none", "per_dataset"):
    return {"true": "global", "false": "none"}.get(value.lower(), value.lower())
  raise ValueError(f"config.train.class_balanced must be True, False or 'per_dataset', got "
                   f"{value!r}.")
