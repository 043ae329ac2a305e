"""The MEGC spotting task's evaluation: interval IoU >= 0.5 hits, precision, recall, F1.

MEGC 2019-2023 (long videos of CAS(ME)^2 and SAMM): a spotted interval [onset, offset] is a true
positive when its intersection over union with a ground-truth interval of the same video is at
least 0.5, frames counted inclusively; each ground-truth interval is hit at most once. TP, the
number spotted and the number of ground-truth intervals are summed over all videos, then
precision = TP / spotted, recall = TP / ground truth, F1 = 2PR / (P + R) (0 when P + R = 0).
Micro- and macro-expressions are evaluated separately (`long_videos.by_video(kind=...)`).

Spot-then-recognize (MEGC 2023-2025, `evaluate_str`): the spotted intervals carry a kind and an
emotion; STRS = spotting F1 x recognition F1 over the true-positive intervals.
definition='correct' matches one-to-one per kind and takes UAR = mean per-class recall, recognition
F1 = UF1 = mean per-class F1; definition='reference' reproduces the published MEGC STR scorer
(STRS-Metric): one prediction may match several coded intervals, its "UAR" is the mean of the
per-class precisions, its F1 the harmonic mean of the mean precision and mean recall, and subjects
without predictions are left out (see `evaluate_str`; cases worked by hand in
tests/train/test_spotting_metrics.py). The reference's pandas `DataFrame.append` calls (gone in
pandas 2) are not reproduced: only its definitions.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, NamedTuple, Sequence

import numpy as np

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


# --- Spot-then-recognize (MEGC 2023-2025 STR) -------------------------------------------------

DEFINITIONS = ("correct", "reference")


class Labelled(NamedTuple):
  """A spotted or coded interval with its kind ('micro' | 'macro') and emotion class ('' = none)."""

  onset: int
  offset: int
  kind: str
  emotion: str


@dataclasses.dataclass(frozen=True)
class RecognitionScore:
  """Recognition of the spotted true-positive intervals: per-class precision / recall / F1 over
  `classes`, their means (`uar` and `uf1` as the definition says) and `f1`, the factor of STRS."""

  classes: tuple[str, ...]
  pairs: int  # true-positive (spotted, coded) pairs whose coded emotion is one of `classes`
  precision: dict[str, float]
  recall: dict[str, float]
  per_class_f1: dict[str, float]
  uar: float
  uf1: float
  f1: float

  def to_json(self) -> dict:
    r = lambda d: {k: round(v, 4) for k, v in d.items()}
    return {"classes": list(self.classes), "pairs": self.pairs, "precision": r(self.precision),
            "recall": r(self.recall), "per_class_f1": r(self.per_class_f1),
            "uar": round(self.uar, 4), "uf1": round(self.uf1, 4), "f1": round(self.f1, 4)}


@dataclasses.dataclass(frozen=True)
class STRScore:
  """Spotting (per kind: 'micro', 'macro', 'overall'; the reference scores 'overall' only),
  recognition and STRS = spotting['overall'].f1 x recognition.f1."""

  definition: str
  spotting: dict[str, SpottingScore]
  recognition: RecognitionScore
  strs: float

  def to_json(self) -> dict:
    return {"definition": self.definition, "strs": round(self.strs, 4),
            "spotting": {k: v.to_json() for k, v in self.spotting.items()},
            "recognition": self.recognition.to_json()}


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
  precision = tp / (tp + fp) if tp + fp else 0.0
  recall = tp / (tp + fn) if tp + fn else 0.0
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return precision, recall, f1


def _recognition_correct(pairs: list[tuple[str, str]], classes: Sequence[str]) -> RecognitionScore:
  """UAR = mean per-class recall, UF1 = mean per-class F1, over the classes coded among the
  pairs (truth, prediction); f1 = UF1."""
  pairs = [(t, p) for t, p in pairs if t in classes]
  present = [c for c in classes if any(t == c for t, _ in pairs)]
  precision, recall, f1 = {}, {}, {}
  for c in present:
    tp = sum(t == c and p == c for t, p in pairs)
    fp = sum(t != c and p == c for t, p in pairs)
    fn = sum(t == c and p != c for t, p in pairs)
    precision[c], recall[c], f1[c] = _prf(tp, fp, fn)
  mean = lambda d: float(np.mean(list(d.values()))) if d else 0.0
  return RecognitionScore(tuple(classes), len(pairs), precision, recall, f1, mean(recall),
                          mean(f1), mean(f1))


def _recognition_reference(pairs: list[tuple[str, str]],
                           classes: Sequence[str]) -> RecognitionScore:
  """The MEGC STR scorer's `calculate_analysis_metrics`: per class of `classes` (absent ones
  included), one-vs-rest counts from sklearn's confusion_matrix, which it sets to 0 when the
  matrix is not 2x2 (the pairs hold one value only for that class: all of it, or none); f1 = the
  harmonic mean of the MEAN precision and the MEAN recall (NaN when both are 0, as numpy's 0/0);
  its "UAR" is the mean precision."""
  pairs = [(t, p) for t, p in pairs if t in classes]
  precision, recall, f1 = {}, {}, {}
  for c in classes:
    truth = [t == c for t, _ in pairs]
    predicted = [p == c for _, p in pairs]
    if len(set(truth) | set(predicted)) < 2:
      tp = fp = fn = 0
    else:
      tp = sum(a and b for a, b in zip(truth, predicted))
      fp = sum(b and not a for a, b in zip(truth, predicted))
      fn = sum(a and not b for a, b in zip(truth, predicted))
    precision[c], recall[c], f1[c] = _prf(tp, fp, fn)
  p_mean = float(np.mean(list(precision.values()))) if classes else 0.0
  r_mean = float(np.mean(list(recall.values()))) if classes else 0.0
  f1_all = 2 * p_mean * r_mean / (p_mean + r_mean) if p_mean + r_mean else float("nan")
  return RecognitionScore(tuple(classes), len(pairs), precision, recall, f1,
                          uar=p_mean, uf1=float(np.mean(list(f1.values()))) if classes else 0.0,
                          f1=f1_all)


def _reference_match(spotted: Sequence[Labelled], truth: Sequence[Labelled],
                     threshold: float) -> tuple[list[tuple[int, int]], int, int]:
  """The reference's `evaluate_spotting` on one video: predictions in order, each taking EVERY
  not yet matched coded interval (in order) with IoU >= threshold, so one prediction may count
  several true positives; a prediction that takes none is a false positive. Returns (pairs,
  false positives, false negatives)."""
  pairs, used, fp = [], set(), 0
  for i, s in enumerate(spotted):
    hit = False
    for j, t in enumerate(truth):
      if j not in used and iou((s.onset, s.offset), (t.onset, t.offset)) >= threshold:
        pairs.append((i, j))
        used.add(j)
        hit = True
    fp += not hit
  return pairs, fp, len(truth) - len(used)


def evaluate_str(spotted: Mapping[str, Sequence[Labelled]], truth: Mapping[str, Sequence[Labelled]],
                 *, classes: Sequence[str], definition: str = "correct",
                 subjects: Mapping[str, str] | None = None,
                 threshold: float = IOU_THRESHOLD) -> STRScore:
  """Spot-then-recognize score of spotted intervals (with predicted kind and emotion) against the
  coded ones, both {video: [Labelled, ...]}.

  definition='correct': per kind, spotted intervals of that kind matched one-to-one to coded
    ones of that kind (`match`: IoU >= threshold, highest first), over every video of either
    mapping; 'overall' sums the micro and macro counts. Recognition over the true-positive pairs
    whose coded emotion is in `classes`: per-class recall and F1 over the classes coded among
    them, UAR = mean recall, UF1 = mean F1, recognition F1 = UF1. STRS = overall F1 x UF1.
  definition='reference': the published MEGC STR scorer (STRS-Metric, Liong et al. 2023) on
    the same inputs: kinds ignored (one pool), `_reference_match` per video, only the videos with
    coded intervals of the subjects that have at least one prediction (a subject with none is
    left out entirely, and so is a prediction in a video without coded intervals), recognition
    by `_recognition_reference`, STRS = spotting F1 x that f1. `subjects` maps video -> subject
    (default: each video its own subject).

  The differences are worked by hand in tests/train/test_spotting_metrics.py.
  """
  if definition not in DEFINITIONS:
    raise ValueError(f"Unknown STRS definition {definition!r}; choose one of {DEFINITIONS}.")
  classes = tuple(classes)
  pairs: list[tuple[str, str]] = []
  if definition == "correct":
    spotting = {}
    for kind in ("micro", "macro"):
      counts = [0, 0, 0]
      for video in sorted(set(spotted) | set(truth)):
        s = [x for x in spotted.get(video, ()) if x.kind == kind]
        t = [x for x in truth.get(video, ()) if x.kind == kind]
        hits = match([(x.onset, x.offset) for x in s], [(x.onset, x.offset) for x in t],
                     threshold)
        pairs += [(t[j].emotion, s[i].emotion) for i, j in hits]
        counts = [counts[0] + len(hits), counts[1] + len(s), counts[2] + len(t)]
      spotting[kind] = SpottingScore(*counts)
    spotting["overall"] = SpottingScore(*(sum(getattr(spotting[k], f) for k in ("micro", "macro"))
                                          for f in ("true_positives", "spotted", "truth")))
    recognition = _recognition_correct(pairs, classes)
    return STRScore(definition, spotting, recognition,
                    spotting["overall"].f1 * recognition.f1)
  subject_of = (lambda v: subjects.get(v, v)) if subjects else (lambda v: v)
  with_predictions = {subject_of(v) for v, s in spotted.items() if len(s)}
  tp = fp = fn = 0
  for video in sorted(truth):
    if subject_of(video) not in with_predictions:
      continue
    s, t = list(spotted.get(video, ())), list(truth[video])
    hits, false_pos, false_neg = _reference_match(s, t, threshold)
    pairs += [(t[j].emotion, s[i].emotion) for i, j in hits]
    tp, fp, fn = tp + len(hits), fp + false_pos, fn + false_neg
  spot = SpottingScore(tp, tp + fp, tp + fn)
  recognition = _recognition_reference(pairs, classes)
  return STRScore(definition, {"overall": spot}, recognition, spot.f1 * recognition.f1)
