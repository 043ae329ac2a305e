"""Per-job results of a chunk and their aggregation into results.json (metrics: metrics.py)."""

from __future__ import annotations

import numpy as np

from microexp.train import metrics as metrics_lib
from microexp.train.writers import CURVES

SPLITS = ("train", "val", "test")


def job_results(layout, history: dict, selection, *, with_val: bool) -> list[dict]:
  """One JSON-able dict per real job of a chunk.

  history: {split: {curve: [E, L] float32}}; selection: a `selection.Selection`.
  """
  out = []
  for f, job in enumerate(layout.jobs):
    test_idx = layout.test_idx[f]
    out.append({
        "seed": job.seed, "fold": job.fold.name, "test_subjects": list(job.fold.test_subjects),
        "val_subjects": list(job.fold.val_subjects), "test_idx": test_idx.tolist(),
        "test_probs": selection.test_probs[f, :len(test_idx)].tolist(),
        "best_epoch": int(selection.best_epoch[f]),
        "history": {f"{split}/{c}": [float(v) for v in history[split][c][:, f]]
                    for split in SPLITS for c in CURVES if split != "val" or with_val}})
  return out


def aggregate(job_results_: list[dict], data: dict, subset, seeds, fold_names) -> dict:
  """Pooled metrics per seed (mean ± std), seed ensemble, per dataset, per fold, predictions."""
  k = subset.num_classes
  labels = data["labels"]
  per_seed_cm, per_fold, predictions, history = {}, [], [], {}
  probs_by_sample = {}
  for r in job_results_:
    idx = np.asarray(r["test_idx"], np.int64)
    probs = np.asarray(r["test_probs"], np.float32).reshape(len(idx), k)
    preds = probs.argmax(-1) if len(idx) else np.zeros(0, np.int64)
    cm = metrics_lib.confusion_matrix(labels[idx], preds, k)
    per_seed_cm[r["seed"]] = per_seed_cm.get(r["seed"], 0) + cm
    per_fold.append({"seed": r["seed"], "subject": r["fold"], "test_subjects": r["test_subjects"],
                     "val_subjects": r["val_subjects"], "n_test": int(len(idx)),
                     "accuracy": metrics_lib.accuracy(cm), "best_epoch": r["best_epoch"],
                     "confusion": cm.tolist()})
    for i, p, pr in zip(idx, preds, probs):
      predictions.append({"seed": r["seed"], "subject": str(data["subject"][i]),
                          "dataset": str(data["dataset"][i]), "clip": str(data["clip"][i]),
                          "label": int(labels[i]), "pred": int(p),
                          "probs": [round(float(x), 6) for x in pr]})
      probs_by_sample.setdefault(int(i), []).append(pr)
    history[f"seed{r['seed']}/{r['fold']}"] = r["history"]

  seed_metrics = [metrics_lib.summarize(per_seed_cm[s]) for s in seeds]
  results = {
      "class_names": list(subset.class_names), "seeds": list(seeds), "folds": list(fold_names),
      "metrics": {m: metrics_lib.mean_std([sm[m] for sm in seed_metrics])
                  for m in ("accuracy", "uf1", "uar")},
  }
  pooled = sum(per_seed_cm[s] for s in seeds)
  results["confusion"] = pooled.tolist()
  results["class_report"] = metrics_lib.class_report(pooled, subset.class_names)
  # Seed ensemble: average probabilities over seeds per test clip.
  ens_idx = np.array(sorted(probs_by_sample), np.int64)
  if len(ens_idx):
    ens_pred = np.array([np.mean(probs_by_sample[i], 0).argmax() for i in ens_idx])
    ens_cm = metrics_lib.confusion_matrix(labels[ens_idx], ens_pred, k)
    results["ensemble"] = {"metrics": metrics_lib.summarize(ens_cm), "confusion": ens_cm.tolist()}
  datasets = sorted(set(map(str, data["dataset"])))
  if len(datasets) > 1:
    results["per_dataset"] = {}
    for ds in sorted({p["dataset"] for p in predictions}):  # the tested ones (holdout: B only)
      per = []
      for s in seeds:
        sel = [(p["label"], p["pred"]) for p in predictions if p["seed"] == s and p["dataset"] == ds]
        y, p = (np.array(v) for v in zip(*sel)) if sel else (np.zeros(0, int), np.zeros(0, int))
        per.append(metrics_lib.summarize(metrics_lib.confusion_matrix(y, p, k)))
      results["per_dataset"][ds] = {m: metrics_lib.mean_std([x[m] for x in per])
                                    for m in ("accuracy", "uf1", "uar")}
  results["per_fold"] = per_fold
  results["predictions"] = predictions
  results["history"] = history
  return results
