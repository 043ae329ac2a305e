"""The AU task (`config.train.task='au'`): multi-label action-unit targets, loss and metrics.

Beside the default emotion task (softmax over classes, metrics.py), 'au' trains any registered
model as K sigmoid outputs, K = the AUs of the `au` array with at least `config.train.au_min_count`
positive clips (the columns, `au_names`, are listed in results.json). Loss: binary cross-entropy,
each AU's positives weighted by its negatives/positives ratio among the fold's training clips when
`config.train.au_pos_weight` (else 1). Metrics (meb's AU protocol): per-AU F1 at threshold 0.5 on
the test predictions pooled over folds, and their mean, macro-F1 (per seed, then mean ± std);
beside them meb's own figure, `meb_f1`: per AU the mean of the F1 of its positive and its negative
class (sklearn's average='macro' per AU, meb/utils/metrics.py), averaged over the AUs.
Clips of a dataset that codes no AU (`au_coded` False, e.g. SMIC in a composite) are left out.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from microexp.train import inputs as inputs_lib
from microexp.train import workdir as workdir_lib
from microexp.train import metrics as metrics_lib
from microexp.train import selection as selection_lib
from microexp.train import tta as tta_lib
from microexp.train.tasks import TASKS

THRESHOLD = 0.5


@TASKS.register("au")
@dataclasses.dataclass(frozen=True)
class ActionUnits:
  """K sigmoid outputs, one per AU with >= `min_count` positive clips (module docstring)."""

  min_count: int = 1  # config.train.au_min_count
  pos_weight: bool = False  # config.train.au_pos_weight
  name: str = "au"
  output_unit: str = "AUs"
  device_keys: tuple[str, ...] = ("labels", "au_targets")
  train_side: bool = False  # no class confusion to report
  final_models: bool = False  # predict reads emotion models
  trainer: str | None = None  # engine.train_and_evaluate trains it
  timelines: bool = False
  search_and_ensembles: bool = False

  @classmethod
  def from_config(cls, train_config) -> "ActionUnits":
    return cls(min_count=int(train_config.get("au_min_count", 1)),
               pos_weight=bool(train_config.get("au_pos_weight", False)))

  def check_config(self, config) -> None:
    if inputs_lib.parse_class_balanced(config.train.class_balanced) == "per_dataset":
      raise ValueError("config.train.task='au' weights each AU's positives by "
                       "config.train.au_pos_weight; class_balanced='per_dataset' balances emotion "
                       "classes and does not apply to it: set class_balanced=False.")

  def prepare(self, arrays, config):
    del config
    return prepare_au(arrays, self.min_count)

  def loss_weight_fn(self, data):
    """Per fold, the AUs' positive weights [K]: one row for every dataset (jobs.layout)."""
    return lambda train_mask: pos_weights(data["au_targets"][train_mask], self.pos_weight)

  def targets(self, data, idx, spec):
    del spec
    return data["au_targets"][idx]  # multi-hot [B, K]

  def loss(self, logits, targets, weights):
    return sigmoid_bce(logits, targets, weights)

  def correct(self, logits, data, idx):
    return correct_au(logits, data["au_targets"][idx])

  def tta_logits(self, logits_fn, x, is_flow):
    """The logit of the mean sigmoid, so a sigmoid of the result is the TTA probability."""
    p = jnp.clip(tta_lib.flip_tta(logits_fn, x, is_flow=is_flow, multi_label=True),
                 1e-7, 1 - 1e-7)
    return jnp.log(p) - jnp.log1p(-p)

  def evaluate(self, logits, val_idx, test_idx, data, **kwargs):
    return evaluate_au(logits, val_idx, test_idx, data["au_targets"], **kwargs)

  def aggregate(self, job_results, data, output_names, seeds, fold_names):
    return aggregate_au(job_results, data, output_names, seeds, fold_names)

  def write_outputs(self, workdir, results):
    write_outputs(workdir, results)

  def log_summary(self, results, workdir):
    for line in log_lines(results):
      logging.info("%s", line)
    logging.info("Done in %.1f s. Outputs in %s.", results["wall_time_s"], workdir)


# --- data -------------------------------------------------------------------------------------

def prepare_au(arrays: dict[str, np.ndarray], min_count: int) -> tuple[dict, tuple[str, ...]]:
  """Loader arrays -> (host data with 'au_targets' float32 [N, K] and 'labels' zeros [N], AU names).

  Keeps the clips whose dataset codes AUs and the AUs with >= `min_count` positives among them.
  """
  for key in ("inputs", "subject", "au", "au_names"):
    if key not in arrays:
      raise ValueError(f"config.train.task='au' needs the loader's {key!r} array (got "
                       f"{sorted(arrays)}); see the arrays contract in docs/ARCHITECTURE.md.")
  au = np.asarray(arrays["au"], np.float32)
  n = len(au)
  keep = np.asarray(arrays.get("au_coded", np.ones(n, bool)), bool)
  names = np.asarray(arrays["au_names"])[0] if n and au.shape[1] else np.zeros(0, str)
  counts = au[keep].sum(0)
  cols = np.flatnonzero(counts >= min_count)
  if not keep.any() or not len(cols):
    raise ValueError(f"config.train.task='au': no AU has >= config.train.au_min_count="
                     f"{min_count} positive clips (counts {dict(zip(names.tolist(), counts))}); "
                     "lower au_min_count or load a dataset that codes AUs.")
  data = {k: np.asarray(v)[keep] for k, v in arrays.items()
          if np.ndim(v) and len(v) == n and k not in ("au", "au_names")}
  data["au_targets"] = au[keep][:, cols]
  data["labels"] = np.zeros(int(keep.sum()), np.int32)  # unused by the AU task
  data["inputs"] = data["inputs"].astype(np.float32)
  data["subject"] = data["subject"].astype(str)
  data.setdefault("dataset", np.full(len(data["labels"]), "dataset"))
  data.setdefault("clip", np.array([f"clip{i}" for i in range(len(data["labels"]))]))
  if not np.isfinite(data["inputs"]).all():
    raise ValueError("Non-finite input values in the dataset; rebuild it.")
  return data, tuple(str(a) for a in names[cols])


def pos_weights(targets: np.ndarray, weighted: bool) -> np.ndarray:
  """targets [n, K] of a fold's training clips -> [K] positive weights n_neg / n_pos (1 if
  not `weighted` or an AU has no positive)."""
  k = targets.shape[1]
  if not weighted:
    return np.ones(k, np.float32)
  pos = targets.sum(0)
  return np.where(pos > 0, (len(targets) - pos) / np.maximum(pos, 1), 1.0).astype(np.float32)


# --- steps (jax, one fold) --------------------------------------------------------------------

def sigmoid_bce(logits, targets, pos_weight):
  """logits, targets [B, K], pos_weight [K] or [B, K] -> scalar mean of the positive-weighted BCE."""
  logits = logits.astype(jnp.float32)
  log_p, log_not_p = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
  return -jnp.mean(pos_weight * targets * log_p + (1.0 - targets) * log_not_p)


def correct_au(logits, targets):
  """Per clip, the fraction of AUs right at THRESHOLD, summed over the batch (scalar)."""
  pred = jax.nn.sigmoid(logits.astype(jnp.float32)) >= THRESHOLD
  return jnp.sum(jnp.mean(pred == (targets >= 0.5), axis=-1))


# --- metrics (host) ---------------------------------------------------------------------------

def _sigmoid(x: np.ndarray) -> np.ndarray:
  return 1.0 / (1.0 + np.exp(-x))


def au_f1(targets: np.ndarray, preds: np.ndarray) -> np.ndarray:
  """targets, preds [N, K] {0, 1} -> [K] F1 = 2TP / (2TP + FP + FN) (0 where it is 0/0)."""
  t, p = np.asarray(targets) >= 0.5, np.asarray(preds) >= 0.5
  tp = (t & p).sum(0)
  denom = 2 * tp + (~t & p).sum(0) + (t & ~p).sum(0)
  return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def au_metrics(targets: np.ndarray, probs: np.ndarray) -> dict:
  """targets [N, K], probabilities [N, K] -> {'macro_f1', 'per_au_f1' [K], 'meb_f1',
  'accuracy'} at THRESHOLD."""
  preds = probs >= THRESHOLD
  f1 = au_f1(targets, preds)
  two_class = (f1 + au_f1(1 - (targets >= 0.5), ~preds)) / 2
  return {"macro_f1": float(f1.mean()) if len(f1) else float("nan"),
          "per_au_f1": [float(x) for x in f1],
          "meb_f1": float(two_class.mean()) if len(f1) else float("nan"),
          "accuracy": float((preds == (targets >= 0.5)).mean()) if targets.size else float("nan")}


def evaluate_au(logits: np.ndarray, val_idx, test_idx, targets: np.ndarray, *, select_metric: str,
                num_classes: int, length: int, n_test: int) -> selection_lib.Evaluation:
  """selection.evaluate for the AU task: logits [L, M, K]; targets [N, K]. 'uf1' selects on the
  validation macro-F1, 'accuracy' on the per-AU accuracy, 'loss' on the BCE."""
  out = {k: np.full((length,), np.nan, np.float32) for k in (
      "val_loss", "val_accuracy", "val_score", "test_loss", "test_accuracy")}
  probs = np.zeros((length, n_test, num_classes), np.float32)
  for f, (v, t) in enumerate(zip(val_idx, test_idx)):
    for split, idx, lg in (("val", v, logits[f, :len(v)]),
                           ("test", t, logits[f, len(v):len(v) + len(t)])):
      if not len(idx):
        continue
      y = targets[idx]
      p = _sigmoid(lg.astype(np.float64))
      eps = 1e-7
      out[f"{split}_loss"][f] = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
      m = au_metrics(y, p)
      out[f"{split}_accuracy"][f] = m["accuracy"]
      if split == "val":
        scores = {"loss": -out["val_loss"][f], "accuracy": m["accuracy"], "uf1": m["macro_f1"]}
        if select_metric not in scores:
          raise ValueError(f"config.train.select_metric must be one of {sorted(scores)}, got "
                           f"{select_metric!r}.")
        out["val_score"][f] = scores[select_metric]
      else:
        probs[f, :len(t)] = p
  return selection_lib.Evaluation(test_probs=probs, **out)


def aggregate_au(job_results: list[dict], data: dict, au_names, seeds, fold_names) -> dict:
  """results.json of the AU task: per-AU F1 and macro-F1 pooled over folds (per seed, then
  mean ± std), seed ensemble, per dataset, per fold, predictions."""
  targets, k = data["au_targets"], len(au_names)
  pooled, per_fold, predictions, history, by_sample = {}, [], [], {}, {}
  for r in job_results:
    idx = np.asarray(r["test_idx"], np.int64)
    probs = np.asarray(r["test_probs"], np.float32).reshape(len(idx), k)
    ids, ps = pooled.setdefault(r["seed"], ([], []))
    ids.append(idx)
    ps.append(probs)
    m = au_metrics(targets[idx], probs)
    per_fold.append({"seed": r["seed"], "subject": r["fold"], "test_subjects": r["test_subjects"],
                     "val_subjects": r["val_subjects"], "n_test": int(len(idx)),
                     "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                     "best_epoch": r["best_epoch"]})
    for i, p in zip(idx, probs):
      predictions.append({"seed": r["seed"], "subject": str(data["subject"][i]),
                          "dataset": str(data["dataset"][i]), "clip": str(data["clip"][i]),
                          "au": [a for a, y in zip(au_names, targets[i]) if y >= 0.5],
                          "pred": [a for a, q in zip(au_names, p) if q >= THRESHOLD],
                          "probs": [round(float(x), 6) for x in p]})
      by_sample.setdefault(int(i), []).append(p)
    history[f"seed{r['seed']}/{r['fold']}"] = r["history"]

  def seed_metrics(select=None):
    out = []
    for s in seeds:
      idx, probs = (np.concatenate(x) for x in pooled[s])
      keep = np.ones(len(idx), bool) if select is None else select(idx)
      out.append(au_metrics(targets[idx[keep]], probs[keep]))
    return out

  def summarise(ms):
    return {"macro_f1": metrics_lib.mean_std([m["macro_f1"] for m in ms]),
            "meb_f1": metrics_lib.mean_std([m["meb_f1"] for m in ms]),
            "accuracy": metrics_lib.mean_std([m["accuracy"] for m in ms]),
            "per_au_f1": {a: metrics_lib.mean_std([m["per_au_f1"][j] for m in ms])
                          for j, a in enumerate(au_names)}}

  results = {"task": "au", "au_names": list(au_names), "class_names": list(au_names),
             "seeds": list(seeds), "folds": list(fold_names), **summarise(seed_metrics())}
  results["metrics"] = {k: results.pop(k) for k in ("macro_f1", "meb_f1", "accuracy")}
  results["support"] = {a: int(v) for a, v in zip(au_names, targets[np.array(
      sorted(by_sample), np.int64)].sum(0))} if by_sample else {}
  if by_sample:
    ens_idx = np.array(sorted(by_sample), np.int64)
    ens = au_metrics(targets[ens_idx], np.stack([np.mean(by_sample[i], 0) for i in ens_idx]))
    results["ensemble"] = {"metrics": {k: ens[k] for k in ("macro_f1", "meb_f1", "accuracy")},
                           "per_au_f1": dict(zip(au_names, ens["per_au_f1"]))}
  datasets = sorted(set(map(str, data["dataset"])))
  if len(datasets) > 1:
    results["per_dataset"] = {}
    for ds in datasets:
      in_ds = lambda idx, ds=ds: data["dataset"][idx] == ds
      if any(in_ds(np.concatenate(pooled[s][0])).any() for s in seeds):
        results["per_dataset"][ds] = summarise(seed_metrics(in_ds))
  results["per_fold"] = per_fold
  results["predictions"] = predictions
  results["history"] = history
  return results


def summary_markdown(results: dict) -> str:
  """The human-readable summary of an AU run's results.json."""
  cfg, m = results["config"], results["metrics"]
  lines = [f"# {cfg['model']['name']} on {cfg['dataset']['name']}: action units "
           f"({cfg['dataset']['representation']})", "",
           f"Protocol: {cfg['train']['protocol']}, selection: {cfg['train']['selection']}, "
           f"seeds: {results['seeds']}, folds: {len(results['folds'])}, "
           f"synthetic: {cfg['dataset'].get('synthetic', False)}", "",
           f"Macro-F1 (threshold {THRESHOLD}, pooled over folds): {m['macro_f1']['mean']:.3f} ± "
           f"{m['macro_f1']['std']:.3f}; meb's F1 (two-class per AU) {m['meb_f1']['mean']:.3f}; "
           f"per-AU accuracy {m['accuracy']['mean']:.3f}", "",
           "| AU | F1 (mean ± std over seeds) | positives |", "|---|---|---|"]
  for a in results["au_names"]:
    f = results["per_au_f1"][a]
    lines.append(f"| AU{a} | {f['mean']:.3f} ± {f['std']:.3f} | {results['support'].get(a, 0)} |")
  if results.get("per_dataset"):
    lines += ["", "| dataset | macro-F1 | meb's F1 | per-AU accuracy |", "|---|---|---|---|"]
    for ds, dm in sorted(results["per_dataset"].items()):
      lines.append(f"| {ds} | {dm['macro_f1']['mean']:.3f} ± {dm['macro_f1']['std']:.3f} | "
                   f"{dm['meb_f1']['mean']:.3f} | {dm['accuracy']['mean']:.3f} |")
  lines += ["", "| fold | n_test | macro-F1 |", "|---|---|---|"]
  for f in results["per_fold"]:
    lines.append(f"| {f['subject']} (seed {f['seed']}) | {f['n_test']} | {f['macro_f1']:.3f} |")
  lines += ["", f"Wall time: {results.get('wall_time_s', float('nan')):.1f} s", ""]
  return "\n".join(lines)


def write_outputs(workdir, results: dict) -> None:
  """results.json and summary.md of an AU run."""
  workdir_lib.write_json_atomic(workdir / "results.json", results)
  (workdir / "summary.md").write_text(summary_markdown(results))


def log_lines(results: dict) -> list[str]:
  """The console summary of an AU run."""
  m = results["metrics"]
  lines = [f"AU macro-F1 {m['macro_f1']['mean']:.4f} ± {m['macro_f1']['std']:.4f}, meb's F1 "
           f"{m['meb_f1']['mean']:.4f}, per-AU accuracy {m['accuracy']['mean']:.4f}; per AU: " + ", ".join(
               f"AU{a} {results['per_au_f1'][a]['mean']:.3f}" for a in results["au_names"])]
  for ds, dm in sorted(results.get("per_dataset", {}).items()):
    lines.append(f"  {ds:<8} macro-F1 {dm['macro_f1']['mean']:.4f} ± {dm['macro_f1']['std']:.4f}")
  return lines
