"""Ensembles (config.ensemble): every member trained on the same folds, the ensemble's
probabilities their per-clip mean; flip TTA at evaluation (steps.eval_one)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from microexp.train import tta
from microexp import models
from microexp.train import engine
from microexp.train import ensemble
from microexp.train import steps as steps_lib

from . import TINY_MODEL, fake_arrays, tiny_config


def ensemble_config():
  config = tiny_config()
  member = lambda lr: ml_collections.ConfigDict(
      {"name": TINY_MODEL, "kwargs": {}, "train": {"learning_rate": lr}})
  config.ensemble = ml_collections.ConfigDict({
      "models": (member(0.1), member(0.05)), "combine": "mean_probability",
      "tta": {"flip_h": True}})
  return config


def test_members_take_their_fields_and_the_tta():
  members = ensemble.members(ensemble_config())
  assert [n for n, _ in members] == [TINY_MODEL, f"{TINY_MODEL}_1"]
  assert [c.train.learning_rate for _, c in members] == [0.1, 0.05]
  assert all(c.train.tta.flip_h and "ensemble" not in c for _, c in members)


@pytest.mark.slow
def test_ensemble_reports_members_and_averages_them(tmp_path):
  results = engine.train_and_evaluate(ensemble_config(), fake_arrays(num_subjects=4), tmp_path)
  assert set(results["members"]) == {TINY_MODEL, f"{TINY_MODEL}_1"}
  member_probs = []
  for name in results["members"]:
    assert 0.0 <= results["members"][name]["metrics"]["uf1"]["mean"] <= 1.0
    by_fold = {}
    for path in (tmp_path / "checkpoints/members" / name).glob("jobs_*/result.json"):
      for r in json.loads(path.read_text()):
        by_fold[r["fold"]] = np.asarray(r["test_probs"])
    member_probs.append(by_fold)
  got = {}
  for p in results["predictions"]:
    got.setdefault(p["subject"], []).append(p["probs"])
  for fold, probs in got.items():
    np.testing.assert_allclose(probs, (member_probs[0][fold] + member_probs[1][fold]) / 2,
                               atol=2e-6)
  assert results["metrics"]["uf1"]["mean"] > 0.6
  assert "Ensemble members" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_flip_tta_at_evaluation():
  """eval_one with tta_flip_h: log of the mean of softmax(x) and softmax(mirror(x)), u negated."""
  model = models.get(TINY_MODEL, num_classes=3)
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 3))
  variables = model.init(jax.random.PRNGKey(1), x[:1])
  data = {"inputs": x, "labels": jnp.zeros(4, jnp.int32)}
  idx = jnp.arange(4, dtype=jnp.int32).reshape(1, 4)
  plain = steps_lib.eval_one(variables, idx, data, model=model)
  flipped = steps_lib.eval_one(variables, idx, data, model=model, tta_flip_h=True, is_flow=True)
  apply = lambda v: model.apply(variables, v, train=False)
  mirror = tta.flip_flow(x)
  np.testing.assert_allclose(mirror[:, :, ::-1, 0], -x[..., 0], atol=0)  # u negated, mirrored
  expected = (jax.nn.softmax(apply(x)) + jax.nn.softmax(apply(mirror))) / 2
  np.testing.assert_allclose(jax.nn.softmax(flipped), expected, atol=1e-6)
  assert not np.allclose(jax.nn.softmax(plain), expected, atol=1e-4)
