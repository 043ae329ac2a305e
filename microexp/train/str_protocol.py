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
spotted onset -> apex flow, and the fold-pooled predictions are scored by
`spotting_metrics.evaluate_str` under both definitions: 'correct' (one-to-one matching per kind,
UAR = mean of recalls, UF1 = mean of F1s; STRS = overall spotting F1 x UF1) and 'reference' (the
published MEGC STR scorer's definitions, so published figures compare); per seed, then mean ± std.
Outputs: results.json, summary.md, spotting/ curves (spot_protocol.py), WORKDIR/final (the
recogniser on every subject) and WORKDIR/spotter/final when `config.train.final_seeds`.
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
from microexp.train import metrics as metrics_lib
from microexp.train import spot_labels
from microexp.train import spot_protocol
from microexp.train import spotting_metrics
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
    c.train.task = "emotion"
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


def score_str(decoded: dict, recognised: list[dict], videos, classes,
              definition: str) -> spotting_metrics.STRScore:
  """`spotting_metrics.evaluate_str` of one seed's spotted (and recognised) intervals."""
  names = {(r["video"], tuple(r["spotted"])): r["pred"] for r in recognised}
  spotted = {key: [spotting_metrics.Labelled(i.onset, i.offset, kind,
                                             names.get((key, (i.onset, i.apex, i.offset)), ""))
                   for kind in spot_labels.KINDS for i in d.spotted[kind]]
             for key, d in decoded.items()}
  truth = {spot_labels.video_key(v): [
      spotting_metrics.Labelled(int(on), int(off), kind, str(emotion))
      for (on, _, off), kind, emotion in zip(v["intervals"], v["kinds"], v["emotions"])]
      for v in videos}
  subjects = {spot_labels.video_key(v): str(v["subject"]) for v in videos}
  return spotting_metrics.evaluate_str(spotted, truth, classes=classes, definition=definition,
                                       subjects=subjects)


def spot_then_recognize(config, videos, workdir: str | Path,
                        interval_flow: IntervalFlow) -> dict:
  """The STR protocol on loader videos; writes and returns results.json's dict."""
  t0 = time.time()
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  opts = recognizer_options(config)
  classes, kinds = list(opts["classes"]), tuple(opts["kinds"])
  spot_jobs, decoded = spot_protocol.loso_spotting(config, videos, workdir)
  rec_config = recognizer_config(config)
  rec_data = recognizer_data(config, videos, interval_flow)
  seeds = [int(s) for s in config.train.seeds]
  jobs = fold_models.loso_jobs([v["subject"] for v in videos], seeds)
  logging.info("Recogniser: %d coded %s intervals, classes %s.", len(rec_data["labels"]),
               "/".join(kinds), classes)
  rec_model = builder.from_config(rec_config, len(classes))
  rec_jobs = fold_models.train(rec_config, rec_data, jobs, workdir / "checkpoints" / "recognizer",
                               num_classes=len(classes), name="recognizer")
  recognised = []
  for job, r in zip(jobs, rec_jobs):
    test = [v for v in videos if str(v["subject"]) in job.fold.test_subjects]
    fold_decoded = {spot_labels.video_key(v): decoded[(job.seed, spot_labels.video_key(v))]
                    for v in test}
    recognised += [{"seed": job.seed, **h} for h in classify_spotted(
        rec_model, r.pop("variables"), fold_decoded, test, kinds, classes, interval_flow)]
  per_seed = []
  for s in seeds:
    seed_decoded = {key: d for (seed, key), d in decoded.items() if seed == s}
    seed_recognised = [h for h in recognised if h["seed"] == s]
    spot = spot_protocol.score(seed_decoded, videos)
    scores = {definition: score_str(seed_decoded, seed_recognised, videos, classes, definition)
              for definition in spotting_metrics.DEFINITIONS}
    per_seed.append({"seed": s, **{scope: sc.to_json() for scope, sc in spot.items()},
                     "str": {d: sc.to_json() for d, sc in scores.items()},
                     "recognition": {"uf1": scores["correct"].recognition.uf1,
                                     "uar": scores["correct"].recognition.uar,
                                     "pairs": scores["correct"].recognition.pairs},
                     "strs": scores["correct"].strs, "strs_reference": scores["reference"].strs})
  metrics = spot_protocol.summarise_scores(per_seed)
  metrics["recognition"] = {m: metrics_lib.mean_std([p["recognition"][m] for p in per_seed])
                            for m in ("uf1", "uar")}
  metrics["strs"] = metrics_lib.mean_std([p["strs"] for p in per_seed])
  metrics["strs_reference"] = metrics_lib.mean_std([p["strs_reference"] for p in per_seed])
  records = spot_protocol.video_records(decoded, videos)
  for rec_ in records:  # each spotted interval's recognised class
    rec_["recognised"] = [{k: h[k] for k in ("kind", "spotted", "pred", "probs")}
                          for h in recognised
                          if h["seed"] == rec_["seed"] and h["video"] == rec_["video"]]
  results = {"task": "str", "config": workdir_lib.config_dict(config), "seeds": seeds,
             "class_names": classes, "recognised_kinds": list(kinds),
             "folds": sorted({r["fold"] for r in spot_jobs}), "metrics": metrics,
             "per_seed": per_seed, "videos": records,
             "history": {f"seed{r['seed']}/{r['fold']}": r["history"] for r in spot_jobs}}
  spot_protocol.add_heuristic(results, config, videos)
  spot_protocol.write_curves(workdir, decoded)
  final = spot_protocol.save_final_spotter(config, videos, workdir)
  if final:
    final_seeds = [int(s) for s in config.train.final_seeds]
    rec_final = fold_models.train(rec_config, rec_data,
                                  fold_models.all_subjects_jobs(rec_data["subject"], final_seeds),
                                  workdir / "checkpoints" / "recognizer_final",
                                  num_classes=len(classes), name="recognizer_final")
    workdir_lib.save_final(workdir, rec_config, classes, rec_final, int(rec_config.train.epochs),
                           rec_data["inputs"].shape[1:])
    results["final"] = {**final, "recognizer": str(workdir / "final")}
  results["wall_time_s"] = time.time() - t0
  workdir_lib.write_json_atomic(workdir / "results.json", results)
  (workdir / "summary.md").write_text(summary_markdown(results))
  for line in summary_markdown(results).splitlines()[:10]:
    logging.info("%s", line)
  return results


def summary_markdown(results: dict) -> str:
  """summary.md of an STR run."""
  cfg, m = results["config"], results["metrics"]
  lines = [f"# Spot-then-recognize: {cfg['model']['name']} + "
           f"{cfg['recognizer']['model']['name']} on {cfg['dataset']['name']}", "",
           f"LOSO over {len(results['folds'])} subjects, seeds {results['seeds']}, fixed "
           f"schedules (last epoch), synthetic: {cfg['dataset'].get('synthetic', False)}; "
           f"recognised: {results['recognised_kinds']} intervals, classes "
           f"{results['class_names']}.", "",
           f"**STRS {m['strs']['mean']:.4f} ± {m['strs']['std']:.4f}** (overall spotting F1 x "
           "recognition UF1, one-to-one matching); the published MEGC scorer's definitions: "
           f"STRS {m['strs_reference']['mean']:.4f} ± {m['strs_reference']['std']:.4f}", "",
           "Recognition over the true-positive intervals: UF1 "
           f"{m['recognition']['uf1']['mean']:.3f} ± {m['recognition']['uf1']['std']:.3f}, UAR "
           f"{m['recognition']['uar']['mean']:.3f} ± {m['recognition']['uar']['std']:.3f}", ""]
  lines += spot_protocol.spotting_table(m)
  lines += spot_protocol.heuristic_line(results)
  lines += ["", "| seed | TP pairs recognised | UF1 | UAR | STRS | STRS (reference) |",
            "|---|---|---|---|---|---|"]
  for p in results["per_seed"]:
    r = p["recognition"]
    lines.append(f"| {p['seed']} | {r['pairs']} | {r['uf1']:.3f} | {r['uar']:.3f} | "
                 f"{p['strs']:.4f} | {p['strs_reference']:.4f} |")
  lines += ["", f"Wall time: {results.get('wall_time_s', float('nan')):.1f} s", ""]
  return "\n".join(lines)


def run(config, workdir: str | Path) -> dict:
  """Loads the long videos of `config.dataset` (registry) and runs STR."""
  from microexp import loaders  # pylint: disable=g-import-not-at-top
  from microexp.loaders import long_videos  # pylint: disable=g-import-not-at-top

  videos = loaders.load(config.dataset)["videos"]
  return spot_then_recognize(config, videos, workdir, long_videos.interval_flow)
