"""The training-side report (microexp/train/train_eval.py): each fold's model on its own training
clips in eval mode at the reported epoch, pooled over folds, in results.json, summary.md, report."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from microexp.report import workdirs as report
from microexp.train import engine
from microexp.train import folds as folds_lib
from microexp.train import jobs as jobs_lib
from microexp.train import loop
from microexp.train import metrics as metrics_lib
from microexp.train import parallel
from microexp.train import train_eval

from . import fake_arrays, tiny_config, tiny_context


def _n_train(results, arrays):
  """Per (seed, fold): the number of its training clips (neither test nor validation subjects)."""
  subjects = arrays["subject"]
  return {(f["seed"], f["subject"]):
          int((~np.isin(subjects, f["test_subjects"] + f["val_subjects"])).sum())
          for f in results["per_fold"]}


@pytest.mark.slow
@pytest.mark.parametrize("selection", ["last", "val"])
def test_train_side_in_results_summary_and_report(tmp_path, selection):
  arrays = fake_arrays()
  config = tiny_config(selection=selection, seeds=[0, 1])
  results = engine.train_and_evaluate(config, arrays, tmp_path)
  side = json.loads((tmp_path / "results.json").read_text())["train_side"]
  n_train = _n_train(results, arrays)
  assert len(n_train) == 10  # 2 seeds x 5 folds
  # Pooled confusion: every training clip of every fold, once per seed.
  assert np.array(side["confusion"]).sum() == sum(n_train.values())
  best = {(f["seed"], f["subject"]): f["best_epoch"] for f in results["per_fold"]}
  for f in side["per_fold"]:
    assert f["n_train"] == n_train[(f["seed"], f["subject"])]
    assert f["epoch"] == best[(f["seed"], f["subject"])] >= 1  # the reported epoch
    if selection == "last":
      assert f["epoch"] == config.train.epochs
  acc = side["metrics"]["accuracy"]
  assert len(acc["per_seed"]) == 2 and acc["std"] >= 0
  assert acc["mean"] > 0.6  # the tiny model learns its training clips (chance 1/3)
  summary_md = (tmp_path / "summary.md").read_text()
  assert "Training side" in summary_md and "train accuracy" in summary_md
  assert f"{acc['mean']:.3f} ± {acc['std']:.3f}" in summary_md
  assert (tmp_path / "confusion_train.png").stat().st_size > 1000
  md = report.write_report(tmp_path, dataset_figures=False).read_text()
  assert f"Training accuracy {acc['mean']:.1%}" in md
  assert (tmp_path / "report/confusion_train.png").stat().st_size > 1000


@pytest.mark.slow
def test_train_side_equals_a_manual_eval_of_the_final_variables(tmp_path):
  """One fold's training-side confusion is its last variables' eval-mode predictions (no
  augmentation: crop and flips are on in training; BatchNorm running statistics)."""
  config = tiny_config(epochs=3)
  ctx, model, data = tiny_context(config, tmp_path, epochs=3)
  k = ctx.num_classes
  fold = folds_lib.make_folds(data["subject"], config.train, 0)[2]
  tr = fold.masks(data["subject"])[0]
  steps_per_epoch = -(-int(tr.sum()) // config.train.batch_size)
  jobs = [jobs_lib.Job(0, 2, fold)]
  chunk = loop.prepare_chunk(ctx, jobs, steps_per_epoch)
  [r] = loop.train_chunk(ctx, "one", jobs, epochs=3, steps_per_epoch=steps_per_epoch,
                         keep_variables=True, train_side=True)
  # The training side ran in the test side's block shape: one compiled eval program, not two.
  assert chunk.steps.evaluate._cache_size() == 1  # pylint: disable=protected-access
  logits = jax.jit(lambda v, x: model.apply(v, x, train=False))(r["variables"], data["inputs"][tr])
  expected = metrics_lib.confusion_matrix(data["labels"][tr], np.asarray(logits).argmax(-1), k)
  np.testing.assert_array_equal(np.array(r["train_side"]["confusion"]), expected)
  assert r["train_side"]["epoch"] == 3 and r["train_side"]["n_train"] == int(tr.sum())
  # ... and differs from the training steps' running accuracy (augmented, weights moving).
  assert np.isfinite(r["history"]["train/epoch_categorical_accuracy"][-1])


def test_blocks_in_the_eval_shape_cover_every_training_clip_once_in_order():
  train_idx = [np.arange(0, 23), np.arange(40, 45), np.zeros(0, np.int64)]
  mesh = parallel.make_mesh(len(train_idx))
  length = parallel.padded_folds(len(train_idx), mesh)
  for eval_shape in ((1, 4), (2, 3), (3, 8), (1, 64)):
    pieces = train_eval.blocks(train_idx, length, 256, mesh, eval_shape=eval_shape)
    assert {p.shape for p in pieces} == {(length,) + eval_shape}
    flat = np.concatenate([np.asarray(p).reshape(length, -1) for p in pieces], axis=1)
    for f, idx in enumerate(train_idx):
      np.testing.assert_array_equal(flat[f, :len(idx)], idx)
  [whole] = train_eval.blocks(train_idx, length, 8, mesh)  # no eval shape: blocks of the batch
  assert whole.shape == (length, 3, 8)
  assert train_eval.blocks([np.zeros(0, np.int64)] * 2, 2, 8, parallel.make_mesh(2)) is None


def test_index_blocks_zero_fill_rows_to_whole_groups_and_repeat_the_last_fold():
  rows = [np.arange(5), np.arange(10, 12)]
  idx = jobs_lib.index_blocks(rows, 3, 2, group=2)  # 5 clips -> 2 groups of 2 blocks of 2
  assert idx.shape == (3, 4, 2) and idx.dtype == np.int32
  np.testing.assert_array_equal(idx[0].ravel(), [0, 1, 2, 3, 4, 0, 0, 0])
  np.testing.assert_array_equal(idx[1].ravel(), [10, 11, 0, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(idx[2], idx[1])  # the padded fold repeats the last one
  assert jobs_lib.index_blocks(rows, 2, 3).shape == (2, 2, 3)


def test_aggregate_pools_folds_and_seeds():
  cm = lambda a, b: {"confusion": [[a, b], [0, 3]], "epoch": 2, "n_train": a + b + 3}
  jobs = [{"seed": s, "fold": f, "train_side": cm(*ab)}
          for s, f, ab in ((0, "a", (4, 1)), (0, "b", (2, 2)), (1, "a", (5, 0)), (1, "b", (4, 0)))]
  out = train_eval.aggregate(jobs, [0, 1], 2)
  assert out["confusion"] == [[15, 3], [0, 12]]
  # seed 0: 12/15 correct, seed 1: 15/15
  assert out["metrics"]["accuracy"]["per_seed"] == pytest.approx([0.8, 1.0])
  assert out["metrics"]["accuracy"]["mean"] == pytest.approx(0.9)
  assert [f["accuracy"] for f in out["per_fold"]] == pytest.approx([7 / 8, 5 / 7, 1.0, 1.0])
  assert train_eval.aggregate([{"seed": 0, "fold": "a"}], [0], 2) is None


@pytest.mark.slow  # three tiny engine runs
def test_train_side_resumes_to_identical_figures(tmp_path):
  """Killed after 2 epochs (selection 'val': the candidate epochs' figures are in the
  checkpoint), resumed: the same training side as an uninterrupted run."""
  whole = engine.train_and_evaluate(tiny_config(selection="val"), fake_arrays(), tmp_path / "a")
  assert engine.train_and_evaluate(tiny_config(selection="val", stop_after_epochs=2),
                                   fake_arrays(), tmp_path / "b") is None
  resumed = engine.train_and_evaluate(tiny_config(selection="val"), fake_arrays(), tmp_path / "b")
  assert resumed["train_side"] == whole["train_side"]
