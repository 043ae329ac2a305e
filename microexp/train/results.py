"""Per-job results of a chunk (aggregated into results.json by the task, tasks/)."""

from __future__ import annotations

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
