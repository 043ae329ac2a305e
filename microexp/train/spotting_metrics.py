"""The MEGC spotting task's evaluation: interval IoU >= 0.5 hits, precision, recall, F1.

MEGC 2019-2023 (long videos of CAS(ME)^2 and SAMM): a spotted interval [onset, offset] is a true
positive when its intersection over union with a ground-truth interval of the same video is at
least 0.5, frames counted inclusively; each ground-truth interval is hit at most once. TP, the
number spotted and the number of ground-truth intervals are summed over all videos, then
precision = TP / spotted, recall = TP / ground truth, F1 = 2PR / (P + R) (0 when P + R = 0).
Micro- and macro-expressions are evaluated separately (`long_videos.by_video(kind=...)`).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

IOU_THRESHOLD = 0.5

Span = tuple[int, int]  # (onset, offset) frames, inclusive


def iou(a: Span, b: Span) -> float:
  """Intersection over union of two inclusive frame intervals."""
  inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
  if inter <= 0:
    return 0.0
  return inter / ((a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter)


def match(spotted: Sequence[Span], truth: Sequence[Span],
          threshold: float = IOU_THRESHOLD) -> list[tuple[int, int]]:
  """(spotted index, truth index) hits: pairs with IoU >= threshold, highest IoU first, each
  interval used at most once."""
  pairs = sorted(((iou(s, t), i, j) for i, s in enumerate(spotted) for j, t in enumerate(truth)),
                 reverse=True)
  used_s, used_t, hits = set(), set(), []
  for value, i, j in pairs:
    if value < threshold:
      break
    if i not in used_s and j not in used_t:
      used_s.add(i)
      used_t.add(j)
      hits.append((i, j))
  return sorted(hits)


@dataclasses.dataclass(frozen=True)
class SpottingScore:
  """Pooled counts and the metrics they give."""

  true_positives: int
  spotted: int
  truth: int

  @property
  def precision(self) -> float:
    return self.true_positives / self.spotted if self.spotted else 0.0

  @property
  def recall(self) -> float:
    return self.true_positives / self.truth if self.truth else 0.0

  @property
  def f1(self) -> float:
    p, r = self.precision, self.recall
    return 2 * p * r / (p + r) if p + r else 0.0

  def to_json(self) -> dict:
    return {"true_positives": self.true_positives, "spotted": self.spotted, "truth": self.truth,
            "precision": round(self.precision, 4), "recall": round(self.recall, 4),
            "f1": round(self.f1, 4)}


def evaluate(spotted: Mapping[str, Sequence[Span]], truth: Mapping[str, Sequence[Span]],
             threshold: float = IOU_THRESHOLD) -> tuple[SpottingScore, dict[str, SpottingScore]]:
  """Pooled score over every video in either mapping, and the score per video.

  A video with ground truth but nothing spotted counts its misses; one spotted without ground
  truth counts its false positives.
  """
  per_video = {}
  for video in sorted(set(spotted) | set(truth)):
    s, t = list(spotted.get(video, ())), list(truth.get(video, ()))
    per_video[video] = SpottingScore(len(match(s, t, threshold)), len(s), len(t))
  pooled = SpottingScore(sum(v.true_positives for v in per_video.values()),
                         sum(v.spotted for v in per_video.values()),
                         sum(v.truth for v in per_video.values()))
  return pooled, per_video
