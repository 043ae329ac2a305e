"""Spotting targets and decoding (pure functions): the soft labels around a coded apex, the rows
kept for training, and scores -> intervals with the heuristic's fps-aware macro guard."""

from __future__ import annotations

import numpy as np
import pytest

from microexp.train import spot_decode
from microexp.train import spot_labels
from microexp.vision import spotting
from tests.spotting import fake_long_videos


def test_row_targets_peak_at_the_apex_and_vanish_outside():
  k = 4  # row t is centred on frame t + 2
  y = spot_labels.row_targets(np.arange(60), k, [(20, 24, 30), (40, 45, 55)], ["micro", "macro"])
  assert y.shape == (60, 2)
  assert y[22, 0] == 1.0  # centre 24 = the apex
  assert y[18, 0] == pytest.approx(0.5) and y[28, 0] == pytest.approx(0.5)  # onset, offset
  assert y[17, 0] == 0 and y[29, 0] == 0  # just outside
  assert y[:, 0][38:].max() == 0 and y[43, 1] == 1.0 and y[:, 1][:37].max() == 0


def test_row_targets_refuse_bad_intervals():
  with pytest.raises(ValueError, match="ends before"):
    spot_labels.row_targets(np.arange(10), 2, [(8, 8, 3)], ["micro"])
  with pytest.raises(ValueError, match="kind"):
    spot_labels.row_targets(np.arange(10), 2, [(1, 2, 3)], ["blink"])


def test_frame_data_keeps_every_expression_row_and_thins_the_rest():
  videos = fake_long_videos.make_videos(num_subjects=2, videos_per_subject=1, num_frames=200)
  full = spot_labels.frame_data(videos)
  thin = spot_labels.frame_data(videos, negative_stride=5)
  inside = lambda d: int((d["au_targets"].max(1) > 0).sum())
  assert inside(full) == inside(thin) > 0
  assert len(thin["inputs"]) < 0.5 * len(full["inputs"])
  assert set(thin["subject"]) == {"s00", "s01"}
  assert thin["inputs"].shape[1:] == videos[0]["features"].shape[1:]


def _bump(num_frames, centre, width, height=0.9):
  t = np.arange(num_frames)
  return height * np.clip(1 - np.abs(t - centre) / width, 0, None)


def test_decode_finds_micro_and_macro_intervals_where_the_scores_are():
  n, k = 400, 4
  frames = np.arange(n - k)
  micro = _bump(n, 100, 6)[frames + k // 2]
  macro = _bump(n, 250, 30)[frames + k // 2]
  decoded = spot_decode.decode(np.stack([micro, macro], 1), frames, k=k, num_frames=n, fps=30.0)
  (m,), (mac,) = decoded.spotted["micro"], decoded.spotted["macro"]
  assert abs(m.apex - 100) <= 1 and 3 <= m.offset - m.onset <= 9
  assert abs(mac.apex - 250) <= 2 and mac.offset - mac.onset > 20
  assert not decoded.rejected and decoded.curves.shape == (2, n)


def test_decode_guard_follows_the_frame_rate():
  """A 40-frame bump on the micro curve lasts 1.3 s at 30 fps (set apart by the macro guard)
  but 0.2 s at 200 fps (a micro-expression): the guard is `spotting.lasts_longer`."""
  n = 600
  frames = np.arange(n)
  scores = np.stack([_bump(n, 300, 40), np.zeros(n)], 1)
  at_30 = spot_decode.decode(scores, frames, k=0, num_frames=n, fps=30.0)
  at_200 = spot_decode.decode(scores, frames, k=0, num_frames=n, fps=200.0)
  assert not at_30.spotted["micro"] and len(at_30.rejected) == 1
  assert len(at_200.spotted["micro"]) == 1 and not at_200.rejected
  i = at_30.rejected[0]
  assert spotting.lasts_longer(i.onset, i.offset, 30.0) and not spotting.lasts_longer(
      i.onset, i.offset, 200.0)


def test_decode_spots_nothing_below_the_threshold():
  n = 300
  scores = np.stack([_bump(n, 100, 6, height=0.4), _bump(n, 200, 30, height=0.3)], 1)
  decoded = spot_decode.decode(scores, np.arange(n), k=0, num_frames=n, fps=30.0)
  assert decoded.spotted == {"micro": [], "macro": []}
