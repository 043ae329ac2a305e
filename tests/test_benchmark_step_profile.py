"""benchmarks/step_profile.py: the ablation rows are timed interleaved, after one warm-up each."""

from __future__ import annotations

import math

import jax
import pytest

from benchmarks import roofline
from benchmarks import step_profile


@pytest.mark.slow  # compiles the engine step twice
def test_interleaved_rows_time_every_variant_after_its_warm_up():
  rows = {name: (config, kwargs) for name, config, kwargs in step_profile.variants()}
  assert list(rows) == ["full", "-rotation", "-augment", "-augment -bn/do", "-augment -bn/do sgd"]
  with jax.threefry_partitionable(False):
    setups = {name: step_profile.setup_step(*rows[name], folds=2, steps=2, n=64)
              for name in ("-augment", "-augment -bn/do sgd")}
    assert all(int(s[1].step[0]) == 0 for s in setups.values())
    times = roofline.interleaved_fold_step_s(setups, steps=2, folds=2, repeats=3)
  assert list(times) == ["-augment", "-augment -bn/do sgd"]
  assert all(math.isfinite(t) and t > 0 for t in times.values())
  # Each row carried its state on: a warm-up and 3 timed epochs of 2 steps.
  for name, (_, state, _, _) in setups.items():
    assert int(state.step[0]) == 8 and state.step.shape == (2,), name
