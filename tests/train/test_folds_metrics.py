"""Fold construction and metric functions (no JAX)."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from microexp.train import folds, metrics

SUBJECTS = np.repeat([f"sub{i:02d}" for i in range(1, 27)], 3)


def _train_config(**kw):
  cfg = ml_collections.ConfigDict({"protocol": "loso", "selection": "last", "num_val_subjects": 3,
                                   "test_subjects": ["sub21", "sub22", "sub23", "sub24", "sub25",
                                                     "sub26"]})
  cfg.update(kw)
  return cfg


@pytest.mark.parametrize("selection", ["last", "val"])
def test_loso_tests_every_subject_once_and_never_trains_on_it(selection):
  fs = folds.make_folds(SUBJECTS, _train_config(selection=selection), seed=0)
  assert [f.name for f in fs] == sorted(set(SUBJECTS))
  assert sorted(s for f in fs for s in f.test_subjects) == sorted(set(SUBJECTS))
  for f in fs:
    train, val, test = f.masks(SUBJECTS)
    assert not (train & test).any() and not (val & test).any() and not (train & val).any()
    assert (train | val | test).all()
    assert len(f.val_subjects) == (3 if selection == "val" else 0)


def test_val_carve_out_is_deterministic_from_seed():
  a = folds.make_folds(SUBJECTS, _train_config(selection="val"), seed=1)
  b = folds.make_folds(SUBJECTS, _train_config(selection="val"), seed=1)
  c = folds.make_folds(SUBJECTS, _train_config(selection="val"), seed=2)
  assert a == b
  assert [f.val_subjects for f in a] != [f.val_subjects for f in c]


def test_split_protocol_20_6():
  (f,) = folds.make_folds(SUBJECTS, _train_config(protocol="split", selection="val"), seed=0)
  assert f.name == "split" and len(f.test_subjects) == 6
  assert len(f.train_subjects) == 17 and len(f.val_subjects) == 3
  assert not set(f.val_subjects) & set(f.test_subjects)
  assert not set(f.train_subjects) & (set(f.test_subjects) | set(f.val_subjects))
  with pytest.raises(ValueError, match="sub99"):
    folds.make_folds(SUBJECTS, _train_config(protocol="split", test_subjects=["sub99"]), seed=0)


def test_bad_protocol_and_too_many_val_subjects():
  with pytest.raises(ValueError, match="protocol"):
    folds.make_folds(SUBJECTS, _train_config(protocol="kfold"), seed=0)
  with pytest.raises(ValueError, match="num_val_subjects"):
    folds.loso_folds(["a", "b", "c"], num_val_subjects=2)


def test_metrics_match_hand_computation_with_a_class_never_predicted():
  # 3 classes; class 2 is present in labels but never predicted.
  labels = np.array([0, 0, 0, 1, 1, 2, 2])
  preds = np.array([0, 0, 1, 1, 0, 0, 1])
  cm = metrics.confusion_matrix(labels, preds, 3)
  np.testing.assert_array_equal(cm, [[2, 1, 0], [1, 1, 0], [1, 1, 0]])
  assert metrics.accuracy(cm) == pytest.approx(3 / 7)
  # F1: class0 2*2/(4+2+1)=4/7, class1 2*1/(2+2+1)=2/5, class2 0.
  assert metrics.uf1(cm) == pytest.approx((4 / 7 + 2 / 5 + 0) / 3)
  # Recall: 2/3, 1/2, 0.
  assert metrics.uar(cm) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
  report = metrics.class_report(cm, ["a", "b", "c"])
  assert report[2] == {"class": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
  assert report[0]["precision"] == pytest.approx(2 / 4)


def test_macro_averages_skip_classes_absent_from_labels():
  cm = metrics.confusion_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)
  # class 2: no support, never predicted -> excluded from the macro averages.
  assert metrics.uar(cm) == pytest.approx((1 / 2 + 1) / 2)
  assert metrics.uf1(cm) == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_mean_std():
  m = metrics.mean_std([0.5, 0.7])
  assert m["mean"] == pytest.approx(0.6) and m["std"] == pytest.approx(0.1)
