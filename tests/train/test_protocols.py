"""Cross-dataset fold makers: leave-one-dataset-out, holdout databases, DFME's official split."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from microexp.train import protocols

# Two datasets share the subject name 's1': qualified names keep them apart.
SUBJECTS = np.array(["s1", "s1", "s2", "s1", "s3", "s4", "006", "007", "samm/008"])
DATASETS = np.array(["a", "a", "a", "b", "b", "b", "samm", "samm", "samm"])


def _config(**kw):
  c = ml_collections.ConfigDict({"protocol": "lodo", "selection": "last", "num_val_subjects": 1,
                                 "test_subjects": (), "train_datasets": (), "test_datasets": ()})
  c.update(kw)
  return c


def test_qualified_subjects_keep_datasets_apart_and_keep_qualified_names():
  q = protocols.qualified_subjects(SUBJECTS, DATASETS)
  assert q.tolist() == ["a/s1", "a/s1", "a/s2", "b/s1", "b/s3", "b/s4", "samm/006", "samm/007",
                        "samm/008"]
  data = {"subject": SUBJECTS, "dataset": DATASETS}
  assert protocols.qualify(data, "loso") is data  # within-dataset protocols keep their names
  assert protocols.qualify(data, "lodo")["subject"].tolist() == q.tolist()


def test_lodo_tests_each_dataset_once_and_trains_on_the_others():
  folds = protocols.lodo_folds(SUBJECTS, DATASETS)
  assert [f.name for f in folds] == ["a", "b", "samm"]
  assert folds[0].test_subjects == ("a/s1", "a/s2")
  assert folds[0].train_subjects == ("b/s1", "b/s3", "b/s4", "samm/006", "samm/007", "samm/008")
  assert folds[2].test_subjects == ("samm/006", "samm/007", "samm/008")
  for f in folds:
    assert not set(f.train_subjects) & set(f.test_subjects)
  masks = folds[1].masks(protocols.qualified_subjects(SUBJECTS, DATASETS))
  assert masks[2].tolist() == [False] * 3 + [True] * 3 + [False] * 3


def test_lodo_validation_subjects_come_from_the_training_datasets_only():
  for seed in range(5):
    for f in protocols.make_folds({"subject": SUBJECTS, "dataset": DATASETS},
                                  _config(selection="val", num_val_subjects=2), seed):
      assert len(f.val_subjects) == 2
      assert all(not v.startswith(f"{f.name}/") for v in f.val_subjects)
      assert not set(f.val_subjects) & set(f.train_subjects)


def test_lodo_needs_two_datasets():
  with pytest.raises(ValueError, match="at least 2 datasets"):
    protocols.lodo_folds(["s1", "s2"], ["a", "a"])


def test_holdout_trains_on_a_and_tests_on_b():
  (fold,) = protocols.make_folds({"subject": SUBJECTS, "dataset": DATASETS}, _config(
      protocol="holdout", train_datasets=("a", "samm"), test_datasets=("b",)), 0)
  assert fold.name == "a+samm->b"
  assert fold.test_subjects == ("b/s1", "b/s3", "b/s4")
  assert fold.train_subjects == ("a/s1", "a/s2", "samm/006", "samm/007", "samm/008")
  (fold,) = protocols.make_folds({"subject": SUBJECTS, "dataset": DATASETS}, _config(
      protocol="holdout", train_datasets=("a",), test_datasets=("b", "samm"), selection="val"), 3)
  assert fold.val_subjects[0].startswith("a/") and len(fold.train_subjects) == 1


@pytest.mark.parametrize("train,test,match", [
    (("a",), ("a",), "share"), (("a",), ("c",), "missing"), ((), ("b",), "train_datasets")])
def test_holdout_refuses_bad_dataset_lists(train, test, match):
  with pytest.raises(ValueError, match=match):
    protocols.holdout_fold(SUBJECTS, DATASETS, train, test)


def test_official_split_trains_on_the_training_sheet_and_tests_on_test_a_and_b():
  subjects = np.array(["1", "1", "2", "3", "4", "4"])
  split = np.array(["train", "train", "train", "testA", "testB", "testB"])
  data = {"subject": subjects, "dataset": np.full(6, "dfme"), "split": split}
  (fold,) = protocols.make_folds(data, _config(protocol="official_split"), 0)
  assert fold.train_subjects == ("dfme/1", "dfme/2")
  assert fold.test_subjects == ("dfme/3", "dfme/4")
  (fold,) = protocols.make_folds(data, _config(protocol="official_split", selection="val"), 0)
  assert len(fold.val_subjects) == 1 and fold.val_subjects[0] in ("dfme/1", "dfme/2")
  with pytest.raises(ValueError, match="training and the test sheets"):
    protocols.official_split_fold(["1", "1"], ["dfme"] * 2, ["train", "testA"])
  with pytest.raises(ValueError, match="leave config.dataset.splits unset"):
    protocols.official_split_fold(["1", "2"], ["dfme"] * 2, ["train", "train"])
  with pytest.raises(ValueError, match="needs the loader's `split`"):
    protocols.make_folds({"subject": subjects, "dataset": data["dataset"]},
                         _config(protocol="official_split"), 0)


def test_loso_and_split_still_go_to_folds_and_unknown_protocols_fail():
  data = {"subject": SUBJECTS[:3], "dataset": DATASETS[:3]}
  assert [f.name for f in protocols.make_folds(data, _config(protocol="loso"), 0)] == ["s1", "s2"]
  with pytest.raises(ValueError, match="protocol must be one of"):
    protocols.make_folds(data, _config(protocol="lodso"), 0)


@pytest.mark.slow
def test_engine_runs_holdout_and_official_split_with_qualified_subjects(tmp_path):
  from microexp.train import engine  # pylint: disable=g-import-not-at-top
  from . import fake_arrays, tiny_config  # pylint: disable=g-import-not-at-top

  arrays = fake_arrays(num_subjects=6, clips_per_subject=9)
  arrays["dataset"] = np.where(np.isin(arrays["subject"], ["s00", "s01", "s02"]), "a", "b")
  config = tiny_config(epochs=2, protocol="holdout", train_datasets=("a",), test_datasets=("b",),
                       selection="val")
  r = engine.train_and_evaluate(config, arrays, tmp_path / "holdout")
  assert r["folds"] == ["a->b"]
  (fold,) = r["per_fold"]
  assert fold["test_subjects"] == ["b/s03", "b/s04", "b/s05"] and fold["n_test"] == 27
  assert fold["val_subjects"][0] in ("a/s00", "a/s01", "a/s02")
  assert {p["subject"] for p in r["predictions"]} == {"b/s03", "b/s04", "b/s05"}
  assert list(r["per_dataset"]) == ["b"]  # only the tested dataset

  arrays["dataset"] = np.full(len(arrays["subject"]), "dfme")
  arrays["split"] = np.select([arrays["subject"] == "s04", arrays["subject"] == "s05"],
                              ["testA", "testB"], "train")
  r = engine.train_and_evaluate(tiny_config(epochs=2, protocol="official_split"), arrays,
                                tmp_path / "official")
  assert r["folds"] == ["official_split"]
  assert r["per_fold"][0]["test_subjects"] == ["dfme/s04", "dfme/s05"]
