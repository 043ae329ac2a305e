"""Nested selection of hyper-parameters inside each outer fold (`config.train.search`).

`config.train.search` maps fields (under `config.train`, e.g. `learning_rate`, `class_balanced`,
`augment.mixup` as a nested ConfigDict; or under the model, `model.kwargs.dim`) to tuples of values;
the candidates are their grid (product, fields in sorted order). For each outer job (seed, fold):
the fold's TRAINING subjects are split into `search_inner_folds` groups (by subject name, a
generator seeded by (seed, fold index): nothing of the test subject enters); each candidate trains
on all groups but one and predicts the held-out group, for every group; its score is
`search_metric` of the pooled inner predictions. The best candidate (ties: the first in grid
order) is retrained on the fold's whole training set and tested once. The test subject's clips
are in no inner training set and no inner validation set, so its labels cannot move the choice.

Every inner job of one outer job keeps its key across candidates (common random numbers: the
candidates differ only in what they set). Candidates × inner folds × outer folds are stacked jobs
of the engine, one chunk group per candidate (a candidate may change the compiled step).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import ml_collections
import numpy as np
from absl import logging

from microexp.train import folds as folds_lib
from microexp.train import jobs as jobs_lib
from microexp.train import loop
from microexp.train import metrics as metrics_lib
from microexp.train import runner

SEARCH_METRICS = ("uf1", "uar", "accuracy")
# Inner job indices (their PRNG keys) start here: INNER_INDEX + outer index * 100 + inner fold.
INNER_INDEX = 2_000_000
MAX_INNER_FOLDS = 100


def _flatten(node, prefix: str = "") -> dict:
  out = {}
  for key in sorted(node.keys()):
    value, path = node[key], f"{prefix}{key}"
    if hasattr(value, "keys"):
      out.update(_flatten(value, path + "."))
    else:
      out[path] = value
  return out


def grid(config) -> list[dict]:
  """The candidates of `config.train.search`: [{path: value}] (empty list: no search).

  Nested ConfigDicts give the paths (ConfigDict keys hold no dots): search.augment.mixup ->
  'augment.mixup', search.model.kwargs.dim -> 'model.kwargs.dim'.
  """
  search = _flatten(config.train.get("search") or {})
  if not search:
    return []
  values = []
  for f, v in search.items():
    if not isinstance(v, (tuple, list)) or not v:
      raise ValueError(f"config.train.search.{f} must be a non-empty tuple of values, got {v!r}.")
    values.append(tuple(v))
  return [dict(zip(search, combo)) for combo in itertools.product(*values)]


def candidate_config(config, overrides: dict) -> ml_collections.ConfigDict:
  """A copy of `config` with `overrides` set and no search (paths under train, or 'model.…')."""
  d = config.to_dict()
  d["train"]["search"] = {}
  for path, value in overrides.items():
    keys = path.split(".")
    node = d if keys[0] == "model" else d["train"]
    for key in keys[:-1]:
      if not isinstance(node.get(key), dict):
        raise ValueError(f"config.train.search names {path!r}, which is not a config field.")
      node = node[key]
    if keys[-1] not in node:
      raise ValueError(f"config.train.search names {path!r}, which is not a config field "
                       f"(under {'config' if keys[0] == 'model' else 'config.train'}).")
    node[keys[-1]] = value
  return ml_collections.ConfigDict(d)


def inner_folds(fold: folds_lib.Fold, k: int, seed: int, index: int) -> list[folds_lib.Fold]:
  """`fold`'s training subjects in min(k, n) groups; each group is held out once.

  The held-out group is the inner fold's *test* set (the engine's test slot), never the outer
  fold's test subject.
  """
  subjects = sorted(fold.train_subjects)
  k = min(int(k), len(subjects))
  if k < 2:
    raise ValueError(f"Nested selection needs >= 2 training subjects per fold and "
                     f"config.train.search_inner_folds >= 2 (fold {fold.name!r}: {len(subjects)} "
                     f"subject(s), search_inner_folds={k}).")
  rng = np.random.default_rng([seed, index, 1])
  order = [subjects[i] for i in rng.permutation(len(subjects))]
  groups = [sorted(g.tolist()) for g in np.array_split(np.array(order), k)]
  return [folds_lib.Fold(f"{fold.name}/inner{j}", tuple(s for s in subjects if s not in g), (),
                         tuple(g)) for j, g in enumerate(groups)]


def score(results: list[dict], labels: np.ndarray, num_classes: int, metric: str) -> float:
  """`metric` of the pooled test predictions of `results` (inner jobs of one outer job)."""
  idx = np.concatenate([np.asarray(r["test_idx"], np.int64) for r in results])
  probs = np.concatenate([np.asarray(r["test_probs"], np.float32).reshape(-1, num_classes)
                          for r in results])
  cm = metrics_lib.confusion_matrix(labels[idx], probs.argmax(-1), num_classes)
  return float(metrics_lib.summarize(cm)[metric])


def _inner_k(train_config) -> int:
  k = int(train_config.get("search_inner_folds", 3))
  if not 2 <= k <= MAX_INNER_FOLDS:
    raise ValueError(f"config.train.search_inner_folds must be in 2..{MAX_INNER_FOLDS}, got {k}.")
  return k


def _inner_jobs(jobs: list, k: int) -> tuple[list, np.ndarray]:
  """The inner jobs of every outer job, and the index of each one's outer job."""
  inner, owner = [], []
  for p, job in enumerate(jobs):
    for j, fold in enumerate(inner_folds(job.fold, k, job.seed, job.index)):
      inner.append(jobs_lib.Job(job.seed, INNER_INDEX + job.index * MAX_INNER_FOLDS + j, fold))
      owner.append(p)
  return inner, np.array(owner)


def planned_job_epochs(config, jobs: list) -> int:
  """Job-epochs that `train_any(config, jobs)` trains (for the progress line): every candidate
  on every inner job, then each outer job once (counted at the longest candidate)."""
  if not grid(config):
    return int(config.train.epochs) * len(jobs)
  configs = [candidate_config(config, c) for c in grid(config)]
  inner, _ = _inner_jobs(jobs, _inner_k(config.train))
  epochs = [int(c.train.epochs) for c in configs]
  return sum(epochs) * len(inner) + max(epochs) * len(jobs)


def train_any(ctx: loop.Context, config, jobs: list, ckpt_root: Path, *,
              max_train: int) -> tuple[list[dict], dict]:
  """`jobs` under `config`: nested selection when it has a search, else plainly (info {})."""
  if grid(config):
    return train(ctx, config, jobs, Path(ckpt_root) / "search", max_train=max_train)
  if Path(ckpt_root) == ctx.ckpt_root and config is ctx.config:
    return runner.train_jobs(ctx, jobs, epochs=int(config.train.epochs),
                             steps_per_epoch=runner.steps_per_epoch(config, max_train)), {}
  return runner.train_recipe(ctx, config, jobs, ckpt_root, max_train=max_train), {}


def train(ctx: loop.Context, config, jobs: list, ckpt_root: Path, *,
          max_train: int) -> tuple[list[dict], dict]:
  """Nested selection for every outer job. Returns (outer job results in job order, each with
  its 'candidate'; the search report: candidates, per-fold scores and choice, wins)."""
  tc = config.train
  candidates = grid(config)
  metric = str(tc.get("search_metric", "uf1"))
  if metric not in SEARCH_METRICS:
    raise ValueError(f"config.train.search_metric must be one of {SEARCH_METRICS}, got "
                     f"{metric!r}.")
  k = _inner_k(tc)
  if tc.selection != "last":
    raise ValueError("config.train.search takes selection='last' (each candidate is scored on "
                     f"its inner folds' last epoch); got selection={tc.selection!r}.")
  configs = [candidate_config(config, c) for c in candidates]
  inner, owner = _inner_jobs(jobs, k)
  logging.info("Nested selection: %d candidate(s) x %d inner job(s) (%d outer job(s)), %s.",
               len(candidates), len(inner), len(jobs), metric)

  labels = ctx.data["labels"]
  scores = np.zeros((len(jobs), len(candidates)))
  for c, cfg in enumerate(configs):
    # Inner models are scored, never reported: no training-side report for them.
    res = runner.train_recipe(ctx, cfg, inner, Path(ckpt_root) / f"c{c}" / "inner",
                              max_train=max_train, train_side=False)
    for p in range(len(jobs)):
      scores[p, c] = score([r for r, o in zip(res, owner) if o == p], labels, ctx.num_classes,
                           metric)
  choice = np.argmax(scores, axis=1)  # the first of equal scores: grid order

  out: list[dict | None] = [None] * len(jobs)
  for c, cfg in enumerate(configs):
    chosen = [p for p in range(len(jobs)) if choice[p] == c]
    if not chosen:
      continue
    res = runner.train_recipe(ctx, cfg, [jobs[p] for p in chosen],
                              Path(ckpt_root) / f"c{c}" / "outer", max_train=max_train)
    for p, r in zip(chosen, res):
      out[p] = {**r, "candidate": int(c)}

  wins = np.bincount(choice, minlength=len(candidates))
  info = {"metric": metric, "inner_folds": k,
          "candidates": [{**cand, "wins": int(w), "mean_inner_score": float(scores[:, c].mean())}
                         for c, (cand, w) in enumerate(zip(candidates, wins))],
          "per_fold": [{"seed": j.seed, "fold": j.fold.name, "chosen": int(choice[p]),
                        "scores": [round(float(s), 6) for s in scores[p]]}
                       for p, j in enumerate(jobs)],
          # The final all-subject models take the candidate most folds chose (ties: grid order).
          "final_candidate": int(np.argmax(wins))}
  return out, info


def final_config(config, info: dict) -> ml_collections.ConfigDict:
  """The config of the final all-subject models: the candidate most outer folds chose."""
  return candidate_config(config, grid(config)[info["final_candidate"]])
