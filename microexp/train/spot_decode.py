"""A trained spotter's row scores -> per-frame curves -> spotted intervals, micro and macro.

Row t's probability (spot_labels.py) is spread over the frames its window covers, f_t .. f_t + k
(each frame takes the highest score of the rows covering it), interpolated to every frame and
smoothed over a quarter of a micro-expression's longest duration. On each kind's curve the maxima
>= `threshold` (`spotting.peaks`, at least one half-window apart) are the apexes; an interval is
the half-height run around its apex (`spotting.run_around`, the heuristic's extent rule) less the
k - 1 frames the spreading added at each end, and overlapping ones are merged (`spotting.merge`). The heuristic's fps-aware macro guard applies to
the micro curve: a micro candidate lasting longer than `max_duration` s
(`spotting.lasts_longer`) is set apart, not reported as a micro-expression.
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


def decode(scores: np.ndarray, frames: np.ndarray, *, k: int, num_frames: int, fps: float,
           threshold: float = 0.5, max_duration: float = 0.5) -> Decoded:
  """Row probabilities [N, 2] (micro, macro) of one video -> `Decoded`."""
  half = spotting.half_window(fps, max_duration)
  curves = frame_curves(scores, frames, k, num_frames, window=2 * (half // 4) + 1)
  micro, rejected = [], []
  trim = max(int(k) - 1, 0)
  for interval in intervals_of(curves[0], threshold, half, trim):
    too_long = spotting.lasts_longer(interval.onset, interval.offset, fps, max_duration)
    (rejected if too_long else micro).append(interval)
  macro = intervals_of(curves[1], threshold, half, trim)
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
