"""summary.md sections of nested selection (search.py) and ensembles (ensemble.py)."""

from __future__ import annotations


def search_markdown(info: dict) -> list[str]:
  """summary.md lines: the candidates with their wins, and the choice per fold."""
  lines = [f"Nested selection ({info['metric']} pooled over {info['inner_folds']} inner folds "
           "of each fold's training subjects):", "",
           "| candidate | settings | wins | mean inner score |", "|---|---|---|---|"]
  for c, cand in enumerate(info["candidates"]):
    settings = ", ".join(f"{k}={v}" for k, v in cand.items()
                         if k not in ("wins", "mean_inner_score"))
    lines.append(f"| {c} | {settings} | {cand['wins']} | {cand['mean_inner_score']:.3f} |")
  lines += ["", "| seed | fold | chosen | inner scores |", "|---|---|---|---|"]
  for f in info["per_fold"]:
    lines.append(f"| {f['seed']} | {f['fold']} | {f['chosen']} | "
                 f"{', '.join(f'{s:.3f}' for s in f['scores'])} |")
  return lines + [""]


def members_markdown(members_info: dict) -> list[str]:
  """summary.md lines: one row per member (mean over seeds, and its seed ensemble)."""
  lines = ["Ensemble members (the table above is their per-clip mean of probabilities):", "",
           "| member | UF1 | UAR | accuracy | seed-ensemble UF1 |", "|---|---|---|---|---|"]
  for name, m in members_info.items():
    mm = m["metrics"]
    ens = (m.get("ensemble") or {}).get("metrics", {}).get("uf1", float("nan"))
    lines.append(f"| {name} | {mm['uf1']['mean']:.4f} ± {mm['uf1']['std']:.4f} | "
                 f"{mm['uar']['mean']:.4f} | {mm['accuracy']['mean']:.4f} | {ens:.4f} |")
  return lines + [""]
