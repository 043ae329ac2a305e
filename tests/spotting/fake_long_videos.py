"""A tiny stand-in of the long-video loaders' output (the contract of microexp/loaders/long_videos.py),
for the fast spotting tests that must not build the synthetic long videos: flow rows [N, S, S, 3]
with a planted local movement (brows for micro, mouth for macro) on the rows whose window [t, t+k]
overlaps a coded interval, head motion (a uniform flow) and blinks (a brief strong eye movement,
uncoded) as distractors, and noise."""

from __future__ import annotations

import numpy as np

EMOTIONS = ("positive", "negative", "surprise")


def _pattern(size: int, region: str, emotion: str) -> np.ndarray:
  """The flow field [S, S, 3] of a movement: a blob at the region, its direction by emotion."""
  yy, xx = np.mgrid[0:size, 0:size] / size
  cy = {"brows": 0.25, "mouth": 0.75, "eyes": 0.4}[region]
  blob = np.exp(-((yy - cy) ** 2 + (xx - 0.5) ** 2) / 0.02)
  angle = {"positive": 0.0, "negative": np.pi, "surprise": np.pi / 2, "": np.pi / 4}[emotion]
  out = np.stack([np.cos(angle) * blob, np.sin(angle) * blob, blob], -1)
  return out.astype(np.float32)


def make_videos(num_subjects: int = 4, videos_per_subject: int = 2, *, num_frames: int = 360,
                fps: float = 30.0, size: int = 16, k: int = 4, seed: int = 0) -> list[dict]:
  """Fake loader videos: per video 3 micro (8 frames) and 1 macro (45 frames) intervals."""
  rng = np.random.default_rng(seed)
  videos = []
  for s in range(num_subjects):
    for v in range(videos_per_subject):
      n = num_frames - k
      feats = rng.normal(0, 0.15, (n, size, size, 3)).astype(np.float32)
      intervals, kinds, emotions = [], [], []
      starts = rng.permutation(np.arange(20, num_frames - 80, 60))[:4]
      for j, start in enumerate(sorted(starts)):
        macro = j == 1
        length = 45 if macro else int(rng.integers(7, 11))
        emotion = "" if macro else EMOTIONS[int(rng.integers(len(EMOTIONS)))]
        onset, offset = int(start), int(start) + length - 1
        apex = onset + length // 2
        intervals.append((onset, apex, offset))
        kinds.append("macro" if macro else "micro")
        emotions.append(emotion)
        pattern = _pattern(size, "mouth" if macro else "brows", emotion)
        t = np.arange(n)
        # flow t -> t+k: the difference of the face's phase at t + k and at t
        phase = lambda f: np.clip(1 - np.abs(f - apex) / (length / 2), 0, None)
        amount = phase(t + k) - phase(t)
        feats += (amount * (0.6 if macro else 0.8))[:, None, None, None] * pattern
      for blink in rng.integers(0, n, 3):  # uncoded strong eye movements, 2 rows
        feats[blink:blink + 2] += 1.5 * _pattern(size, "eyes", "")
      for head in rng.integers(0, n - 10, 2):  # head motion: uniform flow over 10 rows
        feats[head:head + 10, :, :, :2] += 0.8
      videos.append({"subject": f"s{s:02d}", "video": f"v{v}", "fps": fps,
                     "num_frames": num_frames, "k": k, "features": feats,
                     "frames": np.arange(n), "intervals": intervals, "kinds": kinds,
                     "emotions": emotions})
  return videos

