"""End to end through the registry: synthetic CASME II -> apex flow -> LOSO, well above chance."""

from __future__ import annotations

import pytest

from microexp.train import engine

from . import tiny_config


@pytest.mark.slow
def test_loso_on_synthetic_casme2_learns(tmp_path):
  config = tiny_config(epochs=15, batch_size=16, learning_rate=0.1, tensorboard=False)
  config.dataset.synthetic = True
  config.dataset.data_dir = str(tmp_path / "data")
  config.dataset.image_size = 24
  config.dataset.synthetic_kwargs.update(
      {"num_subjects": 5, "clips_per_subject": 20, "image_size": (64, 52), "num_frames": (10, 14)})
  results = engine.run(config, tmp_path / "wd")
  assert results["folds"] == [f"sub{i:02d}" for i in range(1, 6)]
  counts = sum(sum(row) for row in results["confusion"])
  majority = max(sum(row) for row in results["confusion"]) / counts
  # Three classes; the majority-class rate is the bar a non-learner reaches.
  print("accuracy", results["metrics"]["accuracy"]["mean"], "majority", majority)
  assert results["metrics"]["accuracy"]["mean"] > max(0.6, majority + 0.2), results["metrics"]
