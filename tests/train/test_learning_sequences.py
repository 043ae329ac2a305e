"""The ConvLSTM learns: synthetic CASME II -> flow sequences around the apex -> ConvLSTM, well above
chance on held-out subjects (the design card's sequence model; it sat at chance before)."""

from __future__ import annotations

import numpy as np
import pytest

from configs import convlstm_loso
from microexp import loaders as registry
from microexp.train import engine


@pytest.mark.slow
def test_convlstm_on_synthetic_flow_sequences_learns(tmp_path):
  config = convlstm_loso.get_config("synthetic,classes=3")
  config.dataset.data_dir = str(tmp_path / "data")
  # Three classes only, 15 clips per subject: 2 held-out subjects give 30 test clips.
  config.dataset.synthetic_kwargs.update({
      "num_subjects": 6, "clips_per_subject": 15,
      "emotions": ("happiness", "surprise", "repression")})
  t = config.train
  t.protocol, t.test_subjects, t.final_seeds, t.tensorboard = "split", ("sub05", "sub06"), (), False
  t.epochs = 20
  results = engine.train_and_evaluate(config, registry.load(config.dataset), tmp_path / "wd")
  confusion = np.asarray(results["confusion"])
  majority = confusion.sum(1).max() / confusion.sum()
  accuracy = results["metrics"]["accuracy"]["mean"]
  train = list(results["history"].values())[0]["train/epoch_categorical_accuracy"]
  print("accuracy", accuracy, "majority", majority, "train", train[-3:])
  assert confusion.sum() == 30
  assert accuracy > max(0.6, majority + 0.2), results["metrics"]
