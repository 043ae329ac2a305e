"""The AU task: targets, positive weights, BCE loss, per-AU F1 / macro-F1 by hand, aggregation
pooled over folds, and an end-to-end run that learns the synthetic CASME II's AUs."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from microexp.train import engine
from microexp.train.tasks import action_units as tasks

from . import tiny_config

Y = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 0], [1, 0, 1]], np.float32)
P = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]], np.float32)


def test_au_f1_and_macro_f1_by_hand():
  # AU0: TP 2, FP 1, FN 1 -> 4/6; AU1: TP 0, FN 1 -> 0; AU2: TP 1, FP 1, FN 1 -> 2/4.
  np.testing.assert_allclose(tasks.au_f1(Y, P), [4 / 6, 0.0, 0.5])
  m = tasks.au_metrics(Y, P * 0.9 + 0.05)  # probabilities, thresholded at 0.5
  assert m["macro_f1"] == pytest.approx((4 / 6 + 0 + 0.5) / 3)
  assert m["accuracy"] == pytest.approx(7 / 12)
  # meb's figure: per AU the mean of the positive and the negative class's F1. Negative class:
  # AU0: TP 0 -> 0; AU1: TP 3, FP 1 (the missed positive), FN 0 -> 6/7; AU2: TP 1, FP 1, FN 1 -> 0.5.
  assert m["meb_f1"] == pytest.approx(((4 / 6 + 0) / 2 + (0 + 6 / 7) / 2 + (0.5 + 0.5) / 2) / 3)
  # An AU with neither positives nor predictions scores 0 (0/0), as meb's sklearn default.
  assert tasks.au_f1(np.zeros((2, 1)), np.zeros((2, 1))).tolist() == [0.0]


def test_sigmoid_bce_and_positive_weights_by_hand():
  logits = np.array([[2.0, -1.0], [0.0, 3.0]], np.float32)
  targets = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
  w = np.array([3.0, 0.5], np.float32)
  p = 1 / (1 + np.exp(-logits))
  expected = -np.mean(w * targets * np.log(p) + (1 - targets) * np.log(1 - p))
  assert float(tasks.sigmoid_bce(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(w))) == \
      pytest.approx(expected, rel=1e-5)
  np.testing.assert_allclose(tasks.pos_weights(Y, True), [1 / 3, 3.0, 1.0])
  np.testing.assert_allclose(tasks.pos_weights(np.zeros((3, 1)), True), [1.0])  # no positive
  np.testing.assert_allclose(tasks.pos_weights(Y, False), [1, 1, 1])
  assert float(tasks.correct_au(jnp.asarray(logits), jnp.asarray(targets))) == pytest.approx(1.5)


def test_prepare_au_keeps_coded_clips_and_frequent_aus():
  arrays = {"inputs": np.zeros((5, 2, 2, 3)), "subject": np.array(list("abcde")),
            "emotion": np.array(["others"] * 5),
            "au": np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 0, 0], [1, 1, 1]], np.float32),
            "au_names": np.tile(np.array(["1", "4", "12"]), (5, 1)),
            "au_coded": np.array([True, True, True, True, False])}
  data, names = tasks.prepare_au(arrays, min_count=2)
  assert names == ("1", "4")  # AU12 has 1 positive among the coded clips
  assert data["subject"].tolist() == list("abcd") and data["au_targets"].shape == (4, 2)
  assert "au" not in data and data["labels"].tolist() == [0] * 4
  with pytest.raises(ValueError, match="au_min_count=9"):
    tasks.prepare_au(arrays, min_count=9)


def test_aggregate_pools_folds_before_the_f1():
  data = {"au_targets": Y, "subject": np.array(["a", "a", "b", "b"]),
          "dataset": np.array(["d1", "d1", "d2", "d2"]), "clip": np.array(list("wxyz"))}
  jobs = [{"seed": 0, "fold": f, "test_subjects": [f], "val_subjects": [], "best_epoch": 1,
           "test_idx": idx, "test_probs": P[idx].tolist(), "history": {}}
          for f, idx in (("a", [0, 1]), ("b", [2, 3]))]
  r = tasks.aggregate_au(jobs, data, ("1", "4", "12"), [0], ["a", "b"])
  assert r["metrics"]["macro_f1"]["mean"] == pytest.approx((4 / 6 + 0.5) / 3)
  assert r["per_au_f1"]["1"]["mean"] == pytest.approx(4 / 6)
  assert r["support"] == {"1": 3, "4": 1, "12": 2}
  # Per dataset: d1 = clips 0, 1: AU1 F1 1, AU4 0 (FN), AU12 0 (FN).
  assert r["per_dataset"]["d1"]["macro_f1"]["mean"] == pytest.approx(1 / 3)
  assert r["predictions"][0]["au"] == ["1", "12"] and r["predictions"][0]["pred"] == ["1"]
  assert "AU12" in tasks.summary_markdown({**r, "config": {
      "model": {"name": "m"}, "dataset": {"name": "d", "representation": "apex_flow"},
      "train": {"protocol": "loso", "selection": "last"}}})


@pytest.mark.slow
def test_au_task_on_synthetic_casme2_learns_above_the_trivial_baseline(tmp_path):
  """The synthetic tree moves each emotion's AU regions (microexp/synthetic/casme2.py
  EMOTION_MOTIONS / EMOTION_AUS): the AUs are learnable from the apex flow."""
  # One split (4 subjects train, as each LOSO fold; 1 tested): one model where LOSO trains five.
  config = tiny_config(epochs=30, batch_size=16, learning_rate=0.1, tensorboard=False,
                       task="au", au_min_count=10, au_pos_weight=True, class_balanced=False,
                       label_smoothing=0.0, protocol="split", test_subjects=("sub05",))
  config.dataset.synthetic = True
  config.dataset.data_dir = str(tmp_path / "data")
  config.dataset.image_size = 24
  config.dataset.synthetic_kwargs.update(
      {"num_subjects": 5, "clips_per_subject": 20, "image_size": (64, 52), "num_frames": (10, 14)})
  results = engine.run(config, tmp_path / "wd")
  assert results["folds"] == ["split"]
  summary = (tmp_path / "wd" / "summary.md").read_text()
  assert all(f"| AU{a} |" in summary for a in results["au_names"])
  n = sum(1 for p in results["predictions"])
  # The best constant predictor: every AU always on (F1 2p / (1 + p)); always off scores 0.
  prevalence = np.array([results["support"][a] / n for a in results["au_names"]])
  trivial = float(np.mean(2 * prevalence / (1 + prevalence)))
  f1 = results["metrics"]["macro_f1"]["mean"]
  print("AUs", results["au_names"], "macro-F1", f1, "trivial", trivial)
  assert len(results["au_names"]) >= 3
  # Measured on the split: 0.48 vs 0.29 (LOSO: 0.48 vs 0.32; without au_pos_weight the tiny model
  # predicts almost no AU: 0.06).
  assert f1 > trivial + 0.12, (f1, trivial, results["per_au_f1"])


@pytest.mark.slow
def test_au_task_selects_on_validation_macro_f1_under_lodo(tmp_path):
  from . import fake_arrays  # pylint: disable=g-import-not-at-top

  arrays = fake_arrays(num_subjects=6, clips_per_subject=9)
  labels = np.searchsorted(["happiness", "repression", "surprise"], arrays["emotion"])
  arrays["au"] = np.eye(3, dtype=np.float32)[labels]  # one AU per class: learnable
  arrays["au_names"] = np.tile(np.array(["4", "12", "1"]), (len(labels), 1))
  arrays["dataset"] = np.repeat(["a", "b", "c"], 18)
  config = tiny_config(epochs=3, task="au", au_min_count=1, protocol="lodo", selection="val",
                       num_val_subjects=1, select_metric="uf1")
  r = engine.train_and_evaluate(config, arrays, tmp_path / "wd")
  assert r["task"] == "au" and r["au_names"] == ["4", "12", "1"] and r["folds"] == ["a", "b", "c"]
  for fold in r["per_fold"]:
    assert 1 <= fold["best_epoch"] <= 3
    assert fold["val_subjects"][0].split("/")[0] != fold["subject"]
  assert sorted(r["per_dataset"]) == ["a", "b", "c"]
  assert len(r["predictions"]) == 54 and set(r["metrics"]) == {"macro_f1", "meb_f1", "accuracy"}
  with pytest.raises(ValueError, match="final_seeds"):
    engine.train_and_evaluate(tiny_config(task="au", final_seeds=[0]), arrays, tmp_path / "f")
