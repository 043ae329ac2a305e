"""A trained spotter's row scores -> per-frame curves -> spotted intervals, micro and macro.

Row t's probability (spot_labels.py) is spread over the frames its window covers, f_t .. f_t + k
(each frame takes the highest score of the rows covering it), interpolated to every frame and
smoothed over a quarter of a micro-expression's longest duration. On each kind's curve the maxima
>= `threshold` (`spotting.peaks`, at least one half-window apart) are the apexes; an interval is
the half-height run around its apex (`spotting.run_around`, the heuristic's extent rule) less the
k - 1 frames the spreading added at each end, and overlapping ones are merged (`spotting.merge`). The heuristic's fps-aware macro guard applies to
the micro curve: a micro candidate lasting longer than `max_duration` s
(`spotting.lasts_longer`) is set apart, not reported as a micro-expression.

A macro-expression is seen by a flow row at its rise and at its fall (where the face holds still
near the apex, k frames apart show little motion): two consecutive macro runs that fit within
`max_macro_duration` s are one movement, from the first's onset to the second's offset. A micro
candidate inside a spotted macro-expression (its rise or fall seen by the micro column) is set
apart like the guard's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from microexp.vision import spotting
from microexp.train import spot_labels


@dataclasses.dataclass(frozen=True)
class Decoded:
  """One video's spotted intervals per kind, the micro candidates the guard set apart, and the
  per-frame curves [2, T] (micro, macro)."""

  spotted: dict[str, list[spotting.Interval]]
  rejected: list[spotting.Interval]
  curves: np.ndarray
  threshold: float


def frame_curves(scores: np.ndarray, frames: np.ndarray, k: int, num_frames: int,
                 window: int) -> np.ndarray:
  """Row probabilities [N, C] of rows starting at frames [N] -> per-frame curves [C, num_frames]:
  each frame the highest score of the rows whose window [f_t, f_t + k] covers it (0 off the rows)."""
  scores, frames = np.asarray(scores, np.float64), np.asarray(frames, np.float64)
  order = np.argsort(frames)
  grid = np.arange(num_frames)
  curves = []
  for c in range(scores.shape[1]):
    rows = np.interp(grid, frames[order], scores[order, c], left=0.0, right=0.0)
    covered = np.stack([np.pad(rows, (j, 0))[:num_frames] for j in range(int(k) + 1)]).max(0)
    curves.append(spotting.smooth(covered, window))
  return np.stack(curves)


def intervals_of(curve: np.ndarray, threshold: float, spacing: int,
                 trim: int = 0) -> list[spotting.Interval]:
  """Half-height runs around the maxima of `curve` >= threshold, `trim` frames shorter at each
  end (never past the apex), merged, by onset."""
  found = []
  for p in spotting.peaks(curve, np.ones(len(curve), bool), threshold, spacing):
    first, last = spotting.run_around(curve, p, 0.5 * curve[p])
    found.append(spotting.Interval(min(first + trim, p), p, max(last - trim, p), float(curve[p])))
  return spotting.merge(found)


def pair_edges(edges: list[spotting.Interval], max_frames: int) -> list[spotting.Interval]:
  """Consecutive runs (by onset) spanning <= max_frames together -> one interval (rise + fall)."""
  out, i = [], 0
  while i < len(edges):
    if i + 1 < len(edges) and edges[i + 1].offset - edges[i].onset + 1 <= max_frames:
      a, b = edges[i], edges[i + 1]
      top = max(a, b, key=lambda j: j.score)
      out.append(spotting.Interval(a.onset, top.apex, b.offset, top.score))
      i += 2
    else:
      out.append(edges[i])
      i += 1
  return out


def decode(scores: np.ndarray, frames: np.ndarray, *, k: int, num_frames: int, fps: float,
           threshold: float = 0.5, max_duration: float = 0.5,
           max_macro_duration: float = 4.0) -> Decoded:
  """Row probabilities [N, 2] (micro, macro) of one video -> `Decoded`."""
  half = spotting.half_window(fps, max_duration)
  curves = frame_curves(scores, frames, k, num_frames, window=2 * (half // 4) + 1)
  trim = max(int(k) - 1, 0)
  macro = pair_edges(intervals_of(curves[1], threshold, half, trim),
                     int(round(max_macro_duration * fps)))
  inside = lambda i: any(m.onset <= i.apex <= m.offset for m in macro)
  micro, rejected = [], []
  for interval in intervals_of(curves[0], threshold, half, trim):
    set_apart = (spotting.lasts_longer(interval.onset, interval.offset, fps, max_duration)
                 or inside(interval))
    (rejected if set_apart else micro).append(interval)
  return Decoded({"micro": micro, "macro": macro}, rejected, curves, float(threshold))


def spans(intervals) -> list[tuple[int, int]]:
  """(onset, offset) pairs, the scorer's spans."""
  return [(int(i.onset), int(i.offset)) for i in intervals]


def curve_length(video: dict) -> int:
  """Frames of a video's curves, indexed by the sheet's frame numbers (which may start at 1)."""
  numbers = video.get("frame_numbers")
  return int(np.max(numbers)) + 1 if numbers is not None and len(numbers) else int(
      video["num_frames"])


def truth_spans(video: dict, kind: str) -> list[tuple[int, int]]:
  """A loader video's coded (onset, offset) of one kind."""
  return [(int(on), int(off)) for (on, _, off), kd in zip(video["intervals"], video["kinds"])
          if kd == kind]


KINDS = spot_labels.KINDS
