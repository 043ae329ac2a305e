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
Then every spotted interval of the test subject that hits a coded one (IoU >= 0.5, one-to-one) is
classified on its own spotted onset -> apex flow, against the coded interval's class.
Scores: spotting P / R / F1 (micro, macro, overall), recognition UF1 (macro F1) / UAR (mean of the
classes' recalls) over those true-positive intervals (pooled over folds), and STRS = spotting F1
(of the recognised kinds) x recognition UF1, per seed then mean ± std.
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
from microexp.train import spot_decode
from microexp.train import spot_labels
from microexp.train import spot_protocol
from microexp.train import spotting_metrics
from microexp.train import workdir as workdir_lib

IntervalFlow = Callable[[dict, int, int], np.ndarray]  # (video entry, onset, apex) -> [S, S, 3]
DEFAULT_CLASSES = ("negative", "positive", "surprise")  # MEGC's three


def recognizer_options(config) -> dict:
  """`config.recognizer` with its defaults (model, kinds, classes, train overrides)."""
  rec = config.recognizer.to_dict() if "recognizer" in config else {}
  out = {"kinds": ("micro",), "classes": DEFAULT_CLASSES, "train": {}, **rec}
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


def recognise_hits(model, variables, decoded: dict, videos, kinds, classes,
                   interval_flow: IntervalFlow) -> list[dict]:
  """The true-positive spotted intervals of `kinds` in `decoded` ({'subject/video': Decoded}),
  each classified: [{video, kind, spotted (on, apex, off), truth_index, label, pred, probs}]."""
  by_key = {spot_labels.video_key(v): v for v in videos}
  out = []
  for key, d in sorted(decoded.items()):
    v = by_key[key]
    for kind in kinds:
      truth_idx = [i for i, kd in enumerate(v["kinds"]) if kd == kind]
      spotted = d.spotted[kind]
      hits = spotting_metrics.match(spot_decode.spans(spotted),
                                    [(v["intervals"][i][0], v["intervals"][i][2])
                                     for i in truth_idx])
      for s, t in hits:
        emotion = v["emotions"][truth_idx[t]]
        if emotion not in classes:
          continue  # a coded interval of no recognised class: spotted, not recognised
        i = spotted[s]
        x = interval_flow(v, int(i.onset), _apex(i.onset, i.apex, i.offset))[None]
        logits = fold_models.predict(model, variables, x)[0]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        out.append({"video": key, "kind": kind, "spotted": [int(i.onset), int(i.apex),
                                                             int(i.offset)],
                    "truth_index": int(truth_idx[t]), "label": classes.index(emotion),
                    "pred": int(np.argmax(probs)),
                    "probs": [round(float(p), 5) for p in probs]})
  return out


def recognition_scores(hits: list[dict], num_classes: int) -> dict:
  """UF1, UAR, accuracy and the confusion of the recognised true positives."""
  cm = metrics_lib.confusion_matrix([h["label"] for h in hits], [h["pred"] for h in hits],
                                    num_classes)
  return {"uf1": metrics_lib.uf1(cm) if cm.sum() else 0.0,
          "uar": metrics_lib.uar(cm) if cm.sum() else 0.0,
          "accuracy": metrics_lib.accuracy(cm) if cm.sum() else 0.0, "n": int(cm.sum()),
          "confusion": cm.tolist()}


def strs(spot_f1: float, recognition_f1: float) -> float:
  """STRS: the spotting F1 times the recognition F1 of the spotted true positives."""
  return float(spot_f1) * float(recognition_f1)


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
  hits = []
  for job, r in zip(jobs, rec_jobs):
    test = [v for v in videos if str(v["subject"]) in job.fold.test_subjects]
    fold_decoded = {spot_labels.video_key(v): decoded[(job.seed, spot_labels.video_key(v))]
                    for v in test}
    for h in recognise_hits(rec_model, r.pop("variables"), fold_decoded, test, kinds, classes,
                            interval_flow):
      hits.append({"seed": job.seed, **h})
  per_seed = []
  for s in seeds:
    spot = spot_protocol.score({key: d for (seed, key), d in decoded.items() if seed == s},
                               videos)
    spot_scope = kinds[0] if len(kinds) == 1 else "overall"
    rec = recognition_scores([h for h in hits if h["seed"] == s], len(classes))
    per_seed.append({"seed": s, **{scope: sc.to_json() for scope, sc in spot.items()},
                     "recognition": rec, "spotting_scope": spot_scope,
                     "strs": strs(spot[spot_scope].f1, rec["uf1"])})
  metrics = spot_protocol.summarise_scores(per_seed)
  metrics["recognition"] = {m: metrics_lib.mean_std([p["recognition"][m] for p in per_seed])
                            for m in ("uf1", "uar", "accuracy")}
  metrics["strs"] = metrics_lib.mean_std([p["strs"] for p in per_seed])
  records = spot_protocol.video_records(decoded, videos)
  for rec_ in records:  # each spotted interval's class where it was recognised
    rec_["recognised"] = [{k: h[k] for k in ("kind", "spotted", "label", "pred", "probs")}
                          for h in hits if h["seed"] == rec_["seed"] and h["video"] == rec_["video"]]
  results = {"task": "str", "config": workdir_lib.config_dict(config), "seeds": seeds,
             "class_names": classes, "recognised_kinds": list(kinds),
             "folds": sorted({r["fold"] for r in spot_jobs}), "metrics": metrics,
             "per_seed": per_seed, "videos": records, "recognised": hits,
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
           f"**STRS {m['strs']['mean']:.4f} ± {m['strs']['std']:.4f}** (spotting F1 of "
           f"{results['per_seed'][0]['spotting_scope']} x recognition UF1)", "",
           "Recognition over the true-positive intervals: UF1 "
           f"{m['recognition']['uf1']['mean']:.3f} ± {m['recognition']['uf1']['std']:.3f}, UAR "
           f"{m['recognition']['uar']['mean']:.3f} ± {m['recognition']['uar']['std']:.3f}", ""]
  lines += spot_protocol.spotting_table(m)
  lines += spot_protocol.heuristic_line(results)
  lines += ["", "| seed | TP recognised | UF1 | UAR | STRS |", "|---|---|---|---|---|"]
  for p in results["per_seed"]:
    r = p["recognition"]
    lines.append(f"| {p['seed']} | {r['n']} | {r['uf1']:.3f} | {r['uar']:.3f} | "
                 f"{p['strs']:.4f} |")
  lines += ["", f"Wall time: {results.get('wall_time_s', float('nan')):.1f} s", ""]
  return "\n".join(lines)


def run(config, workdir: str | Path) -> dict:
  """Loads the long videos of `config.dataset` (registry) and runs STR."""
  from microexp import loaders  # pylint: disable=g-import-not-at-top
  from microexp.loaders import long_videos  # pylint: disable=g-import-not-at-top

  videos = loaders.load(config.dataset)["videos"]
  return spot_then_recognize(config, videos, workdir, long_videos.interval_flow)
