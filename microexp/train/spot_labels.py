"""Per-row spotting targets from the coded intervals of long videos, and the rows as engine data.

A long video's feature row t is the flow from frame f_t to f_t + k (k from the frame rate,
microexp/loaders/long_videos.py). Within a coded interval the face moves from rest (onset) to the
apex and back (offset): its phase rises linearly 0 -> 1 from the onset to the apex and falls back
to 0 at the offset. Row t's target for each kind (micro, macro) is how much of that movement its
two ends see, |phase(f_t + k) - phase(f_t)|, relative to the most any row of that interval sees
(so 1 on the rows where the flow shows the rise or the fall, falling to 0 where both ends are at
rest or at the same phase): a soft label like the MEGC baselines' (SoftNet's overlap
pseudo-labels, MEAN's apex-centred soft labels) that matches what one flow row can show. The
maximum where two intervals of a kind overlap. The spotter learns these as sigmoid outputs (the
AU task's BCE, one column per kind); spot_decode.py spreads each row's score over the frames its
window covers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

KINDS = ("micro", "macro")


def row_targets(frames: np.ndarray, k: int, intervals: Sequence[tuple[int, int, int]],
                kinds: Sequence[str]) -> np.ndarray:
  """frames [N] (each row's first frame), k, coded (onset, apex, offset) and kinds -> [N, 2]."""
  start = np.asarray(frames, np.float64)
  out = np.zeros((len(start), len(KINDS)), np.float32)
  for (onset, apex, offset), kind in zip(intervals, kinds):
    if kind not in KINDS:
      raise ValueError(f"Unknown expression kind {kind!r}; expected one of {KINDS}.")
    onset, offset = int(onset), int(offset)
    if offset < onset:
      raise ValueError(f"Interval ({onset}, {apex}, {offset}) ends before it starts.")
    apex = int(apex) if onset <= int(apex) <= offset else (onset + offset) // 2  # apex uncoded
    seen = np.abs(_phase(start + k, onset, apex, offset) - _phase(start, onset, apex, offset))
    if seen.max() > 0:
      col = KINDS.index(kind)
      out[:, col] = np.maximum(out[:, col], seen / seen.max())
  return out


def _phase(f: np.ndarray, onset: int, apex: int, offset: int) -> np.ndarray:
  """The movement's phase at frames f: 0 at rest (<= onset, >= offset), 1 at the apex."""
  rise = (f - onset + 1) / max(apex - onset + 1, 1)
  fall = (offset + 1 - f) / max(offset - apex + 1, 1)
  return np.clip(np.minimum(rise, fall), 0.0, 1.0)


def video_targets(video: dict) -> np.ndarray:
  """row_targets of one loader video entry (long_videos contract)."""
  return row_targets(video["frames"], int(video["k"]), video["intervals"], video["kinds"])


def video_key(video: dict) -> str:
  """'subject/video': a video's name, unique in a dataset."""
  return f"{video['subject']}/{video['video']}"


def frame_data(videos: Sequence[dict], *, negative_stride: int = 1) -> dict[str, np.ndarray]:
  """Every video's rows as engine data: inputs [N, S, S, 3], spot_targets [N, 2], subject, clip
  ('subject/video:frame'), dataset, labels (zeros); video_index, row [N] map rows back.

  negative_stride: keep every n-th row whose targets are all 0 (the rest of the rows, the
  expressions and their surroundings, all stay). The spotter is trained on these rows only; the
  evaluation scores every row of the test videos (spot_protocol.py).
  """
  if not videos:
    raise ValueError("The long-video loader returned no video.")
  inputs, targets, subject, clip, video_index, row = [], [], [], [], [], []
  for i, v in enumerate(videos):
    x = np.asarray(v["features"], np.float32)
    if x.ndim != 4 or len(x) != len(v["frames"]):
      raise ValueError(f"Video {video_key(v)}: features {x.shape} do not match its "
                       f"{len(v['frames'])} frame rows.")
    y = video_targets(v)
    keep = (y.max(1) > 0) | (np.arange(len(y)) % max(1, int(negative_stride)) == 0)
    inputs.append(x[keep])
    targets.append(y[keep])
    rows = np.flatnonzero(keep)
    subject += [str(v["subject"])] * len(rows)
    clip += [f"{video_key(v)}:{int(v['frames'][r])}" for r in rows]
    video_index.append(np.full(len(rows), i, np.int32))
    row.append(rows.astype(np.int32))
  n = sum(len(t) for t in targets)
  return {"inputs": np.concatenate(inputs), "spot_targets": np.concatenate(targets),
          "subject": np.array(subject), "clip": np.array(clip),
          "dataset": np.full(n, "long_videos"), "labels": np.zeros(n, np.int32),
          "video_index": np.concatenate(video_index), "row": np.concatenate(row)}
