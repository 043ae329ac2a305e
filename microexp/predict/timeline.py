"""Long recordings: every candidate micro-expression spotted, classified, and drawn on a timeline.

One onset -> apex pair is the wrong model of an interview: it holds many movements, most of them
macro-expressions, speech and posture. For a recording longer than `LONG_RECORDING_S`, predict
(`microexp.predict.run`) aligns the face once (`microexp.vision.align`), then this module

1. spots candidate intervals with `spotting.spot_events` (window = the longest micro-expression,
   0.5 s, in frames of the recording's fps; movements lasting longer are set apart as macro),
2. classifies each candidate with the model on its onset -> apex pair (the caller's `classify`),
3. writes `timeline.json` (intervals in frames and seconds, class probabilities, rejected macro
   movements, the contrast curve) and `timeline.png` (the curve, the threshold, each interval
   shaded and labelled with its class, macro movements hatched).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Callable, Sequence

import numpy as np

from microexp.vision import spotting

# Recordings longer than this (seconds) get a timeline rather than one onset/apex pair: longer than
# any single-expression clip of CASME II / SAMM / CAS(ME)^3 (at most ~2.5 s with lead-in and tail).
LONG_RECORDING_S = 3.0
# The contrast curve is computed at about this rate (frames per second) and interpolated between:
# a 200 fps recording needs no 200 flows per second to place a >= 0.2 s movement.
SPOTTING_RATE = 30.0

ClassifyFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # gray onset, apex [H, W] -> [K] probs


def is_long(num_frames: int, fps: float, limit: float = LONG_RECORDING_S) -> bool:
  return num_frames / fps > limit


@dataclasses.dataclass(frozen=True)
class Entry:
  """One spotted candidate and what the model made of it."""

  interval: spotting.Interval
  label: str
  probabilities: dict[str, float]
  kind: str = "micro"  # 'micro' | 'macro' (a learned spotter reports both)


@dataclasses.dataclass(frozen=True)
class Timeline:
  entries: list[Entry]
  macros: list[spotting.Interval]
  curve: np.ndarray  # [T] contrast curve (px)
  level: float  # its final threshold
  fps: float
  max_duration: float
  coded: tuple = ()  # (onset, offset, kind) of the coded intervals, where known (protocol runs)
  curve_name: str = "contrast"  # what `curve` is: the heuristic's contrast or a spotter's score

  def to_json(self) -> dict:
    seconds = lambda frame: round(frame / self.fps, 3)
    span = lambda i: {"onset": i.onset, "apex": i.apex, "offset": i.offset,
                      "onset_s": seconds(i.onset), "apex_s": seconds(i.apex),
                      "offset_s": seconds(i.offset), "score": round(i.score, 4)}
    return {
        "fps": self.fps, "num_frames": len(self.curve), "max_duration_s": self.max_duration,
        "threshold": round(self.level, 4),
        "intervals": [{**span(e.interval), "label": e.label, "kind": e.kind,
                       "probabilities": {k: round(v, 5) for k, v in e.probabilities.items()}}
                      for e in self.entries],
        "macro_movements": [{**span(m), "duration_s": seconds(m.offset - m.onset + 1)}
                            for m in self.macros],
        "curve": [round(float(c), 4) for c in self.curve],
    }


def analyse(crops: np.ndarray, fps: float, classify: ClassifyFn, class_names: Sequence[str], *,
            method: str = "farneback", max_duration: float = 0.5,
            threshold: float = 0.5) -> Timeline:
  """Spots and classifies every candidate in aligned face crops uint8 [T, H, W, 3].

  `classify(onset, apex)` gets gray crops [H, W] at crop resolution (the model's input frames).
  """
  stride = max(1, int(fps // SPOTTING_RATE))
  spotted = spotting.spot_events(spotting.to_gray(crops), fps=fps, max_duration=max_duration,
                                 threshold=threshold, method=method, stride=stride)
  gray = spotting.to_gray(crops, width=None)
  entries = []
  for interval in spotted.intervals:
    probs = np.asarray(classify(gray[interval.onset], gray[interval.apex]), np.float64)
    entries.append(Entry(interval, class_names[int(np.argmax(probs))],
                         {n: float(p) for n, p in zip(class_names, probs)}))
  return Timeline(entries, spotted.macros, spotted.curve, spotted.level, float(fps), max_duration)


def summary(timeline: Timeline) -> str:
  """What the CLI prints: the counts, then one line per candidate (times in s, class, p)."""
  lines = [f"Long recording ({len(timeline.curve) / timeline.fps:.1f} s): "
           f"{len(timeline.entries)} candidate micro-expression(s), {len(timeline.macros)} "
           "macro movement(s) set apart"]
  for e in timeline.entries:
    i = e.interval
    lines.append(f"  {i.onset / timeline.fps:7.2f}-{i.offset / timeline.fps:.2f} s  "
                 f"{e.kind:5s} {e.label:12s} {e.probabilities[e.label]:6.1%}")
  return "\n".join(lines)


def plot(timeline: Timeline, path: str | pathlib.Path, title: str = "") -> pathlib.Path:
  """The contrast curve over time with each interval shaded and labelled, as a PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  seconds = np.arange(len(timeline.curve)) / timeline.fps
  fig, ax = plt.subplots(figsize=(max(8.0, min(20.0, seconds[-1] / 2 + 6)), 3.6))
  ax.plot(seconds, timeline.curve, color="tab:blue", lw=1,
          label=(f"contrast (window = {timeline.max_duration:g} s)"
                 if timeline.curve_name == "contrast" else timeline.curve_name))
  ax.axhline(timeline.level, color="gray", ls=":", lw=1, label="threshold")
  colors = matplotlib.colormaps["tab10"]
  labels = sorted({e.label for e in timeline.entries})
  top = float(timeline.curve.max()) if len(timeline.curve) else 1.0
  for e in timeline.entries:
    i, color = e.interval, colors(labels.index(e.label) % 10)
    ax.axvspan(i.onset / timeline.fps, i.offset / timeline.fps, color=color, alpha=0.3)
    name = e.label if e.kind in ("micro", e.label) else f"{e.kind}: {e.label}"
    ax.text(i.apex / timeline.fps, top * 1.02, f"{name} {e.probabilities[e.label]:.0%}",
            ha="center", va="bottom", fontsize=7, color=color, rotation=30)
  for m in timeline.macros:
    ax.axvspan(m.onset / timeline.fps, m.offset / timeline.fps, facecolor="none",
               edgecolor="gray", hatch="//", lw=0)
    ax.text((m.onset + m.offset) / 2 / timeline.fps, top * 0.9, "macro", ha="center",
            fontsize=7, color="gray")
  for onset, offset, kind in timeline.coded:  # the coded intervals: bars under the curve
    ax.plot([onset / timeline.fps, offset / timeline.fps], [-0.04 * top] * 2, lw=4,
            color="black" if kind == "micro" else "gray", solid_capstyle="butt")
  if timeline.coded:
    ax.text(0, -0.1 * top, "coded: micro (black), macro (gray)", fontsize=7, va="top")
  ax.set_ylim(-0.15 * top if timeline.coded else 0, top * 1.25 + 1e-6)
  ax.set_xlabel(f"time (s), {timeline.fps:g} fps")
  ax.set_ylabel("p97 |flow - median| (px)" if timeline.curve_name == "contrast"
                else "probability", fontsize=8)
  ax.legend(fontsize=7, loc="upper right")
  ax.set_title(title or f"{len(timeline.entries)} candidate micro-expression(s), "
               f"{len(timeline.macros)} macro movement(s)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return pathlib.Path(path)


def write(timeline: Timeline, out: str | pathlib.Path, record: dict | None = None,
          title: str = "") -> tuple[pathlib.Path, pathlib.Path]:
  """`out/timeline.json` ({**record, **timeline}) and `out/timeline.png`."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  json_path = out / "timeline.json"
  tmp = json_path.with_suffix(".json.tmp")
  tmp.write_text(json.dumps({**(record or {}), **timeline.to_json()}, indent=1))
  tmp.replace(json_path)  # never a half-written timeline.json
  return json_path, plot(timeline, out / "timeline.png", title)


def protocol_timelines(workdir: str | pathlib.Path) -> list[pathlib.Path]:
  """A timeline picture per test video of a spotting or STR run (microexp/train/spot_protocol.py,
  str_protocol.py): WORKDIR/timelines/seed<s>/<subject>_<video>.png, from results.json and the
  curves under WORKDIR/spotting/. Each spotted interval is labelled with its recognised class
  (STR, true positives) or its kind; the coded intervals are drawn under the curve."""
  workdir = pathlib.Path(workdir)
  results = json.loads((workdir / "results.json").read_text())
  classes = results.get("class_names") or []
  max_duration = float(results["config"].get("spot", {}).get("max_duration", 0.5))
  paths = []
  for rec in results["videos"]:
    stem = rec["video"].replace("/", "_")
    saved = np.load(workdir / "spotting" / f"seed{rec['seed']}" / f"{stem}.npz")
    recognised = {tuple(h["spotted"]): h for h in rec.get("recognised", [])}
    entries = []
    for kind, spotted in rec["spotted"].items():
      for onset, apex, offset, score in spotted:
        hit = recognised.get((onset, apex, offset))
        label, probs = ((hit["pred"], dict(zip(classes, hit["probs"]))) if hit
                        else (kind, {kind: score}))
        entries.append(Entry(spotting.Interval(onset, apex, offset, score), label, probs, kind))
    timeline = Timeline(entries, [], saved["curves"][0], float(saved["threshold"]),
                        float(rec["fps"]), max_duration,
                        coded=tuple((t["onset"], t["offset"], t["kind"]) for t in rec["truth"]),
                        curve_name="spotter: micro-expression probability")
    out = workdir / "timelines" / f"seed{rec['seed']}" / f"{stem}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    paths.append(plot(timeline, out, f"{rec['video']} (seed {rec['seed']}): "
                      f"{len(entries)} spotted, {len(rec['truth'])} coded"))
  return paths
