"""STRS: the correct definition and the MEGC reference scorer's, on cases worked out by hand.

Frames are inclusive: IoU((a, b), (c, d)) = |overlap| / |union| in frames.
"""

import math

import pytest

from microexp.data.emotions import MEGC_CLASSES
from microexp.train import spotting_metrics as sm

L = sm.Labelled


def score(spotted, truth, definition, **kw):
  return sm.evaluate_str(spotted, truth, classes=MEGC_CLASSES, definition=definition, **kw)


def test_one_prediction_covering_two_coded_intervals():
  # Coded (10, 19) and (12, 21); spotted (11, 20): overlaps 11..19 and 12..20 are 9 frames, unions
  # 10..20 and 11..21 are 11: IoU 9/11 = 0.818 with both.
  truth = {"v": [L(10, 19, "micro", "positive"), L(12, 21, "micro", "positive")]}
  spotted = {"v": [L(11, 20, "micro", "positive")]}
  # Reference: the one prediction takes both -> TP 2, FP 0, FN 0: P = R = F1 = 1.
  ref = score(spotted, truth, "reference").spotting["overall"]
  assert (ref.true_positives, ref.spotted, ref.truth) == (2, 2, 2)
  assert ref.f1 == 1.0
  # Correct: one-to-one -> TP 1 of 1 spotted, 2 coded: P 1, R 1/2, F1 2/3.
  ok = score(spotted, truth, "correct").spotting
  assert (ok["micro"].true_positives, ok["micro"].spotted, ok["micro"].truth) == (1, 1, 2)
  assert ok["overall"].f1 == pytest.approx(2 / 3)


def test_greedy_order_versus_best_iou():
  # Coded T1 (0, 9), T2 (4, 13). P1 (3, 12): IoU 7/13 = 0.538 with T1, 9/11 = 0.818 with T2.
  # P2 (0, 9): IoU 1 with T1, 6/14 = 0.43 with T2.
  truth = {"v": [L(0, 9, "micro", "negative"), L(4, 13, "micro", "surprise")]}
  spotted = {"v": [L(3, 12, "micro", "surprise"), L(0, 9, "micro", "negative")]}
  # Reference: P1 (first) takes T1 and T2; P2 finds T1 used -> FP. TP 2, FP 1, FN 0:
  # P 2/3, R 1, F1 0.8. Pairs (T1 negative, P1 surprise), (T2 surprise, P1 surprise).
  ref = score(spotted, truth, "reference")
  assert ref.spotting["overall"].f1 == pytest.approx(0.8)
  # Correct: highest IoU first: (P2, T1) = 1, then (P1, T2) = 0.818 -> TP 2 of 2: F1 1, and both
  # pairs recognised correctly: UF1 = UAR = 1 over the two coded classes, STRS 1.
  ok = score(spotted, truth, "correct")
  assert ok.spotting["overall"].f1 == 1.0
  assert (ok.recognition.uf1, ok.recognition.uar, ok.strs) == (1.0, 1.0, 1.0)
  # Reference recognition of its pairs (negative, surprise), (surprise, surprise):
  #   negative: truth [1, 0], pred [0, 0] -> TP 0, FN 1: P 0, R 0.
  #   positive: all 0 in both -> 1x1 confusion matrix -> 0, 0.
  #   surprise: truth [0, 1], pred [1, 1] -> TP 1, FP 1: P 1/2, R 1.
  # mean P = 1/6, mean R = 1/3, f1 = 2 (1/6)(1/3) / (1/2) = 2/9; STRS = 0.8 x 2/9.
  assert ref.recognition.f1 == pytest.approx(2 / 9)
  assert ref.strs == pytest.approx(0.8 * 2 / 9)


def test_uar_is_mean_recall_not_mean_precision():
  # Five true positives (coded, predicted): (neg, neg), (neg, neg), (neg, pos), (pos, pos),
  # (sur, sur), each a separate coded interval hit exactly.
  pairs = [("negative", "negative"), ("negative", "negative"), ("negative", "positive"),
           ("positive", "positive"), ("surprise", "surprise")]
  truth = {"v": [L(20 * i, 20 * i + 9, "micro", t) for i, (t, _) in enumerate(pairs)]}
  spotted = {"v": [L(20 * i, 20 * i + 9, "micro", p) for i, (_, p) in enumerate(pairs)]}
  # Per class: negative TP 2 FN 1 -> P 1, R 2/3, F1 0.8; positive TP 1 FP 1 -> P 1/2, R 1,
  # F1 2/3; surprise P = R = F1 = 1. Every class has both values among the pairs (2x2 matrices),
  # so the per-class counts agree; the means do not.
  ok = score(spotted, truth, "correct").recognition
  assert ok.uar == pytest.approx((2 / 3 + 1 + 1) / 3)  # 8/9: mean recall
  assert ok.uf1 == pytest.approx((0.8 + 2 / 3 + 1) / 3)  # 0.8222
  assert ok.f1 == ok.uf1
  ref = score(spotted, truth, "reference").recognition
  assert ref.uar == pytest.approx((1 + 0.5 + 1) / 3)  # 5/6: its "UAR" is the mean precision
  assert ref.uf1 == pytest.approx(ok.uf1)
  # Its f1: harmonic mean of mean P (5/6) and mean R (8/9) = 1440/1674 = 0.8602, not UF1.
  assert ref.f1 == pytest.approx(2 * (5 / 6) * (8 / 9) / (5 / 6 + 8 / 9))


def test_one_class_only_and_absent_classes():
  # Two true positives, both positive and recognised as positive.
  truth = {"v": [L(0, 9, "micro", "positive"), L(30, 39, "micro", "positive")]}
  spotted = {"v": [L(0, 9, "micro", "positive"), L(30, 39, "micro", "positive")]}
  # Correct: the one coded class is perfectly recognised: UF1 = UAR = 1, STRS 1.
  assert score(spotted, truth, "correct").strs == 1.0
  # Reference: for 'positive' truth and prediction are all 1 -> a 1x1 confusion matrix -> its
  # except branch sets TP = FP = FN = 0; the other classes too: mean P = mean R = 0 and its f1 is
  # 0 / 0 = NaN (numpy), so STRS is NaN.
  ref = score(spotted, truth, "reference")
  assert ref.recognition.precision == {c: 0.0 for c in MEGC_CLASSES}
  assert math.isnan(ref.recognition.f1) and math.isnan(ref.strs)
  # With a second class recognised too, the absent 'negative' still counts as P = R = 0:
  # reference f1 = 2/3 where the correct UF1 is 1.
  truth["v"].append(L(60, 69, "micro", "surprise"))
  spotted["v"].append(L(60, 69, "micro", "surprise"))
  assert score(spotted, truth, "reference").recognition.f1 == pytest.approx(2 / 3)
  assert score(spotted, truth, "correct").recognition.f1 == 1.0


def test_subjects_without_predictions_and_videos_without_coding():
  # Subject A: video a1 coded (0, 9), spotted exactly; video a2 has no coded interval but one
  # spotted. Subject B: video b1 coded (0, 9), nothing spotted.
  truth = {"a1": [L(0, 9, "micro", "positive")], "b1": [L(0, 9, "micro", "negative")]}
  spotted = {"a1": [L(0, 9, "micro", "positive")], "a2": [L(50, 59, "micro", "positive")]}
  subjects = {"a1": "A", "a2": "A", "b1": "B"}
  # Reference: subject B has no prediction -> left out (its miss is not counted); a2 has no coded
  # interval -> never visited (its false positive is not counted): TP 1, FP 0, FN 0, F1 1.
  ref = score(spotted, truth, "reference", subjects=subjects).spotting["overall"]
  assert (ref.true_positives, ref.spotted, ref.truth, ref.f1) == (1, 1, 1, 1.0)
  # Correct: TP 1 of 2 spotted and 2 coded: P = R = F1 = 1/2.
  ok = score(spotted, truth, "correct", subjects=subjects).spotting["overall"]
  assert (ok.true_positives, ok.spotted, ok.truth) == (1, 2, 2)
  assert ok.f1 == 0.5


def test_kinds_are_scored_separately_by_the_correct_definition():
  # Coded micro (0, 9) and macro (100, 159); spotted: the micro one called 'macro', the macro one
  # called 'macro'.
  truth = {"v": [L(0, 9, "micro", "positive"), L(100, 159, "macro", "surprise")]}
  spotted = {"v": [L(0, 9, "macro", "positive"), L(100, 159, "macro", "surprise")]}
  ok = score(spotted, truth, "correct").spotting
  # micro: TP 0 of 0 spotted, 1 coded; macro: TP 1 of 2 spotted, 1 coded; overall TP 1, spotted
  # 2, coded 2: F1 1/2.
  assert (ok["micro"].true_positives, ok["micro"].spotted, ok["micro"].truth) == (0, 0, 1)
  assert (ok["macro"].true_positives, ok["macro"].spotted, ok["macro"].truth) == (1, 2, 1)
  assert ok["overall"].f1 == 0.5
  # Reference: kinds ignored, both hit: F1 1.
  assert score(spotted, truth, "reference").spotting["overall"].f1 == 1.0


def test_emotions_outside_the_classes_are_not_recognised():
  # A coded 'others' ('' after megc_class) hit: a spotting TP but not a recognition pair.
  truth = {"v": [L(0, 9, "micro", ""), L(30, 39, "micro", "surprise")]}
  spotted = {"v": [L(0, 9, "micro", "surprise"), L(30, 39, "micro", "surprise")]}
  for definition in sm.DEFINITIONS:
    result = score(spotted, truth, definition)
    assert result.spotting["overall"].true_positives == 2
    assert result.recognition.pairs == 1


def test_unknown_definition_is_refused():
  with pytest.raises(ValueError, match="reference"):
    score({}, {}, "megc")


def test_nothing_spotted_scores_zero():
  truth = {"v": [L(0, 9, "micro", "positive")]}
  result = score({}, truth, "correct")
  assert (result.spotting["overall"].f1, result.recognition.f1, result.strs) == (0.0, 0.0, 0.0)
  assert result.to_json()["spotting"]["micro"]["truth"] == 1
