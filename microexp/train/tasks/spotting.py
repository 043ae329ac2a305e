"""The spotting task (`config.train.task='spot'`): which flow rows of a long video lie inside a
micro- or a macro-expression, then the intervals they make, scored the MEGC way.

Targets: per row and kind (micro, macro), the soft targets of spot_labels.py ('spot_targets'
[N, 2]). Loss: sigmoid binary cross-entropy, one column per kind, unweighted (the probabilities
stay calibrated for `config.spot.threshold`; `config.spot.negative_stride` thins the rows far from
any expression instead). Metrics: each fold's model scores every row of its test subject's videos,
the rows become intervals (`decode`, spot_decode.py), a spotted interval is a hit when its IoU with
a coded one of its kind is >= 0.5, one-to-one (spotting_metrics.py); precision, recall and F1
pooled over the videos, micro and macro apart and overall (their counts pooled), per seed, then
mean ± std. Writers: results.json, summary.md.

The task trains on long videos, not on the engine's clip arrays: `trainer` names the module whose
`run(config, workdir)` trains it (spot_protocol.py; `engine.run` dispatches there).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from absl import logging

from microexp.train import metrics as metrics_lib
from microexp.train import spot_decode
from microexp.train import spot_labels
from microexp.train import spotting_metrics
from microexp.train import workdir as workdir_lib
from microexp.train.tasks import TASKS
from microexp.train.tasks import action_units

KINDS = spot_labels.KINDS
SCOPES = KINDS + ("overall",)
_OPTIONS = {"threshold": 0.5, "max_duration": 0.5, "max_macro_duration": 4.0,
            "negative_stride": 1, "heuristic": False}


def spot_options(spot) -> dict:
  """`config.spot` with its defaults: threshold, max_duration (s), max_macro_duration (s),
  negative_stride, heuristic (also score the heuristic spotter on every video, side by side;
  needs the frames)."""
  spot = spot.to_dict() if hasattr(spot, "to_dict") else dict(spot or {})
  out = {**_OPTIONS, **spot}
  unknown = sorted(set(out) - set(_OPTIONS))
  if unknown:
    raise ValueError(f"config.spot has unknown fields {unknown}.")
  return out


@TASKS.register("spot")
@dataclasses.dataclass(frozen=True)
class Spotting:
  """Two sigmoid outputs per flow row (micro, macro), scored as intervals (module docstring)."""

  name: str = "spot"
  output_unit: str = "kinds"
  device_keys: tuple[str, ...] = ("labels", "spot_targets")
  train_side: bool = False  # no class confusion to report
  final_models: bool = False  # the protocol writes WORKDIR/spotter/final itself
  search_and_ensembles: bool = False
  trainer: str | None = "microexp.train.spot_protocol"
  timelines: bool = True  # results.json's test videos, drawn by predict.timeline
  summary_log_lines: int = 8

  @classmethod
  def from_config(cls, train_config) -> "Spotting":
    del train_config
    return cls()

  def check_config(self, config) -> None:
    spot_options(config.get("spot"))
    if config.train.selection != "last":
      raise ValueError(f"config.train.task={self.name!r} trains a fixed schedule and reports the "
                       f"last epoch; set config.train.selection='last' (got "
                       f"{config.train.selection!r}).")

  def prepare(self, arrays, config):
    """The long-video loader's {'videos': [...]} -> (their rows as engine data, KINDS)."""
    if "videos" not in arrays:
      raise ValueError(f"config.train.task={self.name!r} needs a long-video loader (its "
                       f"'videos'; got {sorted(arrays)}); see docs/spotting.md.")
    opts = spot_options(config.get("spot"))
    return spot_labels.frame_data(arrays["videos"], negative_stride=opts["negative_stride"]), KINDS

  def loss_weight_fn(self, data):
    del data
    return lambda train_mask: np.ones(len(KINDS), np.float32)  # unweighted

  def targets(self, data, idx, spec):
    del spec
    return data["spot_targets"][idx]  # soft [B, 2]

  def loss(self, logits, targets, weights):
    del weights  # unweighted (module docstring)
    return action_units.sigmoid_bce(logits, targets, 1.0)

  def correct(self, logits, data, idx):
    return action_units.correct_au(logits, data["spot_targets"][idx])

  def tta_logits(self, logits_fn, x, is_flow):
    return action_units.ActionUnits().tta_logits(logits_fn, x, is_flow)

  def evaluate(self, logits, val_idx, test_idx, data, **kwargs):
    """The training rows' BCE and per-kind accuracy (the curves; nothing is selected)."""
    return action_units.evaluate_au(logits, val_idx, test_idx, data["spot_targets"], **kwargs)

  def aggregate(self, job_results, data, output_names, seeds, fold_names):
    """results.json's spotting part. job_results: per (seed, fold) job, its 'seed', 'fold',
    'history' and 'decoded' ({'subject/video': spot_decode.Decoded} of its test videos); data:
    {'videos': the loader's videos} (their coded intervals)."""
    del output_names
    videos = data["videos"]
    decoded = decoded_by_seed(job_results)
    per_seed = [{"seed": s, **{scope: sc.to_json() for scope, sc in score(
        {key: d for (seed, key), d in decoded.items() if seed == s}, videos).items()}}
                for s in seeds]
    return {"seeds": list(seeds), "folds": list(fold_names),
            "metrics": summarise_scores(per_seed), "per_seed": per_seed,
            "videos": video_records(decoded, videos), "history": history(job_results)}

  def summary_markdown(self, results: dict) -> str:
    return summary_markdown(results)

  def write_outputs(self, workdir, results):
    """results.json and summary.md."""
    workdir = Path(workdir)
    workdir_lib.write_json_atomic(workdir / "results.json", results)
    (workdir / "summary.md").write_text(self.summary_markdown(results))

  def log_summary(self, results, workdir):
    for line in self.summary_markdown(results).splitlines()[:self.summary_log_lines]:
      logging.info("%s", line)


# --- decoding and scoring (host) --------------------------------------------------------------

def decode(probs: np.ndarray, video: dict, opts: dict) -> spot_decode.Decoded:
  """A spotter's row probabilities [N, 2] on one video -> its intervals (`opts`: spot_options)."""
  return spot_decode.decode(
      probs, video["frames"], k=int(video["k"]), num_frames=spot_decode.curve_length(video),
      fps=float(video["fps"]), threshold=opts["threshold"], max_duration=opts["max_duration"],
      max_macro_duration=opts["max_macro_duration"])


def decoded_by_seed(job_results) -> dict[tuple[int, str], spot_decode.Decoded]:
  """The jobs' 'decoded' as one mapping {(seed, 'subject/video'): Decoded}."""
  return {(r["seed"], key): d for r in job_results for key, d in r["decoded"].items()}


def history(job_results) -> dict:
  return {f"seed{r['seed']}/{r['fold']}": r["history"] for r in job_results}


def score(decoded: dict[str, spot_decode.Decoded],
          videos) -> dict[str, spotting_metrics.SpottingScore]:
  """Spotting scores of decoded videos: 'micro', 'macro' and 'overall' (the two pooled)."""
  out = {}
  for kind in KINDS:
    out[kind], _ = spotting_metrics.evaluate(
        {key: spot_decode.spans(d.spotted[kind]) for key, d in decoded.items()},
        {spot_labels.video_key(v): spot_decode.truth_spans(v, kind) for v in videos})
  out["overall"] = spotting_metrics.SpottingScore(*(
      sum(getattr(out[k], f) for k in KINDS) for f in ("true_positives", "spotted", "truth")))
  return out


def summarise_scores(per_seed: list[dict]) -> dict:
  """[{scope: SpottingScore json}] per seed -> {scope: {precision, recall, f1: mean ± std}}."""
  return {scope: {m: metrics_lib.mean_std([s[scope][m] for s in per_seed])
                  for m in ("precision", "recall", "f1")} for scope in SCOPES}


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


# --- summary.md -------------------------------------------------------------------------------

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
