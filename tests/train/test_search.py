"""Nested selection (config.train.search): inner folds, the recorded choice, the chosen candidate
retrained, and the leak test (a test subject's labels never move its fold's choice or
predictions). Per-dataset class weights by hand."""

from __future__ import annotations

import json

import ml_collections
import numpy as np
import pytest

from microexp.train import engine
from microexp.train import folds as folds_lib
from microexp.train import inputs
from microexp.train import search

from . import fake_arrays, probs_by_fold, tiny_config

# Two candidates: a learning rate that learns in 4 epochs and one that barely moves.
GRID = {"learning_rate": (1e-4, 0.1)}


def nested_config(**train):
  config = tiny_config(**train)
  config.train.search = ml_collections.ConfigDict(GRID)
  config.train.search_inner_folds = 2
  return config


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("nested")
  arrays = fake_arrays(num_subjects=4)
  return arrays, engine.train_and_evaluate(nested_config(), arrays, workdir), workdir


def test_inner_folds_split_the_training_subjects_only():
  fold = folds_lib.Fold("s00", ("s01", "s02", "s03", "s04", "s05"), (), ("s00",))
  inner = search.inner_folds(fold, 2, seed=0, index=0)
  assert len(inner) == 2
  held_out = sorted(s for f in inner for s in f.test_subjects)
  assert held_out == list(fold.train_subjects)  # each training subject held out exactly once
  for f in inner:
    assert "s00" not in f.train_subjects + f.test_subjects
    assert set(f.train_subjects) | set(f.test_subjects) == set(fold.train_subjects)
  assert search.inner_folds(fold, 2, seed=0, index=0) == inner  # names and (seed, index) only


def test_grid_and_candidate_config():
  config = tiny_config()
  config.train.search = ml_collections.ConfigDict(
      {"learning_rate": (1e-3, 3e-3), "augment": {"mixup": (0.0, 0.2)}})
  cands = search.grid(config)
  assert cands == [{"augment.mixup": 0.0, "learning_rate": 1e-3},
                   {"augment.mixup": 0.0, "learning_rate": 3e-3},
                   {"augment.mixup": 0.2, "learning_rate": 1e-3},
                   {"augment.mixup": 0.2, "learning_rate": 3e-3}]
  c = search.candidate_config(config, cands[3])
  assert c.train.augment.mixup == 0.2 and c.train.learning_rate == 3e-3 and not c.train.search
  with pytest.raises(ValueError, match="augment.mixups"):
    search.candidate_config(config, {"augment.mixups": 0.1})


@pytest.mark.slow
def test_choice_is_recorded_and_the_best_is_retrained(nested, tmp_path):
  arrays, results, workdir = nested
  info = results["search"]
  assert [f["fold"] for f in info["per_fold"]] == ["s00", "s01", "s02", "s03"]
  for f in info["per_fold"]:
    assert f["chosen"] == int(np.argmax(f["scores"]))
  assert sum(c["wins"] for c in info["candidates"]) == 4
  # lr 0.1 learns the bump in 4 epochs, lr 1e-4 does not: inner validation sees it.
  assert info["candidates"][1]["wins"] >= 3
  assert results["metrics"]["uf1"]["mean"] > 0.6
  on_disk = json.loads((workdir / "results.json").read_text())
  assert on_disk["search"] == info
  assert "Nested selection" in (workdir / "summary.md").read_text()
  # The retrained model of a fold is the chosen candidate trained plainly on that fold.
  plain = engine.train_and_evaluate(search.candidate_config(nested_config(), {"learning_rate": 0.1}),
                                    arrays, tmp_path)
  a, b = probs_by_fold(results), probs_by_fold(plain)
  for f in info["per_fold"]:
    if f["chosen"] == 1:
      np.testing.assert_allclose(a[f["fold"]], b[f["fold"]], atol=1e-5)


@pytest.mark.slow
def test_test_subject_labels_never_move_its_fold(nested, tmp_path):
  arrays, results, _ = nested
  permuted = dict(arrays)
  sel = np.flatnonzero(arrays["subject"] == "s01")
  emotion = arrays["emotion"].copy()
  emotion[sel] = np.roll(emotion[sel], 1)
  assert (emotion[sel] != arrays["emotion"][sel]).any()
  permuted["emotion"] = emotion
  other = engine.train_and_evaluate(nested_config(), permuted, tmp_path)
  fold = lambda r: next(f for f in r["search"]["per_fold"] if f["fold"] == "s01")
  assert fold(other) == fold(results)
  # Other folds' choices may move (s01 trains them), which changes how many jobs a candidate's
  # retraining chunk stacks: float reduction order, ~1e-6 on the probabilities (rounded to 6
  # digits in results.json); nothing of s01 enters its own fold.
  np.testing.assert_allclose(probs_by_fold(other)["s01"], probs_by_fold(results)["s01"],
                             atol=1e-5)


def test_per_dataset_weights_by_hand():
  # Dataset 0: 3 x class 0, 1 x class 1; dataset 1: 1 x class 0, 2 x class 2.
  labels = np.array([0, 0, 0, 1, 0, 2, 2])
  ds = np.array([0, 0, 0, 0, 1, 1, 1])
  w = inputs.loss_weights(labels, ds, 2, 3, "per_dataset")
  # n_d / (present classes * count): 4/(2*3), 4/(2*1); 3/(2*1), 3/(2*2).
  np.testing.assert_allclose(w, [[2 / 3, 2.0, 0.0], [0.0 + 1.5, 0.0, 0.75]], rtol=1e-6)
  # Global balance: n / (3 * count) = 7/12, 7/3, 7/6 on every row.
  np.testing.assert_allclose(inputs.loss_weights(labels, ds, 2, 3, True),
                             [[7 / 12, 7 / 3, 7 / 6]] * 2, rtol=1e-6)
  np.testing.assert_array_equal(inputs.loss_weights(labels, ds, 2, 3, False), np.ones((2, 3)))
  with pytest.raises(ValueError, match="class_balanced"):
    inputs.loss_weights(labels, ds, 2, 3, "per_subject")


@pytest.mark.slow
def test_a_search_over_per_dataset_balance_runs(tmp_path):
  arrays = fake_arrays(num_subjects=4)
  arrays["dataset"] = np.where(np.isin(arrays["subject"], ["s00", "s01"]), "A", "B")
  config = tiny_config()
  config.train.search = ml_collections.ConfigDict({"class_balanced": (True, "per_dataset")})
  config.train.search_inner_folds = 2
  results = engine.train_and_evaluate(config, arrays, tmp_path)
  assert [c["class_balanced"] for c in results["search"]["candidates"]] == [True, "per_dataset"]
  assert sum(c["wins"] for c in results["search"]["candidates"]) == 4
  assert set(results["per_dataset"]) == {"A", "B"}


@pytest.mark.slow
def test_a_killed_nested_run_resumes_to_identical_results(nested, tmp_path):
  arrays, results, _ = nested
  # 6 chunk-epochs: candidate 0's inner chunk is done (4 epochs), candidate 1's is cut at 2.
  assert engine.train_and_evaluate(nested_config(stop_after_epochs=6), arrays, tmp_path) is None
  assert (tmp_path / "checkpoints/search/c0/inner").is_dir()
  assert not (tmp_path / "results.json").exists()
  resumed = engine.train_and_evaluate(nested_config(), arrays, tmp_path)
  assert resumed["search"] == results["search"]
  a, b = probs_by_fold(results), probs_by_fold(resumed)
  for fold in a:
    np.testing.assert_array_equal(a[fold], b[fold])
