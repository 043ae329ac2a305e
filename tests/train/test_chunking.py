"""Chunks: memory-aware sizes against a (fake, small) budget; 'auto' decided by rule on CPU
devices and by measurement (its probe's alternated rounds) where stacked folds are vmapped, kept
in the workdir; compiled steps keyed on exactly the fields they read; pure selection; freezing;
evaluation only when due."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import optax
import pytest

from microexp.models import builder
from microexp.train import chunking
from microexp.train import engine
from microexp.train import folds as folds_lib
from microexp.train import inputs
from microexp.train import jobs as jobs_lib
from microexp.train import loop
from microexp.train import parallel
from microexp.train import selection
from microexp.train import state as state_lib
from microexp.train import steps as steps_lib

from . import fake_arrays, tiny_config, tiny_context


def _spec(config, steps_per_epoch=5):
  return steps_lib.StepSpec.from_config(config, steps_per_epoch=steps_per_epoch, num_classes=3)


def test_jobs_that_fit_arithmetic():
  safety = chunking.SAFETY
  assert chunking.jobs_that_fit(fixed=100, per_job=10, budget=int((100 + 35) / safety)) == 3
  assert chunking.jobs_that_fit(fixed=100, per_job=10, budget=int((100 + 35) / safety),
                                devices=4) == 12
  assert chunking.jobs_that_fit(fixed=100, per_job=10, budget=10) == 1  # never 0
  # CPU devices share one memory: each holds its own fixed part, the jobs' states add up once.
  assert chunking.jobs_that_fit(fixed=100, per_job=10, budget=int((200 + 35) / safety),
                                devices=2, shared_memory=True) == 3
  assert chunking.jobs_that_fit(fixed=100, per_job=10, budget=int((100 + 35) / safety),
                                devices=2, shared_memory=True) == 1


@pytest.fixture(scope="module")
def budget_for_three():
  """A memory budget (GiB) in which exactly 3 tiny-model jobs fit, from XLA's own estimate."""
  config = tiny_config()
  data, _ = inputs.prepare_data(fake_arrays(), "3")
  model = builder.from_config(config, 3)
  with jax.threefry_partitionable(False):
    one = chunking.epoch_bytes(model, _spec(config), 1, data, jax.devices()[0])
    two = chunking.epoch_bytes(model, _spec(config), 2, data, jax.devices()[0])
  per_job, fixed = two - one, 2 * one - two
  assert per_job > 0 and fixed > 0  # the state and batch grow with jobs, the dataset does not
  return (fixed + 3.5 * per_job) / chunking.SAFETY / 2**30


@pytest.fixture(scope="module")
def chunked_run(budget_for_three, tmp_path_factory):
  """5 jobs, fold-parallel, fold_chunk=0 under the 3-job budget; eval_every=3 of 4 epochs."""
  workdir = tmp_path_factory.mktemp("chunks")
  config = tiny_config(memory_budget_gb=budget_for_three, eval_every=3)
  return engine.train_and_evaluate(config, fake_arrays(), workdir), workdir


@pytest.mark.slow
def test_fake_small_budget_gives_chunks_of_three(chunked_run):
  results, workdir = chunked_run
  chunks = sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.is_dir())
  assert chunks == ["jobs_0000-0002", "jobs_0003-0004"]
  assert json.loads((workdir / "checkpoints/chunking.json").read_text())["chunk"] == 3
  assert results["metrics"]["accuracy"]["mean"] > 0.6  # 3 classes: chance 1/3


@pytest.mark.slow
def test_test_subjects_evaluated_only_when_due(chunked_run):
  results, _ = chunked_run
  history = results["history"]["seed0/s00"]
  evaluated = [not np.isnan(v) for v in history["test/epoch_categorical_accuracy"]]
  assert evaluated == [False, False, True, True]  # eval_every=3 and the last epoch
  assert not any(np.isnan(history["train/epoch_loss"]))


@pytest.mark.slow
def test_auto_measures_both_modes_and_keeps_the_decision(tmp_path, caplog):
  # Folds vmapped in pairs (as on a GPU, where each device vmaps its folds): a stacked fold then
  # runs another program than a sequential one, and 'auto' measures the two.
  config = tiny_config(fold_parallel="auto", epochs=2, fold_group=2)
  with caplog.at_level("INFO"):
    engine.train_and_evaluate(config, fake_arrays(), tmp_path)
  decision = json.loads((tmp_path / "checkpoints/chunking.json").read_text())
  times = decision["seconds_per_job_epoch"]
  assert decision["fold_parallel"] == chunking.prefer_parallel(times["sequential"],
                                                               times["fold_parallel"])
  assert any("fold_parallel='auto'" in r.getMessage() for r in caplog.records)
  caplog.clear()
  (tmp_path / "results.json").unlink()
  with caplog.at_level("INFO"):  # a rerun (resume) reuses the decision: same chunks
    engine.train_and_evaluate(config, fake_arrays(), tmp_path)
  assert any("Chunking from" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_auto_on_cpu_devices_stacks_without_measuring(tmp_path, caplog, monkeypatch):
  """A fold at a time on each CPU device is a sequential job's program: no probe is run."""
  monkeypatch.setattr(loop, "seconds_per_job_epoch", lambda *a, **k: pytest.fail("probed"))
  with caplog.at_level("INFO"):
    results = engine.train_and_evaluate(tiny_config(fold_parallel="auto", epochs=2),
                                        fake_arrays(), tmp_path)
  decision = json.loads((tmp_path / "checkpoints/chunking.json").read_text())
  assert decision["fold_parallel"] and decision["chunk"] == 5
  assert "seconds_per_job_epoch" not in decision
  assert any("a fold at a time on each" in r.getMessage() for r in caplog.records)
  assert len(results["per_fold"]) == 5


def test_steps_are_keyed_on_exactly_the_fields_they_read():
  base = tiny_config()
  mesh = parallel.make_mesh(1)
  model = builder.from_config(base, 3)
  same = tiny_config(seeds=[3, 4], selection="val", eval_every=7, fold_parallel=False,
                     checkpoint_every_s=5.0, tensorboard=True, class_balanced=False)
  assert _spec(same) == _spec(base)
  assert steps_lib.make_steps(model, _spec(same), mesh) is steps_lib.make_steps(
      model, _spec(base), mesh)
  for changed in (tiny_config(learning_rate=0.05), tiny_config(batch_size=4),
                  tiny_config(label_smoothing=0.0), tiny_config(freeze=["Dense_0"])):
    assert _spec(changed) != _spec(base)
  aug = tiny_config()
  aug.train.augment.flip_h = False
  assert _spec(aug) != _spec(base)
  assert _spec(base, steps_per_epoch=6) != _spec(base)


def test_selection_is_pure_and_takes_the_best_validation_epoch():
  empty = selection.Selection.empty(2, 1, 2)

  def evaluation(score, loss, prob):
    return selection.Evaluation(
        val_loss=np.array(loss, np.float32), val_accuracy=np.zeros(2, np.float32),
        val_score=np.array(score, np.float32), test_loss=np.zeros(2, np.float32),
        test_accuracy=np.zeros(2, np.float32), test_probs=np.full((2, 1, 2), prob, np.float32))

  first = selection.select(empty, 1, rule="val", last=False,
                           evaluation=evaluation([0.5, 0.5], [1.0, 1.0], 0.1))
  assert empty.best_epoch.tolist() == [0, 0]  # unchanged
  second = selection.select(first, 2, rule="val", last=False,
                            evaluation=evaluation([0.4, 0.5], [0.1, 0.9], 0.2))
  # Fold 0: lower score, not taken; fold 1: same score, lower loss, taken.
  assert second.best_epoch.tolist() == [1, 2]
  np.testing.assert_allclose(second.test_probs[:, 0, 0], [0.1, 0.2])
  last = selection.select(second, 3, rule="last", last=True, evaluation=None)
  assert last.best_epoch.tolist() == [3, 3]


def test_freeze_leaves_named_parameters_and_their_decay_alone():
  params = {"Conv_0": {"kernel": np.ones((3, 3, 1, 2), np.float32)},
            "Dense_0": {"kernel": np.ones((2, 3), np.float32)}}
  spec = dataclasses.replace(state_lib.OptimizerSpec.from_config(tiny_config().train),
                             weight_decay=0.5, freeze=("Conv_0",))
  tx = state_lib.create_optimizer(spec, 10)
  grads = jax.tree.map(np.ones_like, params)
  new = optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])
  np.testing.assert_array_equal(new["Conv_0"]["kernel"], params["Conv_0"]["kernel"])
  assert not np.array_equal(new["Dense_0"]["kernel"], params["Dense_0"]["kernel"])
  with pytest.raises(ValueError, match="freeze names \\['backbone'\\]"):
    state_lib.create_optimizer(dataclasses.replace(spec, freeze=("backbone",)), 10).init(params)


def test_constant_schedule_keeps_the_rate_and_cosine_decays():
  train = tiny_config().train
  train.schedule, train.warmup_epochs, train.learning_rate = "constant", 0.0, 1e-3
  constant = state_lib.learning_rate_fn(state_lib.OptimizerSpec.from_config(train), 10)
  assert [float(constant(s)) for s in (0, 5, 10 * train.epochs - 1)] == pytest.approx([1e-3] * 3)
  train.schedule = "warmup_cosine"
  cosine = state_lib.learning_rate_fn(state_lib.OptimizerSpec.from_config(train), 10)
  assert float(cosine(10 * train.epochs - 1)) < 1e-4
  train.schedule = "step"
  with pytest.raises(ValueError, match="'warmup_cosine' or 'constant'"):
    state_lib.learning_rate_fn(state_lib.OptimizerSpec.from_config(train), 10)


@pytest.mark.slow  # compiles a 1-job and a 2-job epoch of the tiny model
def test_auto_probe_alternates_its_rounds_within_the_budget(tmp_path, monkeypatch):
  ctx, _, data = tiny_context(tiny_config(), tmp_path)
  config = ctx.config
  jobs = [jobs_lib.Job(0, i, f)
          for i, f in enumerate(folds_lib.make_folds(data["subject"], config.train, 0)[:2])]
  calls = []
  prepare = loop.prepare_chunk

  def counting_prepare(ctx, chunk_jobs, steps_per_epoch):
    c = prepare(ctx, chunk_jobs, steps_per_epoch)
    name = f"{len(chunk_jobs)} jobs"

    def train_epoch(*args, train_epoch=c.steps.train_epoch):
      calls.append((name, int(args[-1])))
      return train_epoch(*args)
    return dataclasses.replace(c, steps=c.steps._replace(train_epoch=train_epoch))

  monkeypatch.setattr(loop, "prepare_chunk", counting_prepare)
  times = loop.seconds_per_job_epoch(ctx, {"seq": jobs[:1], "par": jobs}, 2, rounds=3,
                                     budget_s=1e9)
  assert set(times) == {"seq", "par"} and all(t > 0 for t in times.values())
  # A warm-up epoch each, then 3 timed rounds, the order reversed every other round.
  assert calls == [("1 jobs", 0), ("2 jobs", 0), ("2 jobs", 1), ("1 jobs", 1),
                   ("1 jobs", 2), ("2 jobs", 2), ("2 jobs", 3), ("1 jobs", 3)]
  calls.clear()
  loop.seconds_per_job_epoch(ctx, {"seq": jobs[:1], "par": jobs}, 2, rounds=3, budget_s=0.0)
  assert [epoch for _, epoch in calls] == [0, 0, 1, 1]  # the budget spent: one timed round
