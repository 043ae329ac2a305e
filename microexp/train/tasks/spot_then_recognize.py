"""The spot-then-recognize task (`config.train.task='str'`, MEGC 2023-2025): the spotting task's
intervals (spotting.py: its spotter, targets, loss and spotting scores), each named by a recogniser
trained under the emotion task (`recognizer_task`, emotions.py).

Metrics: the spotting task's P / R / F1 per kind, and `spotting_metrics.evaluate_str` of the
recognised intervals under both definitions: 'correct' (one-to-one matching per kind, UAR = mean
of recalls, UF1 = mean of F1s; STRS = overall spotting F1 x UF1) and 'reference' (the published
MEGC STR scorer's definitions); per seed, then mean ± std. Writers: results.json, summary.md (the
spotting task's). `trainer`: str_protocol.py trains both models per fold.
"""

from __future__ import annotations

import dataclasses

from microexp.train import metrics as metrics_lib
from microexp.train import spot_labels
from microexp.train import spotting_metrics
from microexp.train.tasks import TASKS
from microexp.train.tasks import spotting


@TASKS.register("str")
@dataclasses.dataclass(frozen=True)
class SpotThenRecognize(spotting.Spotting):
  """The spotting task, its spotted intervals recognised (module docstring)."""

  name: str = "str"
  trainer: str | None = "microexp.train.str_protocol"
  recognizer_task: str = "emotion"  # the task the recogniser trains under
  summary_log_lines: int = 10

  def aggregate(self, job_results, data, output_names, seeds, fold_names):
    """results.json's STR part. job_results: the spotting task's, each with 'recognised' too (its
    spotted intervals of the recognised kinds: video, kind, spotted, pred, probs); data:
    {'videos', 'recognised_kinds'}; output_names: the recogniser's classes."""
    videos, classes = data["videos"], list(output_names)
    decoded = spotting.decoded_by_seed(job_results)
    recognised = [{"seed": r["seed"], **h} for r in job_results for h in r["recognised"]]
    per_seed = []
    for s in seeds:
      seed_decoded = {key: d for (seed, key), d in decoded.items() if seed == s}
      seed_recognised = [h for h in recognised if h["seed"] == s]
      spot = spotting.score(seed_decoded, videos)
      scores = {definition: score_str(seed_decoded, seed_recognised, videos, classes, definition)
                for definition in spotting_metrics.DEFINITIONS}
      per_seed.append({"seed": s, **{scope: sc.to_json() for scope, sc in spot.items()},
                       "str": {d: sc.to_json() for d, sc in scores.items()},
                       "recognition": {"uf1": scores["correct"].recognition.uf1,
                                       "uar": scores["correct"].recognition.uar,
                                       "pairs": scores["correct"].recognition.pairs},
                       "strs": scores["correct"].strs, "strs_reference": scores["reference"].strs})
    metrics = spotting.summarise_scores(per_seed)
    metrics["recognition"] = {m: metrics_lib.mean_std([p["recognition"][m] for p in per_seed])
                              for m in ("uf1", "uar")}
    metrics["strs"] = metrics_lib.mean_std([p["strs"] for p in per_seed])
    metrics["strs_reference"] = metrics_lib.mean_std([p["strs_reference"] for p in per_seed])
    records = spotting.video_records(decoded, videos)
    for rec in records:  # each spotted interval's recognised class
      rec["recognised"] = [{k: h[k] for k in ("kind", "spotted", "pred", "probs")}
                           for h in recognised
                           if h["seed"] == rec["seed"] and h["video"] == rec["video"]]
    return {"seeds": list(seeds), "class_names": classes,
            "recognised_kinds": list(data["recognised_kinds"]), "folds": list(fold_names),
            "metrics": metrics, "per_seed": per_seed, "videos": records,
            "history": spotting.history(job_results)}

  def summary_markdown(self, results: dict) -> str:
    return summary_markdown(results)


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
  lines += spotting.spotting_table(m)
  lines += spotting.heuristic_line(results)
  lines += ["", "| seed | TP pairs recognised | UF1 | UAR | STRS | STRS (reference) |",
            "|---|---|---|---|---|---|"]
  for p in results["per_seed"]:
    r = p["recognition"]
    lines.append(f"| {p['seed']} | {r['pairs']} | {r['uf1']:.3f} | {r['uar']:.3f} | "
                 f"{p['strs']:.4f} | {p['strs_reference']:.4f} |")
  lines += ["", f"Wall time: {results.get('wall_time_s', float('nan')):.1f} s", ""]
  return "\n".join(lines)
