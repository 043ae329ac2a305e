"""Spotting targets and decoding (pure functions): the soft labels around a coded apex, the rows
kept for training, and scores -> intervals with the heuristic's fps-aware macro guard."""

from __future__ import annotations

import numpy as np
import pytest

from microexp.train import spot_decode
from microexp.train import spot_labels
from microexp.train import spotting_metrics
from microexp.vision import spotting
from tests.spotting import fake_long_videos


def test_row_targets_follow_what_the_flow_of_a_row_sees():
  """Row t (flow f_t -> f_t + k) of a movement rising from the onset to the apex and back: 1 where
  one end is at rest and the other at the apex, 0 where both ends are at rest or equally far in."""
  k = 4
  y = spot_labels.row_targets(np.arange(80), k, [(20, 24, 28), (40, 52, 64)], ["micro", "macro"])
  assert y.shape == (80, 2)
  assert y[20, 0] == 1.0 and y[24, 0] == 1.0  # onset -> apex, apex -> offset
  assert y[22, 0] == pytest.approx(0.0)  # frames 22 and 26: the same phase
  assert y[:15, 0].max() == 0 and y[29:, 0].max() == 0  # both ends at rest
  assert y[:35, 1].max() == 0 and y[45, 1] == pytest.approx(1.0)  # macro: every rising row
  assert y[:, 0][35:].max() == 0


def test_row_targets_refuse_bad_intervals():
  with pytest.raises(ValueError, match="ends before"):
    spot_labels.row_targets(np.arange(10), 2, [(8, 8, 3)], ["micro"])
  with pytest.raises(ValueError, match="kind"):
    spot_labels.row_targets(np.arange(10), 2, [(1, 2, 3)], ["blink"])


def test_frame_data_keeps_every_expression_row_and_thins_the_rest():
  videos = fake_long_videos.make_videos(num_subjects=2, videos_per_subject=1, num_frames=200)
  full = spot_labels.frame_data(videos)
  thin = spot_labels.frame_data(videos, negative_stride=5)
  inside = lambda d: int((d["spot_targets"].max(1) > 0).sum())
  assert inside(full) == inside(thin) > 0
  assert len(thin["inputs"]) < 0.5 * len(full["inputs"])
  assert set(thin["subject"]) == {"s00", "s01"}
  assert thin["inputs"].shape[1:] == videos[0]["features"].shape[1:]


def _bump(num_frames, centre, width, height=0.9):
  t = np.arange(num_frames)
  return height * np.clip(1 - np.abs(t - centre) / width, 0, None)


def test_decode_finds_micro_and_macro_intervals_where_the_scores_are():
  """Row scores like the targets of a micro (apex 100) and a macro movement (80 frames): the
  intervals come back around them."""
  n, k = 400, 4
  frames = np.arange(n - k)
  targets = spot_labels.row_targets(frames, k, [(94, 100, 106), (210, 250, 290)],
                                    ["micro", "macro"])
  decoded = spot_decode.decode(0.9 * targets, frames, k=k, num_frames=n, fps=30.0)
  (m,), (mac,) = decoded.spotted["micro"], decoded.spotted["macro"]
  assert spotting_metrics.iou((m.onset, m.offset), (94, 106)) >= 0.5
  assert spotting_metrics.iou((mac.onset, mac.offset), (210, 290)) >= 0.5
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
