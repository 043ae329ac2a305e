"""The spotting protocol (`config.train.task='spot'`): a learned spotter trained LOSO on long videos.

    run(config, workdir)                     loads `config.dataset` (a long-video loader), then
    spot_and_score(config, videos, workdir)  works on the loader's videos (tests pass small ones)

Per LOSO fold (one per subject, per seed) the spotter (`config.model`, e.g. 'spotter') trains on
the other subjects' feature rows under the spotting task (tasks/spotting.py: soft targets around
each coded expression, sigmoid BCE; fold-parallel chunks, a fixed schedule and the last epoch:
nothing of the test subject selects anything), then scores every row of the test subject's videos;
the task decodes the rows into intervals and scores them (micro, macro, overall; per seed, then
mean ± std). `config.train.final_seeds` adds spotters trained on every subject:
WORKDIR/spotter/final, which `python -m microexp.predict` uses on long recordings.
Outputs: results.json, summary.md (the task's writers), spotting/seed<s>/<subject>_<video>.npz
(the curves).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from absl import logging

from microexp.models import builder
from microexp.train import fold_models
from microexp.train import spot_labels
from microexp.train import tasks as tasks_lib
from microexp.train import workdir as workdir_lib
from microexp.train.tasks import spotting

KINDS = spotting.KINDS


def spotter_train_config(config):
  """The config the spotter trains under: the spotting task (tasks/spotting.py), no class
  balancing, no flip TTA, flow rows."""
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.train.task = spotting.Spotting.name
    c.train.class_balanced = False
    c.train.tta.flip_h = False
    c.dataset.representation = "flow_rows"  # flow: augmentation moves the vectors
  return c


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def row_scores(model, variables, video: dict) -> np.ndarray:
  """A trained spotter's probabilities [N, 2] on every row of one video."""
  return _sigmoid(fold_models.predict(model, variables, video["features"]))


def train_spotters(config, videos, workdir: Path, jobs, name: str = "spotter") -> list[dict]:
  """Trains the spotter jobs (fold_models.train) on the videos' rows."""
  train_config = spotter_train_config(config)
  task = tasks_lib.from_config(train_config.train)
  task.check_config(train_config)
  data, kinds = task.prepare({"videos": videos}, train_config)
  logging.info("Spotter rows: %d (%d inside a micro-, %d inside a macro-expression), %d videos, "
               "%d subjects.", len(data["subject"]), int((data["spot_targets"][:, 0] > 0).sum()),
               int((data["spot_targets"][:, 1] > 0).sum()), len(videos),
               len(set(data["subject"])))
  return fold_models.train(train_config, data, jobs, workdir / "checkpoints" / name,
                           num_classes=len(kinds), name=name)


def spot_videos(config, model, variables, videos) -> dict[str, spotting.spot_decode.Decoded]:
  """One trained spotter on `videos` -> {'subject/video': Decoded}."""
  opts = spotting.spot_options(config.get("spot"))
  return {spot_labels.video_key(v): spotting.decode(row_scores(model, variables, v), v, opts)
          for v in videos}


def loso_spotting(config, videos, workdir: Path) -> list[dict]:
  """Trains the LOSO spotters and spots each fold's test videos: the jobs' results, each with
  'decoded' ({'subject/video': Decoded} of its test videos) in place of its variables."""
  seeds = [int(s) for s in config.train.seeds]
  jobs = fold_models.loso_jobs([v["subject"] for v in videos], seeds)
  model = builder.from_config(config, len(KINDS))
  job_results = train_spotters(config, videos, workdir, jobs)
  for r in job_results:
    test = [v for v in videos if str(v["subject"]) in r["test_subjects"]]
    r["decoded"] = spot_videos(config, model, r.pop("variables"), test)
  return job_results


def write_curves(workdir: Path, job_results) -> None:
  """spotting/seed<s>/<subject>_<video>.npz: the per-frame curves [2, T] and the threshold."""
  for (seed, key), d in spotting.decoded_by_seed(job_results).items():
    path = workdir / "spotting" / f"seed{seed}" / (key.replace("/", "_") + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, curves=d.curves.astype(np.float32), threshold=d.threshold)


def save_final_spotter(config, videos, workdir: Path) -> dict | None:
  """WORKDIR/spotter/final: spotters on every subject (config.train.final_seeds), for predict."""
  seeds = [int(s) for s in (config.train.get("final_seeds") or ())]
  if not seeds:
    return None
  jobs = fold_models.all_subjects_jobs([v["subject"] for v in videos], seeds)
  final = train_spotters(config, videos, workdir, jobs, name="spotter_final")
  epochs = int(config.train.epochs)
  out = workdir / "spotter"
  workdir_lib.save_final(out, spotter_train_config(config), KINDS, final, epochs,
                         np.shape(videos[0]["features"])[1:])
  spec = workdir_lib.read_json(out / "final" / "model.json")
  spec["spotting"] = {**spotting.spot_options(config.get("spot")), "task": spotting.Spotting.name,
                      "k": {f"{float(v['fps']):g}": int(v["k"]) for v in videos}}
  workdir_lib.write_json_atomic(out / "final" / "model.json", spec)
  return {"seeds": seeds, "epochs": epochs, "path": str(out / "final")}


def add_heuristic(results: dict, config, videos) -> None:
  """results['heuristic']: the heuristic spotter's scores on the same videos (config.spot.heuristic)."""
  opts = spotting.spot_options(config.get("spot"))
  if not opts["heuristic"]:
    return
  from microexp.train import spot_heuristic  # pylint: disable=g-import-not-at-top

  scores = spotting.score(spot_heuristic.spot_videos(videos, max_duration=opts["max_duration"]),
                          videos)
  results["heuristic"] = {scope: sc.to_json() for scope, sc in scores.items()}


def add_spotter_outputs(results: dict, config, videos, workdir: Path, job_results) -> dict | None:
  """What both long-video protocols add: the heuristic's scores (config.spot.heuristic), the
  curves, and the final spotter (results['final'], config.train.final_seeds; else None)."""
  add_heuristic(results, config, videos)
  write_curves(workdir, job_results)
  final = save_final_spotter(config, videos, workdir)
  if final:
    results["final"] = final
  return final


def write_results(task, results: dict, workdir: Path, t0: float) -> dict:
  """Both protocols' end: the wall time since t0, the task's writers (results.json, summary.md)
  and its console summary."""
  results["wall_time_s"] = time.time() - t0
  task.write_outputs(workdir, results)
  task.log_summary(results, workdir)
  return results


def spot_and_score(config, videos, workdir: str | Path) -> dict:
  """The spotting protocol on loader videos; writes and returns results.json's dict."""
  t0 = time.time()
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  task = tasks_lib.from_config(config.train)
  job_results = loso_spotting(config, videos, workdir)
  seeds = sorted({r["seed"] for r in job_results})
  folds = sorted({r["fold"] for r in job_results})
  results = {"task": task.name, "config": workdir_lib.config_dict(config),
             **task.aggregate(job_results, {"videos": videos}, KINDS, seeds, folds)}
  add_spotter_outputs(results, config, videos, workdir, job_results)
  return write_results(task, results, workdir, t0)


def run(config, workdir: str | Path) -> dict:
  """Loads the long videos of `config.dataset` (registry) and runs the spotting protocol."""
  from microexp import loaders  # pylint: disable=g-import-not-at-top

  return spot_and_score(config, loaders.load(config.dataset)["videos"], workdir)
