"""How results are shown, in one place: the confusion-matrix PNG and the markdown metrics table.

Used by the engine's WORKDIR/summary.md + confusion.png (microexp/train/tasks/emotions.py) and by
the reports (microexp/report/workdirs.py). Input: results.json's dicts (schema: docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np

METRICS = ("accuracy", "uf1", "uar")
METRIC_TITLES = {"accuracy": "Accuracy", "uf1": "UF1", "uar": "UAR"}


def metric_cell(metric: dict | float | None) -> str:
  """'0.750 ± 0.050' for {'mean', 'std'}, '0.750' for a number or a dict without std, '–' if None."""
  if metric is None:
    return "–"
  if isinstance(metric, dict):
    std = metric.get("std")
    return f"{metric['mean']:.3f} ± {std:.3f}" if std is not None else f"{metric['mean']:.3f}"
  return f"{float(metric):.3f}"


def metrics_table(results: dict) -> str:
  """Markdown: metric | mean ± std over seeds | per seed | seed ensemble; then one row per dataset
  (composite runs)."""
  ensemble = (results.get("ensemble") or {}).get("metrics", {})
  lines = ["| metric | mean ± std over seeds | per seed | seed ensemble |", "|---|---|---|---|"]
  for name in METRICS:
    metric = results["metrics"].get(name)
    if metric is None:
      continue
    seeds = ", ".join(f"{v:.3f}" for v in metric.get("per_seed", []))
    lines.append(f"| {METRIC_TITLES[name]} | {metric_cell(metric)} | {seeds} | "
                 f"{metric_cell(ensemble.get(name))} |")
  per_dataset = results.get("per_dataset") or {}
  if per_dataset:
    lines += ["", "| dataset | " + " | ".join(METRIC_TITLES[m] for m in METRICS) + " |",
              "|---|" + "---|" * len(METRICS)]
    for dataset, metrics in sorted(per_dataset.items()):
      lines.append(f"| {dataset} | " + " | ".join(metric_cell(metrics.get(m)) for m in METRICS)
                   + " |")
  return "\n".join(lines)


def train_side_lines(results: dict) -> list[str]:
  """Markdown lines of results.json's 'train_side' (the training clips in eval mode at each fold's
  reported epoch, microexp/train/train_eval.py) beside the test side; [] when absent."""
  side = results.get("train_side")
  if not side:
    return []
  lines = ["Training side: each fold's model at its reported epoch, in eval mode (no augmentation, "
           "no dropout, BatchNorm running statistics), on its own training clips; pooled over "
           "folds like the test side. A large train-test gap is over-fitting.", "",
           "| metric | train (mean ± std over seeds) | test (mean ± std over seeds) |",
           "|---|---|---|"]
  for name in METRICS:
    lines.append(f"| {METRIC_TITLES[name]} | {metric_cell(side['metrics'].get(name))} | "
                 f"{metric_cell(results['metrics'].get(name))} |")
  return lines


def draw_confusion(ax, confusion, class_names: Sequence[str], title: str, small: bool = False):
  """Confusion [K, K] (rows: true class) on a matplotlib axis: colours row-normalised (recall per
  true class), each cell its count (and its row fraction unless `small`, for grids of folds)."""
  confusion = np.asarray(confusion, np.int64)
  rows = confusion.sum(axis=1, keepdims=True)
  normalised = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
  ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
  ticks = np.arange(len(class_names))
  labels = [n[:3] for n in class_names] if small else list(class_names)
  ax.set_xticks(ticks, labels, rotation=45 if not small else 90,
                ha="right" if not small else "center", fontsize=6 if small else 9)
  ax.set_yticks(ticks, labels, fontsize=6 if small else 9)
  if not small:
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
  ax.set_title(title, fontsize=8 if small else 10)
  for i, j in np.ndindex(confusion.shape):
    if small and not confusion[i, j]:
      continue
    text = str(confusion[i, j]) if small else f"{confusion[i, j]}\n{normalised[i, j]:.2f}"
    ax.text(j, i, text, ha="center", va="center", fontsize=6 if small else 8,
            color="white" if normalised[i, j] > 0.5 else "black")


def plot_confusion(confusion, class_names: Sequence[str], path: str | pathlib.Path,
                   title: str = "Confusion (pooled over folds)") -> pathlib.Path:
  """Writes one confusion matrix [K, K] (rows: true class) as a PNG; returns its path."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  size = 1.6 + 0.7 * len(class_names)
  fig, ax = plt.subplots(figsize=(size, size))
  draw_confusion(ax, confusion, class_names, title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return pathlib.Path(path)
