"""Spotting: where in a clip the micro-expression is (onset and apex), and candidate intervals in a
long recording.

All functions take grayscale face crops `[T, H, W]` uint8 (one stable box per clip, see
`microexp.vision.face`) and measure facial motion with `microexp.vision.flow.dense_flow`. Motion between two
frames is the 97th percentile of the flow magnitude over the crop after subtracting the frame's
median flow. The median is the head's global translation (most of the crop moves with the head),
which is not an expression; a high percentile rather than the mean because a micro-expression moves
a small part of the face (lip corners, brows), which the mean dilutes below the noise floor (on the
synthetic videos the apex/rest ratio is 2-4x with the mean, 3.5-10x with the 97th percentile).

- `spot`: onset = the quietest frame near the start (least frame-to-frame motion, smoothed); apex =
  the frame whose motion *relative to that onset* is largest (smoothed over time).
- `spot_intervals`: sliding-window contrast for long recordings (see its docstring).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np

from microexp.vision import flow as flow_lib

# Faces are shrunk to this width before flow: a micro-movement of ~1% of the face is still a
# pixel or two, and flow on 128 px is ~10x cheaper than on a 340 px CASME II crop.
WORK_WIDTH = 128


def to_gray(frames: np.ndarray, width: int | None = WORK_WIDTH) -> np.ndarray:
  """uint8 [T, H, W, 3] RGB (or [T, H, W]) -> uint8 [T, H', W'] gray, width W' (aspect kept)."""
  frames = np.asarray(frames)
  if frames.ndim == 4:
    frames = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if f.shape[-1] == 3 else f[..., 0]
                       for f in frames])
  if width is None or frames.shape[2] == width:
    return frames
  height = max(8, int(round(frames.shape[1] * width / frames.shape[2])))
  return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])


# Percentile of |flow| that measures a frame pair's facial motion (see the module docstring).
MOTION_PERCENTILE = 97


def face_motion(prev: np.ndarray, next: np.ndarray, method: str = "farneback") -> float:
  """Non-rigid motion (px) between two gray crops [H, W]: a high percentile of |flow - median|."""
  flow = flow_lib.dense_flow(prev, next, method)
  flow = flow - np.median(flow.reshape(-1, 2), axis=0)
  return float(np.percentile(flow_lib.magnitude(flow), MOTION_PERCENTILE))


def face_motions(faces: np.ndarray, pairs: Sequence[tuple[int, int]],
                 method: str = "farneback") -> np.ndarray:
  """[len(pairs)] float: `face_motion(faces[a], faces[b], method)` for each (a, b), in order, on a
  thread per core (`flow.map_threads`; the values are the serial ones)."""
  return np.array(flow_lib.map_threads(lambda p: face_motion(faces[p[0]], faces[p[1]], method),
                                       pairs), np.float64)


def smooth(curve: np.ndarray, window: int) -> np.ndarray:
  """Centred moving average over `window` frames (odd; edges use the available frames)."""
  curve = np.asarray(curve, np.float64)
  if window <= 1 or len(curve) < 2:
    return curve
  half = window // 2
  kernel = np.ones(2 * half + 1)
  total = np.convolve(np.pad(curve, half), kernel, mode="valid")
  count = np.convolve(np.pad(np.ones_like(curve), half), kernel, mode="valid")
  return total / count


@dataclasses.dataclass(frozen=True)
class Spotting:
  """Spotted onset and apex (frame indices) and the curves they come from ([T] float, px)."""

  onset: int
  apex: int
  motion: np.ndarray  # smoothed motion of each frame relative to the onset frame
  frame_motion: np.ndarray  # smoothed frame-to-frame motion (onset search)


def spot(faces: np.ndarray, *, method: str = "farneback", onset: int | None = None,
         apex: int | None = None, onset_search: float = 0.25, window: int = 3) -> Spotting:
  """Spots the onset and the apex of the (single) micro-expression in a clip.

  Args:
    faces: uint8 [T, H, W] gray face crops (`to_gray`).
    method: flow method (`microexp.vision.flow.METHODS`).
    onset, apex: known frames (e.g. --onset / --apex); the spotting only fills in what is None.
    onset_search: the onset is looked for among the first max(2, onset_search * T) frames: a frame
      at rest *before* the movement. (The apex is also a frame at rest, which is why the search
      cannot span the whole clip.)
    window: moving-average window (frames) for both curves.

  Returns:
    Spotting. With T < 2 the onset and apex are both 0.
  """
  faces = np.asarray(faces)
  num_frames = len(faces)
  if faces.ndim != 3:
    raise ValueError(f"spot needs gray face crops [T, H, W], got shape {faces.shape}.")
  if num_frames < 2:
    return Spotting(0, 0, np.zeros(num_frames), np.zeros(num_frames))
  for name, value in (("onset", onset), ("apex", apex)):
    if value is not None and not 0 <= value < num_frames:
      raise ValueError(f"{name} frame {value} is outside the clip (0..{num_frames - 1}).")
  steps = face_motions(faces, [(t - 1, t) for t in range(1, num_frames)], method)
  # Frame t's own motion: the mean of the steps into and out of it.
  frame_motion = smooth(np.convolve(np.pad(steps, 1, mode="edge"), [0.5, 0.5], mode="valid"),
                        window)
  if onset is None:
    search = max(2, int(round(onset_search * num_frames)))
    if apex is not None:
      search = min(search, max(1, apex))
    onset = int(np.argmin(frame_motion[:search]))
  others = [t for t in range(num_frames) if t != onset]
  motion = np.zeros(num_frames)
  motion[others] = face_motions(faces, [(onset, t) for t in others], method)
  motion = smooth(motion, window)
  if apex is None:
    after = motion[onset + 1:]
    apex = onset + 1 + int(np.argmax(after)) if len(after) else onset
  return Spotting(int(onset), int(apex), motion, frame_motion)


@dataclasses.dataclass(frozen=True)
class Interval:
  """A candidate micro-expression: frames onset..offset with its peak at apex; score in px."""

  onset: int
  apex: int
  offset: int
  score: float


def contrast_curve(faces: np.ndarray, half_window: int, *, method: str = "farneback",
                   stride: int = 1) -> np.ndarray:
  """Sliding-window contrast C(t) = (m(t-k, t) + m(t+k, t)) / 2, k = half_window; [T] float.

  m(a, b) is `face_motion` between frames a and b. A micro-expression rises and falls within the
  window, so its peak differs from *both* ends; a slow drift or a lasting change differs from one
  end only and scores about half. Frames whose window leaves the clip, or off the stride, are 0
  (the stride's frames are linearly interpolated in between).
  """
  faces = np.asarray(faces)
  num_frames, k = len(faces), int(half_window)
  centres = np.arange(k, num_frames - k, max(1, stride))
  curve = np.zeros(num_frames)
  if not len(centres):
    return curve
  before_after = face_motions(faces, [(t - k, t) for t in centres] + [(t + k, t) for t in centres],
                              method)
  values = before_after.reshape(2, len(centres)).mean(axis=0)
  inner = np.arange(centres[0], centres[-1] + 1)
  curve[inner] = np.interp(inner, centres, values)
  return curve


def event_extent(faces: np.ndarray, apex: int, half_window: int, *, method: str = "farneback",
                 stride: int = 1) -> tuple[int, int]:
  """How long the movement peaking at `apex` lasts: (first, last) frame of its half-height run.

  The face at each frame of apex +- 4k (k = half_window) is compared with a reference before the
  movement, frame apex - 4k (`face_motion`, sampled every `stride` frames, moving average of 3);
  the run is the contiguous stretch around the apex where that motion stays >= half its value at
  the apex. A micro-expression comes and goes inside one window (2k frames); a macro-expression,
  or a change that lasts, keeps the face away from the reference for longer.
  """
  faces = np.asarray(faces)
  num_frames, reach, step = len(faces), 4 * max(1, int(half_window)), max(1, int(stride))
  reference = max(0, apex - reach)
  times = np.unique(np.r_[np.arange(reference, min(num_frames, apex + reach + 1), step), apex])
  motion = smooth(face_motions(faces, [(reference, t) for t in times], method), 3)
  at_apex = int(np.searchsorted(times, apex))
  first, last = run_around(motion, at_apex, 0.5 * motion[at_apex])
  return int(times[first]), int(times[last])


def run_around(curve: np.ndarray, at: int, floor: float) -> tuple[int, int]:
  """(first, last) index of the contiguous run around `at` where `curve` stays >= floor."""
  first = last = int(at)
  while first > 0 and curve[first - 1] >= floor:
    first -= 1
  while last < len(curve) - 1 and curve[last + 1] >= floor:
    last += 1
  return first, last


def half_window(fps: float, max_duration: float = 0.5) -> int:
  """k: half a micro-expression's longest duration in frames of the recording (>= 1)."""
  return max(1, int(round(max_duration * fps / 2)))


def lasts_longer(first: int, last: int, fps: float, max_duration: float = 0.5) -> bool:
  """The fps-aware macro guard: frames first..last (inclusive) last longer than max_duration s."""
  return (last - first + 1) / fps > max_duration


@dataclasses.dataclass(frozen=True)
class Spotted:
  """`spot_events`' result: micro-expression candidates, rejected macro movements (onset / offset =
  their measured extent), the contrast curve [T] and the final threshold."""

  intervals: list[Interval]
  macros: list[Interval]
  curve: np.ndarray
  level: float


def peaks(curve: np.ndarray, valid: np.ndarray, level: float, spacing: int) -> list[int]:
  """Maxima of `curve` over `valid` frames, >= level, strongest first, > spacing apart."""
  found: list[int] = []
  for t in np.argsort(-np.where(valid, curve, -np.inf), kind="stable"):
    if not valid[t] or curve[t] < level:
      break
    if all(abs(int(t) - p) > spacing for p in found):
      found.append(int(t))
  return found


def spot_events(faces: np.ndarray, *, fps: float, max_duration: float = 0.5,
                threshold: float = 0.5, method: str = "farneback", stride: int = 1,
                macro_guard: bool = True, noise_factor: float = 2.0,
                max_rounds: int = 10) -> Spotted:
  """Candidate micro-expressions of a long recording, with macro-movements set apart.

  The window is a micro-expression's longest duration (`max_duration` s, 0.5 s by the usual
  definition, so the rule follows the recording's fps): k = round(max_duration * fps / 2) frames
  either side of the centre. The contrast curve (`contrast_curve`) is thresholded at
  mean + threshold * (max - mean) (the MEGC spotting baseline's rule, Li et al. 2017/2018); each
  maximum above it, more than 2k frames (one window) from a stronger one, is a candidate (a peak's
  own side lobes, at +-k where one window end sits on the apex, are suppressed that way) with apex
  at the peak and onset / offset k frames either side (clipped to the clip).

  Macro guard: a candidate whose movement lasts longer than `max_duration` (`event_extent`) is a
  macro-expression (or a posture change); it is set apart, its frames +- k leave the curve, and
  the threshold is computed again without it (one strong macro-expression would otherwise lift
  the threshold above every micro-expression). Repeated until no candidate is a macro.

  Noise floor: a candidate of either kind must also reach `noise_factor` times the median of the
  curve (the recording's typical motion). Without it, a recording with no expression, or what is
  left of one once its macro movements are set apart, has its noise peaks taken for movements (on a
  still synthetic recording they reach 1.3x the median; planted micro-expressions 2.9-7x).
  """
  faces = np.asarray(faces)
  k = half_window(fps, max_duration)
  curve = contrast_curve(faces, k, method=method, stride=stride)
  valid = np.zeros(len(curve), bool)
  valid[k:len(curve) - k] = True
  valid &= curve > 0
  floor = noise_factor * float(np.median(curve[valid])) if valid.any() else 0.0
  macros: list[Interval] = []
  extents: dict[int, tuple[int, int]] = {}
  for _ in range(max_rounds):
    if not valid.any():
      return Spotted([], merge(macros), curve, 0.0)
    values = curve[valid]
    level = max(floor, float(values.mean() + threshold * (values.max() - values.mean())))
    found = peaks(curve, valid, level, 2 * k)
    found_macro = False
    for p in found if macro_guard else ():
      if p not in extents:
        extents[p] = event_extent(faces, p, k, method=method, stride=stride)
      first, last = extents[p]
      if lasts_longer(first, last, fps, max_duration):
        macros.append(Interval(first, p, last, float(curve[p])))
        valid[max(0, first - k):last + k + 1] = False
        found_macro = True
    if not found_macro:
      break
  intervals = [Interval(max(0, p - k), p, min(len(curve) - 1, p + k), float(curve[p]))
               for p in found if valid[p]]
  return Spotted(sorted(intervals, key=lambda i: i.onset), merge(macros), curve, level)


def merge(intervals: list[Interval]) -> list[Interval]:
  """Overlapping intervals (the rise and the fall of one macro movement) as one, sorted; the apex
  and score of the strongest."""
  merged: list[Interval] = []
  for i in sorted(intervals, key=lambda i: i.onset):
    if merged and i.onset <= merged[-1].offset:
      last = merged[-1]
      top = max(last, i, key=lambda j: j.score)
      merged[-1] = Interval(last.onset, top.apex, max(last.offset, i.offset), top.score)
    else:
      merged.append(i)
  return merged


def spot_intervals(faces: np.ndarray, *, fps: float, max_duration: float = 0.5,
                   threshold: float = 0.5, method: str = "farneback", stride: int = 1,
                   macro_guard: bool = True) -> tuple[list[Interval], np.ndarray, float]:
  """`spot_events` as (micro-expression intervals by onset, contrast curve [T], threshold)."""
  spotted = spot_events(faces, fps=fps, max_duration=max_duration, threshold=threshold,
                        method=method, stride=stride, macro_guard=macro_guard)
  return spotted.intervals, spotted.curve, spotted.level
