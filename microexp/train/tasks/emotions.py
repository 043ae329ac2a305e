"""The emotion task (the default, `config.train.task='emotion'`): one class per clip.

Targets: the class of `config.dataset.classes` (inputs.prepare_data), one-hot with
`config.train.label_smoothing`. Loss: softmax cross-entropy, each clip weighted by its class's
(and source dataset's) weight (inputs.loss_weights, `config.train.class_balanced`). Metrics
(metrics.py): accuracy, UF1 and UAR of the test predictions pooled over folds, per seed, then
mean ± std; a seed ensemble; per dataset; per fold. Writers: results.json, summary.md,
confusion.png (and confusion_train.png with the training-side report, train_eval.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from microexp.train import inputs as inputs_lib
from microexp.train import metrics as metrics_lib
from microexp.train import selection as selection_lib
from microexp.train import summary
from microexp.train import summary_sections
from microexp.train import tta as tta_lib
from microexp.train import workdir as workdir_lib
from microexp.train.tasks import TASKS


@TASKS.register("emotion")
@dataclasses.dataclass(frozen=True)
class Emotions:
  """Softmax over the K classes of `config.dataset.classes` (module docstring)."""

  name: str = "emotion"
  output_unit: str = "classes"
  device_keys: tuple[str, ...] = ("labels",)
  train_side: bool = True
  final_models: bool = True
  trainer: str | None = None  # engine.train_and_evaluate trains it
  timelines: bool = False
  search_and_ensembles: bool = True

  @classmethod
  def from_config(cls, train_config) -> "Emotions":
    del train_config
    return cls()

  def check_config(self, config) -> None:
    del config

  def prepare(self, arrays, config):
    data, subset = inputs_lib.prepare_data(arrays, config.dataset.classes)
    return data, tuple(subset.class_names)

  def loss_weight_fn(self, data):
    return None  # jobs.layout: class weights of config.train.class_balanced

  def targets(self, data, idx, spec):
    return optax.smooth_labels(jax.nn.one_hot(data["labels"][idx], spec.num_classes),
                               spec.label_smoothing)

  def loss(self, logits, targets, weights):
    return weighted_cross_entropy(logits, targets, weights)

  def correct(self, logits, data, idx):
    return jnp.sum(jnp.argmax(logits, -1) == data["labels"][idx])

  def tta_logits(self, logits_fn, x, is_flow):
    """The log of the mean probabilities, so a softmax of the result is the TTA probability."""
    return jnp.log(jnp.maximum(tta_lib.flip_tta(logits_fn, x, is_flow=is_flow), 1e-30))

  def evaluate(self, logits, val_idx, test_idx, data, **kwargs):
    return selection_lib.evaluate(logits, val_idx, test_idx, data["labels"], **kwargs)

  def aggregate(self, job_results, data, output_names, seeds, fold_names):
    return aggregate(job_results, data, output_names, seeds, fold_names)

  def write_outputs(self, workdir, results):
    write_outputs(workdir, results)

  def log_summary(self, results, workdir):
    log_summary(results, workdir)


def weighted_cross_entropy(logits, targets, class_weights):
  """logits [B, K], soft targets [B, K], class_weights [K] or [B, K] -> scalar mean weighted CE."""
  ce = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
  return jnp.mean(ce * jnp.sum(targets * class_weights, -1))


def aggregate(job_results_: list[dict], data: dict, class_names, seeds, fold_names) -> dict:
  """Pooled metrics per seed (mean ± std), seed ensemble, per dataset, per fold, predictions."""
  k = len(class_names)
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
      "class_names": list(class_names), "seeds": list(seeds), "folds": list(fold_names),
      "metrics": {m: metrics_lib.mean_std([sm[m] for sm in seed_metrics])
                  for m in ("accuracy", "uf1", "uar")},
  }
  pooled = sum(per_seed_cm[s] for s in seeds)
  results["confusion"] = pooled.tolist()
  results["class_report"] = metrics_lib.class_report(pooled, class_names)
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


def summary_markdown(results: dict) -> str:
  """The human-readable summary of results.json."""
  cfg = results["config"]
  model = cfg["model"]["name"]
  if "members" in results:
    model = "ensemble of " + " + ".join(results["members"])
  lines = [f"# {model} on {cfg['dataset']['name']} "
           f"({cfg['dataset']['representation']}, classes {cfg['dataset']['classes']})", "",
           f"Protocol: {cfg['train']['protocol']}, selection: {cfg['train']['selection']}, "
           f"seeds: {results['seeds']}, folds: {len(results['folds'])}, "
           f"synthetic: {cfg['dataset'].get('synthetic', False)}", "",
           summary.metrics_table(results)]
  lines += ["", "Per class (pooled over folds and seeds):", "",
            "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
  for r in results["class_report"]:
    lines.append(f"| {r['class']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
                 f"{r['support']} |")
  lines += ["", "Confusion (rows true, columns predicted; pooled over folds, summed over seeds):", "",
            "| | " + " | ".join(results["class_names"]) + " |",
            "|---" * (len(results["class_names"]) + 1) + "|"]
  for name, row in zip(results["class_names"], results["confusion"]):
    lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
  side = results.get("train_side")
  if side:
    lines += [""] + summary.train_side_lines(results)
    lines += ["", "Training-side confusion (rows true, columns predicted; summed over folds and "
              "seeds):", "", "| | " + " | ".join(results["class_names"]) + " |",
              "|---" * (len(results["class_names"]) + 1) + "|"]
    for name, row in zip(results["class_names"], side["confusion"]):
      lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
  train_acc = {}
  for f in (side or {}).get("per_fold", []):
    train_acc.setdefault(f["subject"], []).append(f["accuracy"])
  lines += ["", "Per fold accuracy (mean over seeds):", "",
            "| fold | n_test | accuracy |" + (" train accuracy |" if train_acc else ""),
            "|---|---|---|" + ("---|" if train_acc else "")]
  by_fold = {}
  for f in results["per_fold"]:
    by_fold.setdefault(f["subject"], []).append(f)
  for subject, fs in by_fold.items():
    lines.append(f"| {subject} | {fs[0]['n_test']} | "
                 f"{np.mean([f['accuracy'] for f in fs]):.3f} |"
                 + (f" {np.mean(train_acc[subject]):.3f} |" if subject in train_acc else ""))
  if "members" in results:
    lines += [""] + summary_sections.members_markdown(results["members"])
    for name, m in results["members"].items():
      if "search" in m:
        lines += [f"Member {name}:", ""] + summary_sections.search_markdown(m["search"])
  if "search" in results:
    lines += [""] + summary_sections.search_markdown(results["search"])
  lines += ["", f"Wall time: {results.get('wall_time_s', float('nan')):.1f} s", ""]
  return "\n".join(lines)


def write_outputs(workdir: str | Path, results: dict) -> None:
  """results.json, summary.md, confusion.png (pooled over folds, summed over seeds) and, with a
  training side, confusion_train.png."""
  workdir = Path(workdir)
  workdir_lib.write_json_atomic(workdir / "results.json", results)
  (workdir / "summary.md").write_text(summary_markdown(results))
  m = results["metrics"]
  summary.plot_confusion(results["confusion"], results["class_names"], workdir / "confusion.png",
                         f"pooled, {len(results['seeds'])} seed(s): acc "
                         f"{m['accuracy']['mean']:.3f} UF1 {m['uf1']['mean']:.3f} UAR "
                         f"{m['uar']['mean']:.3f}")
  side = results.get("train_side")
  if side:
    t = side["metrics"]
    summary.plot_confusion(side["confusion"], results["class_names"],
                           workdir / "confusion_train.png",
                           f"train (eval mode): acc {t['accuracy']['mean']:.3f} UF1 "
                           f"{t['uf1']['mean']:.3f}")


def log_summary(results: dict, workdir) -> None:
  """The console summary of an emotion run."""
  m = results["metrics"]
  logging.info("Done in %.1f s: accuracy %.4f ± %.4f, UF1 %.4f ± %.4f, UAR %.4f ± %.4f%s. "
               "Outputs in %s.", results["wall_time_s"], m["accuracy"]["mean"],
               m["accuracy"]["std"], m["uf1"]["mean"], m["uf1"]["std"], m["uar"]["mean"],
               m["uar"]["std"],
               (f"; seed ensemble UF1 {results['ensemble']['metrics']['uf1']:.4f}"
                if "ensemble" in results and len(results["seeds"]) > 1 else ""), workdir)
  for name, dm in sorted(results.get("per_dataset", {}).items()):
    logging.info("  %-8s UF1 %.4f ± %.4f, UAR %.4f ± %.4f, accuracy %.4f ± %.4f", name,
                 dm["uf1"]["mean"], dm["uf1"]["std"], dm["uar"]["mean"], dm["uar"]["std"],
                 dm["accuracy"]["mean"], dm["accuracy"]["std"])
