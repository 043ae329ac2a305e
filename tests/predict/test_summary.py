"""The one confusion plot and the one metrics table, shared by summary.md and the reports."""

from __future__ import annotations

import matplotlib.image
import numpy as np

from microexp.train import summary


def _results(**extra):
  metric = lambda v: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": list(v)}
  return {"metrics": {"accuracy": metric([0.7, 0.8]), "uf1": metric([0.5, 0.6]),
                      "uar": metric([0.55, 0.65])}, **extra}


def test_metrics_table_rows_ensemble_and_datasets():
  table = summary.metrics_table(_results(
      ensemble={"metrics": {"accuracy": 0.8, "uf1": 0.61, "uar": 0.66}},
      per_dataset={"smic": {"accuracy": {"mean": 0.5, "std": 0.1}, "uf1": {"mean": 0.4},
                            "uar": None},
                   "casme2": {"accuracy": {"mean": 0.9, "std": 0.0}}}))
  lines = table.splitlines()
  assert lines[0] == "| metric | mean ± std over seeds | per seed | seed ensemble |"
  assert "| Accuracy | 0.750 ± 0.050 | 0.700, 0.800 | 0.800 |" in lines
  assert "| UAR | 0.600 ± 0.050 | 0.550, 0.650 | 0.660 |" in lines
  # Datasets sorted; a missing metric is a dash, a dict without std its mean.
  assert lines.index("| casme2 | 0.900 ± 0.000 | – | – |") < lines.index(
      "| smic | 0.500 ± 0.100 | 0.400 | – |")


def test_metrics_table_without_ensemble():
  assert "| UF1 | 0.550 ± 0.050 | 0.500, 0.600 | – |" in summary.metrics_table(_results())


def test_plot_confusion_writes_a_png(tmp_path):
  cm = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])  # an empty row must not divide by zero
  path = summary.plot_confusion(cm, ["happiness", "surprise", "others"], tmp_path / "c.png", "t")
  image = matplotlib.image.imread(path)
  assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0.01
