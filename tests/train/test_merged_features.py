"""Where the merged features meet: AU positive weights through the per-dataset [D, K] weights,
the AU task's refusals (nested search, ensembles, per-dataset balance), flip TTA for the AU
task's sigmoids, and nested selection's inner folds under the cross-dataset protocols."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from microexp.train import engine
from microexp.train import folds as folds_lib
from microexp.train import jobs as jobs_lib
from microexp.train import protocols
from microexp.train import search as search_lib
from microexp.train import steps as steps_lib
from microexp.train import tta as tta_lib
from microexp.train.tasks import action_units

from . import fake_arrays, tiny_config


def _jobs(subjects):
  folds = folds_lib.make_folds(subjects, tiny_config(num_val_subjects=0, selection="last").train, 0)
  return [jobs_lib.Job(0, i, f) for i, f in enumerate(folds)]


def test_layout_weights_are_per_dataset_rows_and_a_weight_fn_row_serves_every_dataset():
  subjects = np.repeat(["a", "b", "c"], 4)
  labels = np.array([0, 0, 0, 1] * 3)
  dataset_index = np.repeat([0, 0, 1], 4)
  jobs = _jobs(subjects)
  common = dict(num_classes=2, length=len(jobs), eval_batch_size=4, dataset_index=dataset_index)
  lay = jobs_lib.layout(jobs, subjects, labels, balanced="per_dataset", **common)
  assert lay.plan["class_weights"].shape == (3, 2, 2)
  # The fold testing 'c' trains on dataset 0 only: dataset 1's row is zeros.
  np.testing.assert_allclose(lay.plan["class_weights"][2], [[8 / 12, 8 / 4], [0, 0]])
  # The AU task's weight_fn gives one [K] row (positive weights): every dataset takes it.
  lay = jobs_lib.layout(jobs, subjects, labels, balanced=False,
                        weight_fn=lambda tr: np.array([float(tr.sum()), 1.0, 2.0]), **common)
  assert lay.plan["class_weights"].shape == (3, 2, 3)
  np.testing.assert_allclose(lay.plan["class_weights"][0], [[8, 1, 2], [8, 1, 2]])


@pytest.mark.parametrize("extra, match", [
    ({"class_balanced": "per_dataset"}, "per_dataset"),
    ({"search": ml_collections.ConfigDict({"learning_rate": (0.1, 0.2)})}, "nested selection"),
])
def test_au_task_refuses_what_it_cannot_serve(tmp_path, extra, match):
  arrays = fake_arrays()
  n = len(arrays["subject"])
  arrays.update(au=np.eye(2, dtype=np.float32)[np.arange(n) % 2],
                au_names=np.tile(np.array(["1", "4"]), (n, 1)))
  config = tiny_config(task="au", au_min_count=1, label_smoothing=0.0, class_balanced=False)
  for k, v in extra.items():
    config.train[k] = v
  with pytest.raises(ValueError, match=match):
    engine.train_and_evaluate(config, arrays, tmp_path)
  config = tiny_config(task="au", au_min_count=1, class_balanced=False)
  config.ensemble = ml_collections.ConfigDict({"models": [{"name": config.model.name}]})
  with pytest.raises(ValueError, match="ensembles"):
    engine.train_and_evaluate(config, arrays, tmp_path)


def test_flip_tta_of_the_au_task_averages_sigmoids_and_eval_returns_their_logit():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 4, 3)), jnp.float32)
  logits_fn = lambda v: v[:, :, :2, 0].sum(axis=(1, 2))[:, None] * jnp.array([1.0, -2.0])
  mirrored = tta_lib.flip_flow(x)
  sig = lambda z: 1 / (1 + np.exp(-np.asarray(z)))
  expected = (sig(logits_fn(x)) + sig(logits_fn(mirrored))) / 2
  np.testing.assert_allclose(tta_lib.flip_tta(logits_fn, x, multi_label=True), expected,
                             rtol=1e-5)

  class Model:  # apply(variables, x, train=False) -> logits
    def apply(self, variables, v, train):
      del variables, train
      return logits_fn(v)

  out = steps_lib.eval_one({}, jnp.array([[0, 1]]), {"inputs": x}, model=Model(),
                           tta_flip_h=True, task=action_units.ActionUnits())
  np.testing.assert_allclose(sig(out), expected, rtol=1e-4)


def test_inner_folds_of_a_lodo_fold_hold_only_its_training_datasets_subjects():
  subjects = np.array(["s1", "s2", "s3", "s1", "s2", "s1", "s2"])
  datasets = np.array(["casme2"] * 3 + ["samm"] * 2 + ["smic"] * 2)
  for fold in protocols.lodo_folds(subjects, datasets):
    inner = search_lib.inner_folds(fold, 2, seed=0, index=0)
    held_out = sorted(s for f in inner for s in f.test_subjects)
    assert held_out == sorted(fold.train_subjects)  # each training subject held out once
    assert all(s.split("/")[0] != fold.name for f in inner
               for s in f.train_subjects + f.test_subjects)


@pytest.mark.slow
def test_nested_search_under_lodo_reports_outer_training_side(tmp_path):
  """A search under leave-one-dataset-out: qualified inner folds, the retrained outer models'
  training side in results.json, per-dataset balance among the candidates."""
  a, b = fake_arrays(num_subjects=3, seed=0), fake_arrays(num_subjects=3, seed=1)
  arrays = {k: np.concatenate([a[k], b[k]]) for k in a}
  arrays["dataset"] = np.repeat(["dsa", "dsb"], len(a["subject"]))
  config = tiny_config(protocol="lodo", selection="last", num_val_subjects=0, epochs=2,
                       search_inner_folds=2)
  config.train.search = ml_collections.ConfigDict({"class_balanced": (True, "per_dataset")})
  results = engine.train_and_evaluate(config, arrays, tmp_path)
  assert [f["fold"] for f in results["search"]["per_fold"]] == ["dsa", "dsb"]
  assert results["train_side"]["per_fold"][0]["n_train"] == len(b["subject"])  # dsa's fold: dsb
  assert sorted(results["per_dataset"]) == ["dsa", "dsb"]
