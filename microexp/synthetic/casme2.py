"""A synthetic CASME II: procedural faces with small, emotion-specific facial motion.

`write_synthetic_casme2` writes the official layout (coding sheet + JPEG folders) so that every
reader, builder and training path runs without the licensed data. Each subject has its own face;
each clip moves the facial regions of its emotion's action units by a few pixels (smooth local
displacement fields, cv2.remap) on top of head jitter and noise, so the class is visible in the
onset->apex motion and not in any single frame. `make_face` and `render_clip` are public for
synthetic videos and the SAMM / SMIC layouts.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
import time
from typing import Mapping, Sequence

import numpy as np

from microexp.data.emotions import CASME2_EMOTIONS

SHEET_NAME = "CASME2-coding-20140508.xlsx"
COMPLETE_MARKER = ".complete"  # written last: the tree is whole
SYNTHETIC_STAMP = ".synthetic"  # written first: this function may delete and rewrite the tree



def marker_matches(root: pathlib.Path, params: dict) -> bool:
  """Whether `root`'s COMPLETE_MARKER records `params`: the tree they wrote is whole (every
  synthetic writer reuses such a tree)."""
  marker = root / COMPLETE_MARKER
  if not marker.is_file():
    return False
  try:
    return json.loads(marker.read_text()) == json.loads(json.dumps(params))
  except json.JSONDecodeError:
    return False


# Default class weights: every CASME II emotion is present, and happiness / surprise / repression
# (the 3-class subset) keep enough clips per subject for LOSO. Real CASME II is 32/25/64/27/7/2/99.
DEFAULT_EMOTION_WEIGHTS = {
    "happiness": 0.18, "surprise": 0.15, "disgust": 0.17, "repression": 0.15,
    "sadness": 0.08, "fear": 0.07, "others": 0.20,
}

# Peak displacement at intensity 1, as a fraction of the face half-width (~2.8 px at 280 px wide).
MOTION_SCALE = 0.025


@dataclasses.dataclass(frozen=True)
class Face:
  """A neutral face: `image` [H, W, 3] float32 RGB in 0..255, `landmarks` name -> (x, y) px,
  `half_width` the face ellipse's horizontal semi-axis in px (the motion unit)."""

  image: np.ndarray
  landmarks: Mapping[str, tuple[float, float]]
  half_width: float


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
  import cv2  # pylint: disable=g-import-not-at-top
  noise = rng.standard_normal(shape).astype(np.float32)
  noise = cv2.GaussianBlur(noise, (0, 0), sigma)
  return noise / (noise.std() + 1e-6)


def make_face(rng: np.random.Generator, image_size: tuple[int, int]) -> Face:
  """Draws one subject's neutral face (shape, skin tone, texture, lighting are random).

  Args:
    rng: numpy Generator (the subject's identity).
    image_size: (H, W) in px.

  Returns:
    A `Face`; draw once per subject and render every clip of that subject from it.
  """
  import cv2  # pylint: disable=g-import-not-at-top

  h, w = image_size
  ss = 2  # supersampling: draw at 2x and shrink for anti-aliased edges
  H, W = h * ss, w * ss
  u = lambda lo, hi: float(rng.uniform(lo, hi))

  # Background: a dim colour ramp.
  bg = np.array([u(20, 90), u(20, 90), u(20, 90)], np.float32)
  ramp = np.linspace(-1, 1, W, dtype=np.float32)[None, :, None] * u(-15, 15)
  img = np.broadcast_to(bg + ramp, (H, W, 3)).copy()

  cx, cy = W * u(0.47, 0.53), H * u(0.50, 0.55)
  a, b = W * u(0.38, 0.45), H * u(0.40, 0.46)
  skin = np.array([u(150, 235), u(105, 185), u(80, 150)], np.float32)  # RGB
  skin[1] = min(skin[1], skin[0] - 10)
  skin[2] = min(skin[2], skin[1] - 5)

  # Hair (behind the top of the face), then the face ellipse.
  hair = np.array([u(10, 90)] * 3, np.float32) * np.array([1.0, u(0.7, 1), u(0.5, 1)], np.float32)
  cv2.ellipse(img, (int(cx), int(cy - 0.12 * b)), (int(a * 1.12), int(b * 1.02)), 0, 180, 360,
              hair.tolist(), -1, cv2.LINE_AA)
  cv2.ellipse(img, (int(cx), int(cy)), (int(a), int(b)), 0, 0, 360, skin.tolist(), -1, cv2.LINE_AA)

  # Landmarks in the face frame, with per-subject jitter.
  j = lambda s=0.03: u(-s, s)
  eye_dx, eye_y = u(0.36, 0.46), u(-0.28, -0.18)
  brow_y = eye_y - u(0.13, 0.19)
  mouth_y, mouth_w = u(0.40, 0.50), u(0.26, 0.36)
  nose_y = (eye_y + mouth_y) / 2 + u(0.02, 0.08)
  P = lambda x, y: (cx + x * a, cy + y * b)
  lm = {}
  for side, sgn in (("l", -1), ("r", 1)):
    lm[f"eye_{side}"] = P(sgn * eye_dx, eye_y)
    lm[f"upper_lid_{side}"] = P(sgn * eye_dx, eye_y - 0.05)
    lm[f"brow_{side}"] = P(sgn * (eye_dx + j()), brow_y)
    lm[f"inner_brow_{side}"] = P(sgn * (eye_dx - 0.17), brow_y + 0.02)
    lm[f"outer_brow_{side}"] = P(sgn * (eye_dx + 0.18), brow_y + 0.03)
    lm[f"cheek_{side}"] = P(sgn * (eye_dx + 0.08), (eye_y + mouth_y) / 2 + 0.05)
    lm[f"nose_side_{side}"] = P(sgn * 0.12, nose_y - 0.05)
    lm[f"mouth_corner_{side}"] = P(sgn * mouth_w, mouth_y)
  lm["upper_lip"] = P(0, mouth_y - 0.05)
  lm["lower_lip"] = P(0, mouth_y + 0.06)
  lm["nose_tip"] = P(0, nose_y)
  lm["chin"] = P(0, mouth_y + u(0.28, 0.36))

  ipt = lambda p: (int(round(p[0])), int(round(p[1])))
  dark = (skin * u(0.35, 0.6)).tolist()
  eye_r = a * u(0.09, 0.12)
  brow_thick = max(2, int(a * u(0.035, 0.06)))
  iris = [u(30, 110), u(30, 90), u(20, 70)]
  for side in ("l", "r"):
    e = lm[f"eye_{side}"]
    cv2.ellipse(img, ipt(e), (int(eye_r * 1.5), int(eye_r * 0.8)), 0, 0, 360,
                (235, 235, 230), -1, cv2.LINE_AA)
    cv2.circle(img, ipt(e), int(eye_r * 0.65), iris, -1, cv2.LINE_AA)
    cv2.circle(img, ipt(e), int(eye_r * 0.3), (10, 10, 10), -1, cv2.LINE_AA)
    cv2.ellipse(img, ipt(e), (int(eye_r * 1.55), int(eye_r * 0.85)), 0, 180, 360, dark,
                max(1, brow_thick // 2), cv2.LINE_AA)
    pts = np.array([lm[f"inner_brow_{side}"], lm[f"brow_{side}"], lm[f"outer_brow_{side}"]])
    pts[1, 1] -= a * u(0.02, 0.05)
    cv2.polylines(img, [pts.round().astype(np.int32)], False, hair.tolist(), brow_thick,
                  cv2.LINE_AA)
  # Nose: bridge, nostrils.
  nt = lm["nose_tip"]
  cv2.line(img, ipt((nt[0], nt[1] - 0.25 * b)), ipt((nt[0] + 0.03 * a, nt[1])), dark,
           max(1, brow_thick // 2), cv2.LINE_AA)
  for side in ("l", "r"):
    ns = lm[f"nose_side_{side}"]
    cv2.ellipse(img, ipt((ns[0], ns[1] + 0.05 * b)), (int(0.05 * a), int(0.03 * b)), 0, 0, 360,
                dark, -1, cv2.LINE_AA)
  # Mouth: lips and the line between them.
  lip = (skin * np.array([u(0.85, 1.0), u(0.45, 0.65), u(0.45, 0.65)])).tolist()
  ml, mr = lm["mouth_corner_l"], lm["mouth_corner_r"]
  mouth = cv2.ellipse2Poly(ipt(((ml[0] + mr[0]) / 2, (ml[1] + mr[1]) / 2)),
                           (int((mr[0] - ml[0]) / 2), int(0.07 * b)), 0, 0, 360, 10)
  cv2.fillPoly(img, [mouth], lip, cv2.LINE_AA)
  cv2.line(img, ipt(ml), ipt(mr), dark, max(1, brow_thick // 2), cv2.LINE_AA)

  # Lighting gradient in a random direction and skin texture (moves with the face).
  yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
  theta = u(0, 2 * np.pi)
  light = 1 + u(0.1, 0.3) * ((xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)) / max(a, b)
  texture = (u(3, 7) * _smooth_noise(rng, (H, W), ss * 1.0)
             + u(4, 8) * _smooth_noise(rng, (H, W), ss * 4.0))
  img = img * light[..., None] + texture[..., None]
  img = cv2.resize(np.clip(img, 0, 255), (w, h), interpolation=cv2.INTER_AREA)
  landmarks = {k: ((x + 0.5) / ss - 0.5, (y + 0.5) / ss - 0.5) for k, (x, y) in lm.items()}
  return Face(image=img.astype(np.float32), landmarks=landmarks, half_width=a / ss)


# Each emotion: (landmark, sigma as a fraction of the half-width, (dx, dy) motion unit vector).
# 'l' is the left side of the image; mirrored blobs list both sides.
def _pair(name, sigma, dx, dy):
  """Symmetric blobs: dx is outward (away from the midline)."""
  return [(f"{name}_l", sigma, -dx, dy), (f"{name}_r", sigma, dx, dy)]


EMOTION_MOTIONS = {
    # AU6 + AU12: lip corners up and out, cheeks raised.
    "happiness": _pair("mouth_corner", 0.13, 0.5, -1.0) + _pair("cheek", 0.2, 0.0, -0.5),
    # AU1 + AU2 (+ lids): whole brows up.
    "surprise": (_pair("brow", 0.22, 0.0, -1.0) + _pair("inner_brow", 0.12, 0.0, -0.6)
                 + _pair("upper_lid", 0.08, 0.0, -0.4)),
    # AU4 + AU9 + AU10: brows lowered and together, nose wrinkle, upper lip raised.
    "disgust": (_pair("inner_brow", 0.13, -0.6, 0.7) + _pair("nose_side", 0.1, 0.0, -0.7)
                + [("upper_lip", 0.13, 0.0, -0.8)]),
    # AU14 + AU17 + AU24: lips pressed, chin raised, corners tightened.
    "repression": ([("upper_lip", 0.12, 0.0, 0.6), ("lower_lip", 0.12, 0.0, -0.8),
                    ("chin", 0.22, 0.0, -0.8)] + _pair("mouth_corner", 0.1, -0.4, 0.0)),
    # AU1 + AU15: inner brows up, lip corners down.
    "sadness": _pair("inner_brow", 0.12, 0.0, -1.0) + _pair("mouth_corner", 0.12, 0.0, 1.0),
    # AU1 + AU2 + AU4 + AU20: brows up and together, lips stretched sideways.
    "fear": (_pair("inner_brow", 0.12, -0.6, -0.8) + _pair("outer_brow", 0.12, 0.0, -0.7)
             + _pair("mouth_corner", 0.12, 1.0, 0.2)),
}

# 'others': one small movement drawn per clip (blink, unilateral cheek or brow, jaw drop).
OTHERS_MOTIONS = {
    "45": _pair("upper_lid", 0.07, 0.0, 1.2),
    "L6": [("cheek_l", 0.2, 0.0, -1.0)],
    "R6": [("cheek_r", 0.2, 0.0, -1.0)],
    "L2": [("outer_brow_l", 0.14, 0.0, -1.0)],
    "R2": [("outer_brow_r", 0.14, 0.0, -1.0)],
    "26": [("chin", 0.25, 0.0, 0.8), ("lower_lip", 0.12, 0.0, 0.5)],
}

# Action Units written to the sheet per emotion (one is drawn per clip).
EMOTION_AUS = {
    "happiness": ("12", "6+12", "R12", "6+12+25"),
    "surprise": ("1+2", "1+2+5", "2"),
    "disgust": ("4", "4+9", "9+10", "4+10"),
    "repression": ("14", "17", "24", "14+17"),
    "sadness": ("1+15", "15", "1+4+15"),
    "fear": ("1+2+4+20", "4+20"),
}


def motion_field(face: Face, blobs, intensity: float = 1.0,
                 motion_scale: float = MOTION_SCALE) -> np.ndarray:
  """Displacement field at the apex: [H, W, 2] float32 (dx, dy) px, Gaussian blobs summed.

  Peak displacement of a unit blob = motion_scale * face.half_width * intensity px.
  """
  h, w = face.image.shape[:2]
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  field = np.zeros((h, w, 2), np.float32)
  amp = motion_scale * face.half_width * intensity
  for name, sigma, dx, dy in blobs:
    x0, y0 = face.landmarks[name]
    s = sigma * face.half_width
    g = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * s * s))
    field[..., 0] += amp * dx * g
    field[..., 1] += amp * dy * g
  return field


def motion_profile(num_frames: int, apex_index: int, rise_start: int = 1,
                   final_level: float = 0.2) -> np.ndarray:
  """Expression strength per frame, [T] in 0..1: neutral, smooth rise to 1 at the apex, decay."""
  t = np.arange(num_frames, dtype=np.float32)
  rise = np.clip((t - rise_start) / max(apex_index - rise_start, 1), 0, 1)
  fall = np.clip((t - apex_index) / max(num_frames - 1 - apex_index, 1), 0, 1)
  up = np.sin(0.5 * np.pi * rise) ** 2
  down = 1 - (1 - final_level) * np.sin(0.5 * np.pi * fall) ** 2
  return np.where(t <= apex_index, up, down).astype(np.float32)


def render_clip(face: Face, emotion: str, num_frames: int, apex_index: int, intensity: float,
                rng: np.random.Generator, *, blobs=None, jitter_px: float | None = None,
                noise: float = 2.0, motion_scale: float = MOTION_SCALE) -> np.ndarray:
  """Renders one micro-expression clip of `face`.

  Args:
    face: from `make_face`.
    emotion: one of CASME2_EMOTIONS ('others' draws a random movement from OTHERS_MOTIONS) —
      ignored when `blobs` is given.
    num_frames: T.
    apex_index: frame of peak motion (0 < apex_index < T); frame 0 is the neutral onset.
    intensity: scales the peak displacement (1.0 = motion_scale * half-width px).
    rng: numpy Generator for the clip (head jitter, noise, 'others' movement).
    blobs: optional explicit motion [(landmark, sigma, dx, dy)], overriding `emotion`.
    jitter_px: std of the global head translation random walk per frame (default 2% of the
      peak motion per frame, capped).
    noise: std of the per-frame sensor noise (grey levels).
    motion_scale: peak displacement at intensity 1 as a fraction of the face half-width.

  Returns:
    frames: [T, H, W, 3] uint8 RGB.
  """
  import cv2  # pylint: disable=g-import-not-at-top

  if blobs is None:
    if emotion == "others":
      blobs = OTHERS_MOTIONS[sorted(OTHERS_MOTIONS)[rng.integers(len(OTHERS_MOTIONS))]]
    elif emotion in EMOTION_MOTIONS:
      blobs = EMOTION_MOTIONS[emotion]
    else:
      raise ValueError(f"No synthetic motion for emotion {emotion!r}; known: {CASME2_EMOTIONS}.")
  if not 0 < apex_index < num_frames:
    raise ValueError(f"apex_index {apex_index} must be in 1..{num_frames - 1}.")
  h, w = face.image.shape[:2]
  field = motion_field(face, blobs, intensity, motion_scale)
  profile = motion_profile(num_frames, apex_index)
  if jitter_px is None:
    jitter_px = 0.03 * motion_scale * face.half_width
  jitter = np.cumsum(rng.normal(0, jitter_px, (num_frames, 2)), axis=0).astype(np.float32)
  jitter -= jitter[0]
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  frames = np.empty((num_frames, h, w, 3), np.uint8)
  for t in range(num_frames):
    # Backward warp: output pixel p samples the neutral face at p - d(p) (d is small and smooth).
    map_x = xx - profile[t] * field[..., 0] - jitter[t, 0]
    map_y = yy - profile[t] * field[..., 1] - jitter[t, 1]
    frame = cv2.remap(face.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if noise:
      frame += np.float32(noise) * rng.standard_normal(frame.shape, dtype=np.float32)
    frames[t] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
  return frames


def emotion_counts(emotions, total: int) -> dict[str, int]:
  """Clip counts per emotion (largest remainder, every weighted emotion at least once)."""
  if emotions is None:
    weights = dict(DEFAULT_EMOTION_WEIGHTS)
  elif isinstance(emotions, Mapping):
    weights = {str(k).lower(): float(v) for k, v in emotions.items() if v > 0}
  else:
    weights = {str(e).lower(): 1.0 for e in emotions}
  unknown = sorted(set(weights) - set(CASME2_EMOTIONS))
  if unknown or not weights:
    raise ValueError(f"emotions: unknown {unknown} or empty; use names from {CASME2_EMOTIONS}.")
  names = [e for e in CASME2_EMOTIONS if e in weights]
  p = np.array([weights[e] for e in names]) / sum(weights.values())
  counts = np.floor(p * total).astype(int)
  if total >= len(names):
    counts = np.maximum(counts, 1)
  while counts.sum() > total:
    counts[np.argmax(counts)] -= 1
  order = np.argsort(-(p * total - np.floor(p * total)))
  for i in range(total - counts.sum()):
    counts[order[i % len(names)]] += 1
  return dict(zip(names, counts.tolist()))


def _plan(rng, num_subjects, clips_per_subject, num_frames, emotions, quirks, intensity):
  """Sheet rows: dicts with subject, filename, frames, apex, emotion, aus, intensity."""
  counts = emotion_counts(emotions, num_subjects * clips_per_subject)
  pool = [e for e, c in counts.items() for _ in range(c)]  # grouped by emotion
  # Round-robin over subjects so each subject gets a spread of emotions (useful for LOSO).
  per_subject = [pool[s::num_subjects] for s in range(num_subjects)]
  rows = []
  for s, subject_emotions in enumerate(per_subject):
    rng.shuffle(subject_emotions)
    used = set()
    for k, emotion in enumerate(subject_emotions):
      while True:
        name = f"EP{int(rng.integers(1, 20)):02d}_{int(rng.integers(1, 8)):02d}"
        name += "f" if rng.random() < 0.3 else ""
        if name not in used:
          break
      used.add(name)
      t = int(rng.integers(num_frames[0], num_frames[1] + 1))
      if emotion == "others":
        aus = sorted(OTHERS_MOTIONS)[int(rng.integers(len(OTHERS_MOTIONS)))]
      else:
        aus = EMOTION_AUS[emotion][int(rng.integers(len(EMOTION_AUS[emotion])))]
      rows.append(dict(
          subject=s + 1, filename=name, num_frames=t,
          start=int(rng.integers(1, 200)),
          apex_index=int(rng.integers(max(2, int(0.3 * t)), max(3, int(0.6 * t)) + 1)),
          emotion=emotion, aus=aus, intensity=float(rng.uniform(*intensity)),
          subject_cell=f"{s + 1:02d}", apex_cell=None, duplicate=False))
  for row in rows:
    row["apex_cell"] = row["start"] + row["apex_index"]
  if quirks and rows:
    _add_quirks(rng, rows)
  return rows


def _add_quirks(rng, rows):
  """A handful of the real sheet's quirks (see docs/data.md)."""
  pick = lambda: rows[int(rng.integers(len(rows)))]
  # Int subject cells for the first subject (the real sheet mixes 1 and '01').
  for row in rows:
    if row["subject"] == 1:
      row["subject_cell"] = 1
  pick()["apex_cell"] = "/"  # apex not coded -> midpoint
  # Irregular folder names of the real set, on distinct clips (used verbatim by the reader).
  targets = rng.choice(len(rows), size=min(3, len(rows)), replace=False)
  for odd, i in zip(("EP01_2", "EP09f", "EP06_02_01"), targets):
    if all(r["filename"] != odd for r in rows if r["subject"] == rows[i]["subject"]):
      rows[i]["filename"] = odd
  for row in rows:  # AU strings with sides, '?' and single AUs typed as numbers
    if row["emotion"] == "disgust":
      row["aus"] = "4+L10"
      break
  for row in rows:
    if row["emotion"] == "others":
      row["aus"] = "?"
      break
  pick()["duplicate"] = True


def _write_sheet(path: pathlib.Path, rows, quirks: bool):
  import openpyxl  # pylint: disable=g-import-not-at-top

  wb = openpyxl.Workbook()
  ws = wb.active
  ws.title = "Sheet1"
  ws.append(["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", None,
             "Action Units", "Estimated Emotion"])
  for row in rows:
    aus = row["aus"]
    if quirks and aus.isdigit():
      aus = int(aus)  # Excel stores a lone AU as a number
    ws.append([row["subject_cell"], row["filename"], row["start"], row["apex_cell"],
               row["start"] + row["num_frames"] - 1, None, aus, row["emotion"]])
  wb.save(path)


def _to_raw(frames: np.ndarray, rng) -> np.ndarray:
  """Places cropped frames in a larger camera frame (background + offset), like the RAW set."""
  t, h, w, _ = frames.shape
  H, W = int(h * 1.4), int(w * 1.8)
  canvas = np.empty((t, H, W, 3), np.uint8)
  canvas[:] = rng.integers(40, 120, 3).astype(np.uint8)
  y0, x0 = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
  canvas[:, y0:y0 + h, x0:x0 + w] = frames
  return canvas


def write_synthetic_casme2(root, *, num_subjects: int = 12, clips_per_subject: int = 9,
                           image_size: tuple[int, int] = (170, 140),
                           num_frames: tuple[int, int] = (24, 40), seed: int = 0,
                           quirks: bool = True, raw: bool = False,
                           emotions: Mapping[str, float] | Sequence[str] | None = None,
                           intensity: tuple[float, float] = (0.7, 1.3),
                           motion_scale: float = MOTION_SCALE, noise: float = 2.0,
                           jpeg_quality: int = 95, verbose: bool = False) -> pathlib.Path:
  """Writes a synthetic CASME II in the official layout under `root`.

  Args:
    root: output folder (created). Holds `CASME2-coding-20140508.xlsx`,
      `Cropped/subNN/<Filename>/reg_img<frame>.jpg` and, if `raw`, `CASME2_RAW_selected/...`.
    num_subjects, clips_per_subject: dataset size.
    image_size: (H, W) of the cropped frames.
    num_frames: inclusive (lo, hi) range of clip lengths.
    seed: everything is a function of the seed.
    quirks: include some of the real sheet's quirks (int subject, '/' apex, irregular filenames,
      'L10' / '?' Action Units, a duplicate frame file).
    raw: also write the uncropped `CASME2_RAW_selected` layout.
    emotions: None (DEFAULT_EMOTION_WEIGHTS), a {emotion: weight} mapping or a list of emotions
      (equal weights).
    intensity: (lo, hi) uniform range of the per-clip motion intensity.
    motion_scale: peak displacement at intensity 1 as a fraction of the face half-width
      (default 0.025: ~2.8 px on a 280 px wide face, ~1.5 px at the default 140 px width).
    noise: std of the per-frame sensor noise in grey levels.
    jpeg_quality: cv2 JPEG quality.
    verbose: print progress and the time taken.

  Returns:
    root. A `.complete` marker (JSON of the arguments) is written last: an existing tree with a
    matching marker is reused, anything else is regenerated from scratch.
  """
  import cv2  # pylint: disable=g-import-not-at-top

  root = pathlib.Path(root)
  params = dict(num_subjects=num_subjects, clips_per_subject=clips_per_subject,
                image_size=list(image_size), num_frames=list(num_frames), seed=seed,
                quirks=quirks, raw=raw, emotions=emotions if emotions is None or isinstance(
                    emotions, Mapping) else list(emotions), intensity=list(intensity),
                motion_scale=motion_scale, noise=noise, jpeg_quality=jpeg_quality, version=1)
  marker = root / COMPLETE_MARKER
  if marker_matches(root, params):
    return root
  if num_frames[0] < 4 or num_frames[1] < num_frames[0]:
    raise ValueError(f"num_frames {num_frames}: need 4 <= lo <= hi.")
  # Half-written or different: remove what this function writes, then write again. A non-empty
  # root without our `.synthetic` stamp may be a real CASME II copy: never delete there.
  stamp = root / SYNTHETIC_STAMP
  if root.is_dir() and any(root.iterdir()) and not stamp.is_file():
    raise FileExistsError(
        f"{root} is not empty and was not written by write_synthetic_casme2 "
        f"(no {SYNTHETIC_STAMP}); choose an empty or new folder for the synthetic CASME II.")
  marker.unlink(missing_ok=True)
  for name in ("Cropped", "CASME2_RAW_selected"):
    shutil.rmtree(root / name, ignore_errors=True)
  for old in root.glob("CASME2-coding-*.xlsx") if root.is_dir() else ():
    old.unlink()
  root.mkdir(parents=True, exist_ok=True)
  stamp.write_text("written by microexp.synthetic.casme2.write_synthetic_casme2\n")
  start_time = time.time()
  seq = np.random.SeedSequence(seed)
  plan_seed, *subject_seeds = seq.spawn(num_subjects + 1)
  rows = _plan(np.random.default_rng(plan_seed), num_subjects, clips_per_subject, num_frames,
               emotions, quirks, intensity)
  params_jpeg = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
  for s in range(num_subjects):
    rng = np.random.default_rng(subject_seeds[s])
    face = make_face(rng, image_size)
    for row in (r for r in rows if r["subject"] == s + 1):
      frames = render_clip(face, row["emotion"], row["num_frames"], row["apex_index"],
                           row["intensity"], rng, noise=noise, motion_scale=motion_scale,
                           blobs=OTHERS_MOTIONS[row["aus"]] if row["aus"] in OTHERS_MOTIONS
                           else None)
      layouts = [("Cropped", "reg_img", frames)]
      if raw:
        layouts.append(("CASME2_RAW_selected", "img", _to_raw(frames, rng)))
      for folder_name, prefix, clip_frames in layouts:
        folder = root / folder_name / f"sub{s + 1:02d}" / row["filename"]
        folder.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(clip_frames):
          ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params_jpeg)
          assert ok
          data.tofile(folder / f"{prefix}{row['start'] + t}.jpg")
        if row["duplicate"]:
          shutil.copyfile(folder / f"{prefix}{row['start']}.jpg",
                          folder / f"{prefix}{row['start']} (1).jpg")
    if verbose:
      print(f"synthetic CASME II: subject {s + 1}/{num_subjects} written", flush=True)
  _write_sheet(root / SHEET_NAME, rows, quirks)
  marker.write_text(json.dumps(params))
  if verbose:
    print(f"synthetic CASME II: {len(rows)} clips in {time.time() - start_time:.1f} s -> {root}")
  return root
