"""Spot-then-recognize (`config.train.task='str'`, MEGC 2023-2025): per LOSO fold, the fold's
spotter finds the intervals of the test subject's videos and the fold's recogniser names them.

    run(config, workdir)                 loads `config.dataset` (a long-video loader), then
    spot_then_recognize(config, videos, workdir, interval_flow)

Per fold (one per subject, per seed), both models train on the fold's training subjects only,
through the engine's chunk loop (fold_models.py), a fixed schedule, the last epoch:
- the spotter (`config.model`; spot_protocol.py) on every row of their videos;
- the recogniser (`config.recognizer.model`, any registered MER model, e.g. STSTNet) on the
  onset -> apex flow (`interval_flow`) of their coded intervals of `config.recognizer.kinds` that
  carry one of `config.recognizer.classes` (the MEGC 3 classes).
Then every spotted interval of those kinds in the test subject's videos is classified on its own
spotted onset -> apex flow; the STR task (tasks/spot_then_recognize.py) scores the fold-pooled
predictions (STRS under both definitions, correct and the published scorer's; per seed, then
mean ± std) and writes results.json and summary.md. Also: spotting/ curves (spot_protocol.py),
WORKDIR/final (the recogniser on every subject) and WORKDIR/spotter/final when
`config.train.final_seeds`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import ml_collections
import numpy as np
from absl import logging

from microexp.models import builder
from microexp.train import fold_models
from microexp.train import spot_labels
from microexp.train import spot_protocol
from microexp.train import tasks as tasks_lib
from microexp.train import workdir as workdir_lib

IntervalFlow = Callable[[dict, int, int], np.ndarray]  # (video entry, onset, apex) -> [S, S, 3]
DEFAULT_CLASSES = ("negative", "positive", "surprise")  # MEGC's three


def recognizer_options(config) -> dict:
  """`config.recognizer` with its defaults (model, kinds, classes, train overrides)."""
  rec = config.recognizer.to_dict() if "recognizer" in config else {}
  out = {"kinds": spot_labels.KINDS, "classes": DEFAULT_CLASSES, "train": {}, **rec}
  if "model" not in out:
    raise ValueError("config.recognizer.model (name, kwargs) names the recogniser of STR.")
  unknown = sorted(set(out) - {"model", "kinds", "classes", "train"})
  if unknown:
    raise ValueError(f"config.recognizer has unknown fields {unknown}.")
  bad = sorted(set(out["kinds"]) - set(spot_labels.KINDS))
  if bad:
    raise ValueError(f"config.recognizer.kinds {bad} are not among {spot_labels.KINDS}.")
  return out


def recognizer_config(config):
  """The config the recogniser trains under: the emotion task, `config.recognizer.model` and
  `config.recognizer.train`'s fields over `config.train`."""
  opts = recognizer_options(config)
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.model = ml_collections.ConfigDict({"kwargs": {}, "dtype": "float32", **opts["model"]})
    c.train.task = tasks_lib.from_config(config.train).recognizer_task
    c.dataset.representation = "apex_flow"
    for key, value in opts["train"].items():
      c.train[key] = value
  return c


def _apex(onset: int, apex: int, offset: int) -> int:
  return int(apex) if onset < int(apex) <= offset else (onset + offset) // 2  # apex uncoded


def recognizer_data(config, videos, interval_flow: IntervalFlow) -> dict[str, np.ndarray]:
  """The coded intervals to recognise as engine data: inputs [N, S, S, 3], labels, subject."""
  opts = recognizer_options(config)
  classes = list(opts["classes"])
  inputs, labels, subject, clip = [], [], [], []
  for v in videos:
    for (onset, apex, offset), kind, emotion in zip(v["intervals"], v["kinds"], v["emotions"]):
      if kind in opts["kinds"] and emotion in classes:
        inputs.append(interval_flow(v, int(onset), _apex(onset, apex, offset)))
        labels.append(classes.index(emotion))
        subject.append(str(v["subject"]))
        clip.append(f"{spot_labels.video_key(v)}:{onset}")
  if len(set(labels)) < 2:
    raise ValueError(f"STR needs coded {list(opts['kinds'])} intervals of at least 2 of the "
                     f"classes {classes}; found {sorted(set(labels))}.")
  n = len(labels)
  return {"inputs": np.stack(inputs).astype(np.float32), "labels": np.array(labels, np.int32),
          "subject": np.array(subject), "clip": np.array(clip),
          "dataset": np.full(n, "long_videos")}


def classify_spotted(model, variables, decoded: dict, videos, kinds, classes,
                     interval_flow: IntervalFlow) -> list[dict]:
  """Every spotted interval of `kinds` in `decoded` ({'subject/video': Decoded}) classified on its
  spotted onset -> apex flow: [{video, kind, spotted (onset, apex, offset), pred, probs}]."""
  by_key = {spot_labels.video_key(v): v for v in videos}
  out = []
  for key, d in sorted(decoded.items()):
    for kind in kinds:
      for i in d.spotted[kind]:
        x = interval_flow(by_key[key], int(i.onset), _apex(i.onset, i.apex, i.offset))[None]
        logits = fold_models.predict(model, variables, x)[0]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        out.append({"video": key, "kind": kind,
                    "spotted": [int(i.onset), int(i.apex), int(i.offset)],
                    "pred": classes[int(np.argmax(probs))],
                    "probs": [round(float(p), 5) for p in probs]})
  return out


def spot_then_recognize(config, videos, workdir: str | Path,
                        interval_flow: IntervalFlow) -> dict:
  """The STR protocol on loader videos; writes and returns results.json's dict."""
  t0 = time.time()
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  task = tasks_lib.from_config(config.train)
  opts = recognizer_options(config)
  classes, kinds = list(opts["classes"]), tuple(opts["kinds"])
  spot_jobs = spot_protocol.loso_spotting(config, videos, workdir)
  rec_config = recognizer_config(config)
  rec_data = recognizer_data(config, videos, interval_flow)
  seeds = [int(s) for s in config.train.seeds]
  jobs = fold_models.loso_jobs([v["subject"] for v in videos], seeds)
  logging.info("Recogniser: %d coded %s intervals, classes %s.", len(rec_data["labels"]),
               "/".join(kinds), classes)
  rec_model = builder.from_config(rec_config, len(classes))
  rec_jobs = fold_models.train(rec_config, rec_data, jobs, workdir / "checkpoints" / "recognizer",
                               num_classes=len(classes), name="recognizer")
  for job, spot, r in zip(jobs, spot_jobs, rec_jobs):  # the same (seed, fold) jobs, in order
    test = [v for v in videos if str(v["subject"]) in job.fold.test_subjects]
    spot["recognised"] = classify_spotted(rec_model, r.pop("variables"), spot["decoded"], test,
                                          kinds, classes, interval_flow)
  results = {"task": task.name, "config": workdir_lib.config_dict(config),
             **task.aggregate(spot_jobs, {"videos": videos, "recognised_kinds": kinds}, classes,
                              seeds, sorted({r["fold"] for r in spot_jobs}))}
  final = spot_protocol.add_spotter_outputs(results, config, videos, workdir, spot_jobs)
  if final:
    final_seeds = [int(s) for s in config.train.final_seeds]
    rec_final = fold_models.train(rec_config, rec_data,
                                  fold_models.all_subjects_jobs(rec_data["subject"], final_seeds),
                                  workdir / "checkpoints" / "recognizer_final",
                                  num_classes=len(classes), name="recognizer_final")
    workdir_lib.save_final(workdir, rec_config, classes, rec_final, int(rec_config.train.epochs),
                           rec_data["inputs"].shape[1:])
    results["final"]["recognizer"] = str(workdir / "final")
  return spot_protocol.write_results(task, results, workdir, t0)


def run(config, workdir: str | Path) -> dict:
  """Loads the long videos of `config.dataset` (registry) and runs STR."""
  from microexp import loaders  # pylint: disable=g-import-not-at-top
  from microexp.loaders import long_videos  # pylint: disable=g-import-not-at-top

  videos = loaders.load(config.dataset)["videos"]
  return spot_then_recognize(config, videos, workdir, long_videos.interval_flow)
