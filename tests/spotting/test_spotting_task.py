"""The spotting and STR tasks (microexp/train/tasks/spotting.py, spot_then_recognize.py): the
registry gives them, their loss and their aggregation on hand-solved cases, and the engine
dispatches them to their trainers."""

from __future__ import annotations

import math

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from microexp.train import engine
from microexp.train import spot_decode
from microexp.train import spot_protocol
from microexp.train import tasks
from microexp.train.tasks import spot_then_recognize
from microexp.train.tasks import spotting
from microexp.vision.spotting import Interval

VIDEOS = [  # subject a: one micro, one macro coded; subject b: one micro
    {"subject": "a", "video": "v1", "fps": 30.0, "num_frames": 200,
     "intervals": [(10, 12, 20), (50, 60, 90)], "kinds": ["micro", "macro"],
     "emotions": ["positive", "negative"]},
    {"subject": "b", "video": "v2", "fps": 30.0, "num_frames": 200,
     "intervals": [(5, 8, 15)], "kinds": ["micro"], "emotions": ["surprise"]},
]


def _decoded(micro=(), macro=()):
  return spot_decode.Decoded({"micro": [Interval(*i, 1.0) for i in micro],
                              "macro": [Interval(*i, 1.0) for i in macro]}, [],
                             np.zeros((2, 1)), 0.5)


# Seed 0: a's micro hit, a macro miss; b's micro hit and a miss. Seed 1: a's macro hit, b's micro
# hit (IoU 10/11); a's micro not spotted.
JOBS = [
    {"seed": 0, "fold": "a", "history": {}, "decoded": {"a/v1": _decoded(
        micro=[(10, 12, 20)], macro=[(30, 35, 40)])}},
    {"seed": 0, "fold": "b", "history": {}, "decoded": {"b/v2": _decoded(
        micro=[(5, 8, 15), (100, 102, 110)])}},
    {"seed": 1, "fold": "a", "history": {}, "decoded": {"a/v1": _decoded(macro=[(50, 60, 90)])}},
    {"seed": 1, "fold": "b", "history": {}, "decoded": {"b/v2": _decoded(micro=[(6, 8, 15)])}},
]


def test_registry_gives_the_long_video_tasks_and_their_trainers():
  spot = tasks.from_config(ml_collections.ConfigDict({"task": "spot"}))
  str_ = tasks.from_config(ml_collections.ConfigDict({"task": "str"}))
  assert isinstance(spot, spotting.Spotting) and spot.name == "spot"
  assert isinstance(str_, spot_then_recognize.SpotThenRecognize) and str_.name == "str"
  assert (spot.trainer, str_.trainer) == ("microexp.train.spot_protocol",
                                          "microexp.train.str_protocol")
  assert str_.recognizer_task == "emotion" and tasks.get("emotion")().trainer is None
  hash(spot), hash(str_)  # part of steps.StepSpec, the compiled steps' key


def test_loss_is_the_unweighted_sigmoid_bce():
  task = spotting.Spotting()
  logits = jnp.array([[2.0, -1.0]])
  targets = jnp.array([[1.0, 0.5]])
  # -log sigmoid(2) = log(1 + e^-2); 0.5 log(1 + e^1) + 0.5 log(1 + e^-1); mean of the two.
  by_hand = (math.log1p(math.exp(-2)) + 0.5 * math.log1p(math.e) + 0.5 * math.log1p(1 / math.e)) / 2
  assert float(task.loss(logits, targets, jnp.ones((1, 2)))) == pytest.approx(by_hand, rel=1e-6)
  assert float(task.loss(logits, targets, jnp.full((1, 2), 7.0))) == pytest.approx(by_hand,
                                                                                  rel=1e-6)
  assert float(task.loss(jnp.zeros((3, 2)), jnp.ones((3, 2)), 1.0)) == pytest.approx(math.log(2))
  np.testing.assert_array_equal(task.loss_weight_fn({})(np.ones(4, bool)), np.ones(2))


def test_aggregate_scores_per_seed_then_mean_and_std():
  results = spotting.Spotting().aggregate(JOBS, {"videos": VIDEOS}, spotting.KINDS, [0, 1],
                                          ["a", "b"])
  s0, s1 = results["per_seed"]
  # Seed 0: micro 2 TP of 3 spotted, 2 coded; macro 0 / 1 / 1; overall 2 / 4 / 3.
  assert [s0[k]["true_positives"] for k in spotting.SCOPES] == [2, 0, 2]
  assert [s0[k]["spotted"] for k in spotting.SCOPES] == [3, 1, 4]
  assert s0["micro"]["f1"] == pytest.approx(0.8) and s0["macro"]["f1"] == 0.0
  assert s0["overall"]["f1"] == pytest.approx(4 / 7, abs=1e-4)  # P 1/2, R 2/3
  # Seed 1: micro 1 / 1 / 2 (F1 2/3), macro 1 / 1 / 1, overall 2 / 2 / 3 (F1 0.8).
  assert s1["micro"]["f1"] == pytest.approx(2 / 3, abs=1e-4) and s1["macro"]["f1"] == 1.0
  assert s1["overall"]["f1"] == pytest.approx(0.8)
  micro = results["metrics"]["micro"]["f1"]
  assert micro["mean"] == pytest.approx((0.8 + 2 / 3) / 2, abs=1e-4)
  assert micro["std"] == pytest.approx((0.8 - 2 / 3) / 2, abs=1e-4)
  assert results["metrics"]["macro"]["recall"]["per_seed"] == [0.0, 1.0]
  assert [(r["seed"], r["video"]) for r in results["videos"]] == [
      (0, "a/v1"), (0, "b/v2"), (1, "a/v1"), (1, "b/v2")]
  assert results["videos"][1]["spotted"]["micro"] == [[5, 8, 15, 1.0], [100, 102, 110, 1.0]]
  assert set(results["history"]) == {"seed0/a", "seed0/b", "seed1/a", "seed1/b"}


def test_str_aggregate_recognises_the_true_positives():
  recognised = {("a", 0): [{"video": "a/v1", "kind": "micro", "spotted": [10, 12, 20],
                            "pred": "positive", "probs": [0, 1, 0]}],
                ("b", 0): [{"video": "b/v2", "kind": "micro", "spotted": [5, 8, 15],
                            "pred": "negative", "probs": [1, 0, 0]},
                           {"video": "b/v2", "kind": "micro", "spotted": [100, 102, 110],
                            "pred": "positive", "probs": [0, 1, 0]}]}
  jobs = [{**j, "recognised": recognised[(j["fold"], j["seed"])]} for j in JOBS if j["seed"] == 0]
  results = spot_then_recognize.SpotThenRecognize().aggregate(
      jobs, {"videos": VIDEOS, "recognised_kinds": ("micro",)},
      ("negative", "positive", "surprise"), [0], ["a", "b"])
  (seed,) = results["per_seed"]
  # Two true-positive pairs: positive -> positive, surprise -> negative. Over the coded classes
  # (positive, surprise): F1 1 and 0, recalls 1 and 0.
  assert seed["recognition"] == {"uf1": 0.5, "uar": 0.5, "pairs": 2}
  assert seed["strs"] == pytest.approx(seed["overall"]["f1"] * 0.5, abs=1e-4)
  assert results["metrics"]["strs"]["mean"] == seed["strs"]
  assert results["recognised_kinds"] == ["micro"]
  assert [h["pred"] for h in results["videos"][1]["recognised"]] == ["negative", "positive"]


def test_engine_runs_the_task_trainer_and_refuses_clip_arrays(monkeypatch, tmp_path):
  config = ml_collections.ConfigDict({"train": {"task": "spot"}})
  monkeypatch.setattr(spot_protocol, "run", lambda c, w: {"ran": "spot_protocol", "workdir": w})
  assert engine.run(config, tmp_path) == {"ran": "spot_protocol", "workdir": tmp_path}
  with pytest.raises(ValueError, match="spot_protocol"):
    engine._check_task(tasks.from_config(config.train), config)
