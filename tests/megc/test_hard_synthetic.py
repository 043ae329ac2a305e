"""The 'hard' synthetic MEGC2019 preset: imbalance, label noise, subject styles, varying clip
counts. Its calibration (STSTNet LOSO UF1 in 0.6-0.8, logistic regression on the raw pixels clearly
below it; 22 folds x 60 epochs) is a benchmark: benchmarks/synthetic_megc_calibration.py."""

from __future__ import annotations

import numpy as np
import pytest

from microexp.data import megc_flow
from microexp.synthetic import megc_hard as synthetic_hard
from microexp.synthetic import megc as synthetic_megc
from microexp.data.emotions import MEGC_CLASSES


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

