"""Reports from a fake results.json (the engine's schema), independent of the engine."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from microexp.report import workdirs as report

CLASSES = ["happiness", "surprise", "repression"]


def _fake_results(workdir, model, accuracy_per_seed, seed=0):
  """A results.json with 4 subjects x 2 seeds; the numbers are consistent with each other."""
  rng = np.random.default_rng(seed)
  subjects = ["sub01", "sub02", "sub03", "sub04"]
  per_fold, predictions, history = [], [], {}
  confusion = np.zeros((3, 3), np.int64)
  for s in range(2):
    for i, subject in enumerate(subjects):
      labels = rng.integers(0, 3, 5 + i)
      preds = np.where(rng.random(len(labels)) < accuracy_per_seed[s], labels, (labels + 1) % 3)
      fold_confusion = np.zeros((3, 3), np.int64)
      np.add.at(fold_confusion, (labels, preds), 1)
      confusion += fold_confusion
      per_fold.append({"seed": s, "subject": subject, "n_test": len(labels),
                       "accuracy": float((labels == preds).mean()),
                       "confusion": fold_confusion.tolist()})
      predictions += [{"seed": s, "subject": subject, "dataset": "casme2", "clip": f"EP{k}",
                       "label": int(l), "pred": int(p), "probs": [0.2, 0.3, 0.5]}
                      for k, (l, p) in enumerate(zip(labels, preds))]
      epochs = np.arange(1, 9)
      history[f"seed{s}/{subject}"] = {
          "train/epoch_loss": (1.1 / epochs).tolist(),
          "train/epoch_categorical_accuracy": (1 - 0.6 / epochs).tolist(),
          "test/epoch_loss": (1.2 / np.sqrt(epochs)).tolist(),
          "test/epoch_categorical_accuracy": (0.7 - 0.3 / epochs).tolist()}
  metric = lambda v: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": list(v)}
  results = {
      "config": {"model": {"name": model, "kwargs": {"batch_norm": True}},
                 "dataset": {"name": "casme2", "representation": "apex_flow", "classes": "3",
                             "flow_method": "tvl1", "image_size": 28},
                 "train": {"protocol": "loso", "epochs": 8, "seeds": [0, 1]}},
      "class_names": CLASSES, "seeds": [0, 1], "folds": subjects,
      "metrics": {"accuracy": metric(accuracy_per_seed), "uf1": metric([0.5, 0.6]),
                  "uar": metric([0.55, 0.65])},
      "confusion": confusion.tolist(), "per_fold": per_fold, "predictions": predictions,
      "history": history}
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "results.json").write_text(json.dumps(results))
  return results


def test_report_writes_figures_and_markdown(tmp_path):
  results = _fake_results(tmp_path / "ststnet", "ststnet", [0.7, 0.8])
  path = report.write_report(tmp_path / "ststnet")
  text = path.read_text()
  for name in ("confusion.png", "per_subject.png", "confusion_per_fold.png", "history.png"):
    image = matplotlib.image.imread(path.parent / name)
    assert image.shape[0] > 150 and image.shape[1] > 150
    assert image[..., :3].std() > 0.05  # not a blank canvas
    assert f"]({name})" in text
  assert "| Accuracy | 0.750 ± 0.050 | 0.700, 0.800 |" in text
  assert "model.name = 'ststnet'" in text and "dataset.flow_method = 'tvl1'" in text
  # Per-subject accuracy pooled over seeds matches the folds.
  subjects = report.per_subject(results["per_fold"])
  folds = [f for f in results["per_fold"] if f["subject"] == "sub02"]
  expected = sum(f["accuracy"] * f["n_test"] for f in folds) / sum(f["n_test"] for f in folds)
  assert subjects["sub02"]["accuracy"] == pytest.approx(expected)
  assert np.asarray(subjects["sub02"]["confusion"]).sum() == sum(f["n_test"] for f in folds)


def test_compare_cli_prints_methods_table(tmp_path):
  _fake_results(tmp_path / "ststnet", "ststnet", [0.7, 0.8])
  _fake_results(tmp_path / "resnet", "resnet50", [0.5, 0.6], seed=1)
  out = tmp_path / "methods.md"
  result = subprocess.run(
      [sys.executable, "-m", "microexp.report", "--compare", f"--out={out}",
       str(tmp_path / "ststnet"), str(tmp_path / "resnet")],
      capture_output=True, text=True, check=True)
  rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
  assert len(rows) == 4  # header, rule, 2 methods
  assert "| ststnet | ststnet | apex_flow (tvl1) | 3 | loso | 4 | 2 | 0.750 ± 0.050 |" in rows[2]
  assert "| resnet | resnet50 |" in rows[3] and "0.550 ± 0.050" in rows[3]
  assert out.read_text().strip() == "\n".join(rows)


def test_report_cli_and_missing_results(tmp_path):
  _fake_results(tmp_path / "w", "ststnet", [0.7, 0.8])
  subprocess.run([sys.executable, "-m", "microexp.report", str(tmp_path / "w")], check=True,
                 capture_output=True)
  assert (tmp_path / "w" / "report" / "report.md").is_file()
  with pytest.raises(FileNotFoundError, match="no results.json"):
    report.write_report(tmp_path / "nothing")
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "results.json").write_text("{}")
  with pytest.raises(ValueError, match="missing keys"):
    report.load_results(tmp_path / "bad")
