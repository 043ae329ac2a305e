"""The 'hard' synthetic MEGC2019 preset: its shape, and its calibration (STSTNet LOSO UF1 in
0.6-0.8, logistic regression on the raw pixels clearly below it)."""

from __future__ import annotations

import numpy as np
import pytest

from configs import ststnet_megc
from microexp.train import baselines
from microexp.data import megc_flow
from microexp.synthetic import megc_hard as synthetic_hard
from microexp.synthetic import megc as synthetic_megc
from microexp.data.emotions import MEGC_CLASSES
from microexp.train import engine
from microexp.train import metrics

# The reduced hard set of the calibration (docs/results.md): 22 subjects.
SUBJECTS = (8, 8, 6)
EPOCHS = 60


def test_hard_release_has_imbalance_label_noise_and_varying_clip_counts(tmp_path):
  root = synthetic_megc.write_synthetic_megc_flow(
      tmp_path / "hard", num_subjects=(6, 6, 4), difficulty="hard", face_crops=False)
  arrays = megc_flow.flow_set_arrays(root)
  labels = np.array([MEGC_CLASSES.index(e) for e in arrays["emotion"]])
  counts = {d: np.bincount(labels[arrays["dataset"] == d], minlength=3)
            for d in ("casme2", "samm", "smic")}
  # Negative is the majority in CASME II and SAMM, as in the real counts.
  assert counts["casme2"].argmax() == 0 and counts["samm"].argmax() == 0
  per_subject = [np.sum(arrays["subject"] == s) for s in np.unique(arrays["subject"])]
  assert min(per_subject) < max(per_subject)
  with pytest.raises(ValueError, match="unknown field"):
    synthetic_megc.write_synthetic_megc_flow(tmp_path / "bad", difficulty="hard",
                                             hard_params={"amplitud": 2})
  with pytest.raises(ValueError, match="difficulty"):
    synthetic_megc.write_synthetic_megc_flow(tmp_path / "bad", difficulty="medium")


def test_label_noise_and_styles_are_drawn():
  rng = np.random.default_rng(0)
  noisy = {**synthetic_hard.HARD, "label_noise": 0.1}
  flips = np.array([synthetic_hard.noisy_label(rng, 0, noisy) for _ in range(4000)])
  assert abs(np.mean(flips != 0) - 0.1) < 0.02 and set(flips) == {0, 1, 2}
  style = synthetic_hard.subject_style(rng)
  blobs = synthetic_hard.styled_blobs([("brow_l", 0.2, 0.0, -1.0)] * 5, style, "surprise")
  assert 1 <= len(blobs) <= 5
  # The same subject expresses the same emotion with the same blobs.
  assert blobs == synthetic_hard.styled_blobs([("brow_l", 0.2, 0.0, -1.0)] * 5, style, "surprise")


@pytest.mark.slow
def test_hard_preset_calibration(tmp_path):
  root = synthetic_megc.write_synthetic_megc_flow(
      tmp_path / "hard", num_subjects=SUBJECTS, difficulty="hard", face_crops=False)
  arrays = megc_flow.flow_set_arrays(root)
  labels = np.array([MEGC_CLASSES.index(e) for e in arrays["emotion"]])
  lr_cm = metrics.confusion_matrix(
      labels, baselines.loso_predictions(arrays["inputs"], labels, arrays["subject"],
                                         num_classes=3), 3)
  config = ststnet_megc.get_config("synthetic")
  t = config.train
  t.epochs, t.seeds, t.final_seeds, t.tensorboard, t.checkpoint_every_s = EPOCHS, (0,), (), False, 1e9
  results = engine.train_and_evaluate(config, arrays, tmp_path / "wd")
  uf1 = results["metrics"]["uf1"]["mean"]
  print(f"hard preset: STSTNet UF1 {uf1:.3f}, logistic regression UF1 {metrics.uf1(lr_cm):.3f}")
  assert 0.6 <= uf1 <= 0.8, results["metrics"]
  assert metrics.uf1(lr_cm) <= uf1 - 0.05
