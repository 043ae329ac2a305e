"""The spotting protocol (`config.train.task='spot'`): a learned spotter trained LOSO on long videos.

    run(config, workdir)                     loads `config.dataset` (a long-video loader), then
    spot_and_score(config, videos, workdir)  works on the loader's videos (tests pass small ones)

Per LOSO fold (one per subject, per seed) the spotter (`config.model`, e.g. 'spotter') trains on
the other subjects' feature rows (spot_labels.py: soft targets around each coded apex, the engine's
sigmoid BCE, fold-parallel chunks, a fixed schedule and the last epoch: nothing of the test subject
selects anything), then scores every row of the test subject's videos; the rows become intervals
(spot_decode.py) and are scored against the coded ones (IoU >= 0.5, one-to-one matching), micro
and macro apart, and overall (their counts pooled), per seed, then mean ± std over seeds.
`config.train.final_seeds` adds spotters trained on every subject: WORKDIR/spotter/final, which
`python -m microexp.predict` uses on long recordings.
Outputs: results.json, summary.md, spotting/seed<s>/<subject>_<video>.npz (the curves).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from absl import logging

from microexp.train import spotting_metrics as spotting_eval
from microexp.train import workdir as workdir_lib
from microexp.models import builder
from microexp.train import fold_models
from microexp.train import metrics as metrics_lib
from microexp.train import spot_decode
from microexp.train import spot_labels

KINDS = spot_labels.KINDS
SCOPES = KINDS + ("overall",)


def spot_config(spot) -> dict:
  """`config.spot` with its defaults: threshold, max_duration (s), negative_stride, heuristic
  (also score the heuristic spotter on every video, side by side; needs the frames)."""
  spot = spot.to_dict() if hasattr(spot, "to_dict") else dict(spot or {})
  out = {"threshold": 0.5, "max_duration": 0.5, "max_macro_duration": 4.0, "negative_stride": 1,
         "heuristic": False, **spot}
  unknown = sorted(set(out) - {"threshold", "max_duration", "max_macro_duration",
                               "negative_stride", "heuristic"})
  if unknown:
    raise ValueError(f"config.spot has unknown fields {unknown}.")
  return out


def spotter_train_config(config):
  """The config the spotter trains under: the AU task's per-column sigmoid BCE on soft targets,
  unweighted (the probabilities stay calibrated for the 0.5 threshold; `config.spot.negative_stride`
  thins the rows far from any expression instead), no class balancing."""
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.train.task = "au"
    c.train.au_pos_weight = False
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
  opts = spot_config(config.get("spot"))
  data = spot_labels.frame_data(videos, negative_stride=opts["negative_stride"])
  logging.info("Spotter rows: %d (%d inside a micro-, %d inside a macro-expression), %d videos, "
               "%d subjects.", len(data["subject"]), int((data["au_targets"][:, 0] > 0).sum()),
               int((data["au_targets"][:, 1] > 0).sum()), len(videos),
               len(set(data["subject"])))
  return fold_models.train(spotter_train_config(config), data, jobs,
                           workdir / "checkpoints" / name, num_classes=len(KINDS), name=name)


def spot_videos(config, model, variables, videos) -> dict[str, spot_decode.Decoded]:
  """One trained spotter on `videos` -> {'subject/video': Decoded}."""
  opts = spot_config(config.get("spot"))
  return {spot_labels.video_key(v): spot_decode.decode(
      row_scores(model, variables, v), v["frames"], k=int(v["k"]),
      num_frames=spot_decode.curve_length(v), fps=float(v["fps"]), threshold=opts["threshold"],
      max_duration=opts["max_duration"], max_macro_duration=opts["max_macro_duration"])
      for v in videos}


def score(decoded: dict[str, spot_decode.Decoded], videos) -> dict[str, spotting_eval.SpottingScore]:
  """Spotting scores of decoded videos: 'micro', 'macro' and 'overall' (the two pooled)."""
  out = {}
  for kind in KINDS:
    out[kind], _ = spotting_eval.evaluate(
        {key: spot_decode.spans(d.spotted[kind]) for key, d in decoded.items()},
        {spot_labels.video_key(v): spot_decode.truth_spans(v, kind) for v in videos})
  out["overall"] = spotting_eval.SpottingScore(*(
      sum(getattr(out[k], f) for k in KINDS) for f in ("true_positives", "spotted", "truth")))
  return out


def summarise_scores(per_seed: list[dict]) -> dict:
  """[{scope: SpottingScore json}] per seed -> {scope: {precision, recall, f1: mean ± std}}."""
  return {scope: {m: metrics_lib.mean_std([s[scope][m] for s in per_seed])
                  for m in ("precision", "recall", "f1")} for scope in SCOPES}


def loso_spotting(config, videos, workdir: Path) -> tuple[list[dict], dict]:
  """Trains the LOSO spotters and spots each fold's test videos.

  Returns (the jobs' results without variables, {(seed, 'subject/video'): Decoded}).
  """
  seeds = [int(s) for s in config.train.seeds]
  jobs = fold_models.loso_jobs([v["subject"] for v in videos], seeds)
  model = builder.from_config(config, len(KINDS))
  decoded = {}
  job_results = train_spotters(config, videos, workdir, jobs)
  for r in job_results:
    test = [v for v in videos if str(v["subject"]) in r["test_subjects"]]
    for key, d in spot_videos(config, model, r.pop("variables"), test).items():
      decoded[(r["seed"], key)] = d
  return job_results, decoded


def interval_json(i) -> list:
  return [int(i.onset), int(i.apex), int(i.offset), round(float(i.score), 4)]


def video_records(decoded: dict, videos) -> list[dict]:
  """results.json's per-video entries: spotted, rejected and coded intervals."""
  by_key = {spot_labels.video_key(v): v for v in videos}
  out = []
  for (seed, key), d in sorted(decoded.items()):
    v = by_key[key]
    out.append({"seed": seed, "video": key, "subject": str(v["subject"]), "fps": float(v["fps"]),
                "num_frames": int(v["num_frames"]),
                "spotted": {kind: [interval_json(i) for i in d.spotted[kind]] for kind in KINDS},
                "rejected_micro": [interval_json(i) for i in d.rejected],
                "truth": [{"onset": int(a), "apex": int(b), "offset": int(c), "kind": kd,
                           "emotion": str(e)} for (a, b, c), kd, e in
                          zip(v["intervals"], v["kinds"], v.get("emotions") or [""] * len(v["kinds"]))]})
  return out


def write_curves(workdir: Path, decoded: dict) -> None:
  """spotting/seed<s>/<subject>_<video>.npz: the per-frame curves [2, T] and the threshold."""
  for (seed, key), d in decoded.items():
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
  spec["spotting"] = {**spot_config(config.get("spot")), "task": "spot",
                      "k": {f"{float(v['fps']):g}": int(v["k"]) for v in videos}}
  workdir_lib.write_json_atomic(out / "final" / "model.json", spec)
  return {"seeds": seeds, "epochs": epochs, "path": str(out / "final")}


def spot_and_score(config, videos, workdir: str | Path) -> dict:
  """The spotting protocol on loader videos; writes and returns results.json's dict."""
  t0 = time.time()
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  job_results, decoded = loso_spotting(config, videos, workdir)
  seeds = sorted({r["seed"] for r in job_results})
  per_seed = []
  for s in seeds:
    scores = score({key: d for (seed, key), d in decoded.items() if seed == s}, videos)
    per_seed.append({"seed": s, **{scope: sc.to_json() for scope, sc in scores.items()}})
  results = {"task": "spot", "config": workdir_lib.config_dict(config), "seeds": seeds,
             "folds": sorted({r["fold"] for r in job_results}),
             "metrics": summarise_scores(per_seed), "per_seed": per_seed,
             "videos": video_records(decoded, videos),
             "history": {f"seed{r['seed']}/{r['fold']}": r["history"] for r in job_results}}
  add_heuristic(results, config, videos)
  write_curves(workdir, decoded)
  final = save_final_spotter(config, videos, workdir)
  if final:
    results["final"] = final
  results["wall_time_s"] = time.time() - t0
  workdir_lib.write_json_atomic(workdir / "results.json", results)
  (workdir / "summary.md").write_text(summary_markdown(results))
  for line in summary_markdown(results).splitlines()[:8]:
    logging.info("%s", line)
  return results


def add_heuristic(results: dict, config, videos) -> None:
  """results['heuristic']: the heuristic spotter's scores on the same videos (config.spot.heuristic)."""
  opts = spot_config(config.get("spot"))
  if not opts["heuristic"]:
    return
  from microexp.train import spot_heuristic  # pylint: disable=g-import-not-at-top

  scores = score(spot_heuristic.spot_videos(videos, max_duration=opts["max_duration"]), videos)
  results["heuristic"] = {scope: sc.to_json() for scope, sc in scores.items()}


def heuristic_line(results: dict) -> list[str]:
  """summary.md's line of the heuristic spotter's figures (when the run scored it)."""
  if "heuristic" not in results:
    return []
  h = results["heuristic"]
  return ["", "The heuristic spotter (flow contrast, microexp/vision/spotting.py) on the same "
          "videos: " + ", ".join(f"{scope} F1 {h[scope]['f1']:.3f} (P {h[scope]['precision']:.3f}"
                                 f", R {h[scope]['recall']:.3f})" for scope in SCOPES)]


def spotting_table(metrics: dict) -> list[str]:
  """Markdown rows: precision / recall / F1 (mean ± std over seeds) per scope."""
  lines = ["| | precision | recall | F1 |", "|---|---|---|---|"]
  for scope in SCOPES:
    m = metrics[scope]
    lines.append(f"| {scope} | " + " | ".join(
        f"{m[k]['mean']:.3f} ± {m[k]['std']:.3f}" for k in ("precision", "recall", "f1")) + " |")
  return lines


def summary_markdown(results: dict) -> str:
  """summary.md of a spotting run."""
  cfg = results["config"]
  lines = [f"# Spotting: {cfg['model']['name']} on {cfg['dataset']['name']}", "",
           f"LOSO over {len(results['folds'])} subjects, seeds {results['seeds']}, "
           f"{cfg['train']['epochs']} epochs (last epoch reported), synthetic: "
           f"{cfg['dataset'].get('synthetic', False)}. A spotted interval is a hit when its IoU "
           "with a coded interval of its kind is >= 0.5 (one-to-one).", ""]
  lines += spotting_table(results["metrics"])
  lines += heuristic_line(results)
  lines += ["", "| seed | scope | TP | spotted | coded |", "|---|---|---|---|---|"]
  for s in results["per_seed"]:
    for scope in SCOPES:
      lines.append(f"| {s['seed']} | {scope} | {s[scope]['true_positives']} | "
                   f"{s[scope]['spotted']} | {s[scope]['truth']} |")
  lines += ["", f"Wall time: {results.get('wall_time_s', float('nan')):.1f} s", ""]
  return "\n".join(lines)


def run(config, workdir: str | Path) -> dict:
  """Loads the long videos of `config.dataset` (registry) and runs the spotting protocol."""
  from microexp import loaders  # pylint: disable=g-import-not-at-top

  return spot_and_score(config, loaders.load(config.dataset)["videos"], workdir)
