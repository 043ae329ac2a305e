"""Model ensembles (`config.ensemble`): each member trained on the same folds, probabilities
averaged per clip.

`config.ensemble.models`: one ConfigDict(name, kwargs, train) per member: a registered model,
its keyword arguments and the `config.train` fields it overrides; everything else (data, folds,
seeds, and a `config.train.search`) is the run's. `combine='mean_probability'` (the only rule:
equal weights need no tuning, and weights tuned on test subjects would leak): per (seed, clip) the
members' test probabilities are averaged; the ensemble's results are computed from those exactly
as a single model's. `tta.flip_h` turns on the flow-aware mirror TTA of every member
(`config.train.tta.flip_h`, steps.eval_one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import ml_collections
import numpy as np

from microexp.train import loop
from microexp.train import search as search_lib

COMBINE = ("mean_probability",)


def enabled(config) -> bool:
  return bool("ensemble" in config and config.ensemble.get("models"))


def members(config) -> list[tuple[str, ml_collections.ConfigDict]]:
  """[(member name, its full config)]: the run's config with the member's model and training
  fields (and the ensemble's TTA); names are the model names, '_<i>' added when repeated."""
  ens = config.ensemble
  if ens.get("combine", "mean_probability") not in COMBINE:
    raise ValueError(f"config.ensemble.combine must be one of {COMBINE}, got {ens.combine!r}.")
  base = config.to_dict()
  del base["ensemble"]
  tta_flip = bool((ens.get("tta") or {}).get("flip_h", False))
  out, names = [], []
  for i, m in enumerate(ens.models):
    d = ml_collections.ConfigDict(base).to_dict()
    d["model"]["name"] = m.name
    d["model"]["kwargs"] = dict(m.get("kwargs") or {})
    for key, value in (m.get("train") or {}).items():
      if key not in d["train"]:
        raise ValueError(f"config.ensemble.models[{i}].train.{key} is not a config.train field.")
      d["train"][key] = value.to_dict() if hasattr(value, "to_dict") else value
    if tta_flip:
      d["train"]["tta"] = {**d["train"].get("tta", {}), "flip_h": True}
    name = m.name if m.name not in names else f"{m.name}_{i}"
    names.append(name)
    out.append((name, ml_collections.ConfigDict(d)))
  return out


def average(member_results: list[list[dict]]) -> list[dict]:
  """Per job (same jobs, same order in every member): the mean of the members' test
  probabilities; best epochs per member, no curves."""
  out = []
  for rs in zip(*member_results):
    first = rs[0]
    if any(r["test_idx"] != first["test_idx"] or r["seed"] != first["seed"] for r in rs):
      raise ValueError("Ensemble members were tested on different clips; they must share folds.")
    probs = np.mean([np.asarray(r["test_probs"], np.float32) for r in rs], axis=0)
    out.append({**{k: first[k] for k in ("seed", "fold", "test_subjects", "val_subjects",
                                          "test_idx")},
                "test_probs": probs.tolist(), "best_epoch": int(first["best_epoch"]),
                "history": {}})
  return out


def planned_job_epochs(config, jobs: list) -> int:
  """Job-epochs that `train(jobs)` trains (for the progress line): every member's."""
  return sum(search_lib.planned_job_epochs(cfg, jobs) for _, cfg in members(config))


def train(ctx: loop.Context, jobs: list, *, max_train: int,
          summarize: Callable[[list[dict]], dict]) -> tuple[list[dict], dict]:
  """Trains every member on `jobs` (each in checkpoints/members/<name>/). Returns (the averaged
  job results, {'members': {name: its metrics, seed ensemble, per-dataset figures, search}})."""
  if ctx.config.train.get("final_seeds"):
    raise ValueError("An ensemble writes no final models (predict loads one model); set "
                     "config.train.final_seeds=() and train each member's config for prediction.")
  per_member, info = [], {}
  recipes = members(ctx.config)
  for name, cfg in recipes:
    res, search_info = search_lib.train_any(ctx, cfg, jobs,
                                            Path(ctx.ckpt_root) / "members" / name,
                                            max_train=max_train)
    per_member.append(res)
    agg = summarize(res)
    info[name] = {"model": cfg.model.to_dict(),
                  **{k: agg[k] for k in ("metrics", "ensemble", "per_dataset") if k in agg}}
    if search_info:
      info[name]["search"] = search_info
  return average(per_member), {"members": info}
