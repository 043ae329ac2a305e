"""Synthetic long videos for spotting and spot-then-recognize, in the official on-disk layouts.

- CAS(ME)^2 (`write_synthetic_casme2_lv`, 30 fps): `rawpic/sNN/NN_<code><name>/img<N>.jpg` (N from
  1) and `CAS(ME)^2code_final.xlsx` (no header; sheets 2 and 3 name subjects and videos; quirk: an
  offset of 0 = not coded, on some macro-expressions).
- SAMM Long Videos (`write_synthetic_samm_lv`, 200 fps): `SAMM_longvideos/<vid>/<vid>_<NNNN>.jpg`
  (N from 1) and `SAMM_LongVideos_V2_Release.xlsx` (title block, `Micro - 1/2` / `Macro`; quirk:
  apex -1 = not coded, on some rows). The emotion is written in the Notes column.

Each recording is one procedural face (`microexp.synthetic.casme2.make_face`) at rest with, placed
at random without overlap (`plan_video`):

- coded movements: 'micro' (0.2-0.45 s, small, local) and 'macro' (0.8-2 s, 2.5x larger), each of a
  MEGC class with its own local pattern (`CLASS_MOTIONS`: positive = lip corners up + cheeks,
  surprise = brows and lids up, negative = brows down and together + nose wrinkle);
- distractors, not coded: 'blink' (0.1-0.2 s, large lid motion: micro-sized in time), 'talk'
  (0.8-1.6 s of 3-5 Hz mouth opening), 'head' (a 0.3-1 s head translation and rotation that stays);
- sensor noise and a slow head drift on every frame.

A contrast spotter flags blinks, talking and head turns as micro-expressions; a learned one can
learn where and how a coded movement moves. Frames are rendered one at a time
(`render_frames`), so a recording of any length never sits in memory. Everything is a function of
the seed; `plan_video`'s `Movement`s are the ground truth (also in `.plan.json`).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
from typing import Iterator, Mapping

import cv2
import numpy as np

from microexp.data import long_videos as sheets
from microexp.data.emotions import MEGC_CLASSES
from microexp.synthetic import casme2 as synthetic

COMPLETE_MARKER = synthetic.COMPLETE_MARKER  # written last: the tree is whole
SYNTHETIC_STAMP = synthetic.SYNTHETIC_STAMP  # written first: this module may rewrite the tree
PLAN_FILE = ".plan.json"  # every planted movement, distractors included (tests, demos)

# The MEGC 3 classes as local motion patterns (blobs of `synthetic.motion_field`).
CLASS_MOTIONS = {
    "positive": synthetic.EMOTION_MOTIONS["happiness"],
    "surprise": synthetic.EMOTION_MOTIONS["surprise"],
    "negative": synthetic.EMOTION_MOTIONS["disgust"],
}
BLINK_MOTION = synthetic._pair("upper_lid", 0.09, 0.0, 1.4)  # pylint: disable=protected-access
TALK_MOTION = [("lower_lip", 0.14, 0.0, 0.9), ("chin", 0.25, 0.0, 0.7)]

# Movement kinds: coded ones first, then distractors.
CODED_KINDS = ("micro", "macro")
DISTRACTOR_KINDS = ("blink", "talk", "head")
# (lo, hi) duration in seconds and intensity (synthetic motion units: 1 ~ 1.1 px on a 112 px face).
DURATIONS = {"micro": (0.2, 0.45), "macro": (0.8, 2.0), "blink": (0.1, 0.2), "talk": (0.8, 1.6),
             "head": (0.3, 1.0)}
INTENSITIES = {"micro": (1.4, 2.2), "macro": (3.5, 5.5), "blink": (2.5, 4.0), "talk": (2.0, 3.5),
               "head": (1.5, 3.5)}  # head: px of translation; rotation up to 2 degrees
# Movements per minute of video, per kind (30 a minute: one every 2 s on average; real recordings
# are sparser, these are dense so that small sets hold enough of each).
DEFAULT_RATES = {"micro": 12.0, "macro": 4.0, "blink": 8.0, "talk": 3.0, "head": 3.0}
MIN_GAP_S = 0.4  # rest between two movements


@dataclasses.dataclass(frozen=True)
class Movement:
  """One planted movement; frames are 0-based indices into the recording (inclusive)."""

  kind: str  # 'micro' | 'macro' | 'blink' | 'talk' | 'head'
  emotion: str  # a MEGC class for 'micro' / 'macro', '' for distractors
  onset: int
  apex: int
  offset: int
  intensity: float
  phase: float = 0.0  # talk: oscillation frequency (Hz); head: rotation (degrees)


@dataclasses.dataclass(frozen=True)
class VideoPlan:
  """What one synthetic recording shows: its face seed, length and movements."""

  subject: str
  video: str
  fps: float
  num_frames: int
  face_seed: int
  noise_seed: int
  movements: tuple[Movement, ...]

  def coded(self) -> list[Movement]:
    return [m for m in self.movements if m.kind in CODED_KINDS]


def plan_video(rng: np.random.Generator, *, subject: str, video: str, fps: float,
               duration: float, rates: Mapping[str, float] = DEFAULT_RATES,
               face_seed: int = 0) -> VideoPlan:
  """Draws the movements of one recording: counts from `rates` (per minute, rounded at random), kinds in a
  random order, separated by at least MIN_GAP_S of rest (items that do not fit are dropped)."""
  num_frames = int(round(duration * fps))
  kinds = [k for k in CODED_KINDS + DISTRACTOR_KINDS
           for _ in range(int(rates.get(k, 0.0) * duration / 60 + rng.uniform()))]
  kinds = [kinds[i] for i in rng.permutation(len(kinds))]
  lengths = [int(round(rng.uniform(*DURATIONS[k]) * fps)) + 1 for k in kinds]
  gap = int(round(MIN_GAP_S * fps))
  while kinds and sum(lengths) + gap * (len(kinds) + 1) > num_frames:
    kinds.pop()
    lengths.pop()
  free = num_frames - sum(lengths) - gap * (len(kinds) + 1)
  extra = np.floor(rng.dirichlet(np.ones(len(kinds) + 1)) * free).astype(int)
  movements, t = [], 0
  for kind, length, more in zip(kinds, lengths, extra):
    t += gap + int(more)
    onset, offset = t, t + length - 1
    emotion = str(MEGC_CLASSES[rng.integers(len(MEGC_CLASSES))]) if kind in CODED_KINDS else ""
    apex = onset + int(round((rng.uniform(0.35, 0.55) if kind != "macro" else 0.5)
                             * (length - 1)))
    phase = (float(rng.uniform(3, 5)) if kind == "talk" else
             float(rng.uniform(-2, 2)) if kind == "head" else 0.0)
    movements.append(Movement(kind, emotion, onset, apex, offset,
                              float(rng.uniform(*INTENSITIES[kind])), phase))
    t = offset + 1
  return VideoPlan(subject, video, float(fps), num_frames, int(face_seed),
                   int(rng.integers(2**31)), tuple(movements))


def profile(m: Movement, t: np.ndarray) -> np.ndarray:
  """Strength 0..1 of movement `m` at frames `t`: sin^2 rise to the apex and fall to 0 at the
  offset (macro: held over its middle half; head: rises and stays; talk: `_talk_profile`)."""
  t = np.asarray(t, np.float64)
  rise = np.clip((t - m.onset) / max(m.apex - m.onset, 1), 0, 1)
  fall = np.clip((t - m.apex) / max(m.offset - m.apex, 1), 0, 1)
  if m.kind == "head":
    return np.sin(0.5 * np.pi * np.clip((t - m.onset) / max(m.offset - m.onset, 1), 0, 1)) ** 2
  if m.kind == "macro":
    span = max(m.offset - m.onset, 2)
    rise = np.clip((t - m.onset) / (0.25 * span), 0, 1)
    fall = np.clip((t - m.onset - 0.75 * span) / (0.25 * span), 0, 1)
  out = np.sin(0.5 * np.pi * rise) ** 2 * np.cos(0.5 * np.pi * fall) ** 2
  return out


def _talk_profile(m: Movement, t: np.ndarray, fps: float) -> np.ndarray:
  """Mouth opening 0..1 at frames t: |sin| at m.phase Hz inside an envelope."""
  t = np.asarray(t, np.float64)
  inside = (t >= m.onset) & (t <= m.offset)
  envelope = np.sin(np.pi * np.clip((t - m.onset) / max(m.offset - m.onset, 1), 0, 1)) ** 0.5
  return np.where(inside, np.abs(np.sin(np.pi * m.phase * (t - m.onset) / fps)) * envelope, 0.0)


def render_frames(plan: VideoPlan, frame_size: tuple[int, int] = (128, 112), *,
                  noise: float = 2.5, start: int = 0, stop: int | None = None
                  ) -> Iterator[np.ndarray]:
  """Yields the recording's frames start..stop-1 one at a time: uint8 [H, W, 3] RGB.

  Frame t is the neutral face warped by the sum of every movement's field times its strength at t
  (`profile`), plus the head pose (slow drift + 'head' movements: translation, rotation about the
  face centre) and Gaussian sensor noise (a per-frame seed: any frame range renders the same)."""
  face = synthetic.make_face(np.random.default_rng(plan.face_seed), frame_size)
  h, w = frame_size
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  fields = []
  for m in plan.movements:
    blobs = (CLASS_MOTIONS[m.emotion] if m.kind in CODED_KINDS else BLINK_MOTION
             if m.kind == "blink" else TALK_MOTION if m.kind == "talk" else None)
    fields.append(None if blobs is None else synthetic.motion_field(face, blobs, m.intensity))
  heads = [m for m in plan.movements if m.kind == "head"]
  directions = np.random.default_rng(plan.noise_seed).uniform(0, 2 * np.pi, len(heads))
  drift_rng = np.random.default_rng(plan.noise_seed + 1)
  # Slow drift: a random walk sampled every second, interpolated (px).
  knots = np.cumsum(drift_rng.normal(0, 0.3, (int(plan.num_frames / plan.fps) + 2, 2)), axis=0)
  centre = (w / 2.0, h / 2.0)
  stop = plan.num_frames if stop is None else min(stop, plan.num_frames)
  for t in range(start, stop):
    field = np.zeros((h, w, 2), np.float32)
    for m, f in zip(plan.movements, fields):
      if f is None or not m.onset <= t <= m.offset:
        continue
      strength = (_talk_profile(m, np.array([t]), plan.fps) if m.kind == "talk"
                  else profile(m, np.array([t])))[0]
      field += np.float32(strength) * f
    second = t / plan.fps
    i = int(second)
    shift = knots[i] + (second - i) * (knots[i + 1] - knots[i])
    angle = 0.0
    for m, direction in zip(heads, directions):
      s = float(profile(m, np.array([t]))[0])
      shift = shift + s * m.intensity * np.array([np.cos(direction), np.sin(direction)])
      angle += s * m.phase
    # Backward map: output pixel p samples the face at R^-1 (p - shift) - field(p).
    rot = cv2.getRotationMatrix2D(centre, -angle, 1.0)
    px, py = xx - np.float32(shift[0]), yy - np.float32(shift[1])
    map_x = rot[0, 0] * px + rot[0, 1] * py + rot[0, 2] - field[..., 0]
    map_y = rot[1, 0] * px + rot[1, 1] * py + rot[1, 2] - field[..., 1]
    frame = cv2.remap(face.image, map_x.astype(np.float32), map_y.astype(np.float32),
                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if noise:
      frame += np.float32(noise) * np.random.default_rng([plan.noise_seed, t]).standard_normal(
          frame.shape, dtype=np.float32)
    yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def _fresh(root: pathlib.Path, params: dict, writer: str) -> bool:
  """True when `root` holds a complete tree written with `params`; otherwise clears what this
  module writes (refusing a non-empty folder it did not write) and stamps it."""
  if synthetic.marker_matches(root, params):
    return True
  stamp = root / SYNTHETIC_STAMP
  if root.is_dir() and any(root.iterdir()) and not stamp.is_file():
    raise FileExistsError(f"{root} is not empty and was not written by {writer} (no "
                          f"{SYNTHETIC_STAMP}); choose an empty or new folder.")
  if root.is_dir():
    shutil.rmtree(root)
  root.mkdir(parents=True)
  stamp.write_text(f"written by microexp.synthetic.long_videos.{writer}\n")
  return False


def _write_frames(folder: pathlib.Path, frames: Iterator[np.ndarray], name, quality: int) -> None:
  folder.mkdir(parents=True, exist_ok=True)
  for t, frame in enumerate(frames):
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
      raise RuntimeError(f"JPEG encoding failed for {folder} frame {t}.")
    data.tofile(folder / name(t + 1))


def _plans(seed: int, num_subjects: int, videos_per_subject: int, fps: float, duration: float,
           rates, subject_name, video_name) -> list[VideoPlan]:
  seq = np.random.SeedSequence(seed)
  plans = []
  for s, subject_seq in enumerate(seq.spawn(num_subjects)):
    rng = np.random.default_rng(subject_seq)
    face_seed = int(rng.integers(2**31))
    for v in range(videos_per_subject):
      plans.append(plan_video(rng, subject=subject_name(s), video=video_name(s, v), fps=fps,
                              duration=duration, rates=rates, face_seed=face_seed))
  return plans


def _save_plans(root: pathlib.Path, plans: list[VideoPlan]) -> None:
  (root / PLAN_FILE).write_text(json.dumps([dataclasses.asdict(p) for p in plans]))


def load_plans(root) -> list[VideoPlan]:
  """The `VideoPlan`s a writer of this module planted under `root` (distractors included)."""
  raw = json.loads((pathlib.Path(root) / PLAN_FILE).read_text())
  return [VideoPlan(**{**p, "movements": tuple(Movement(**m) for m in p["movements"])})
          for p in raw]


def write_synthetic_casme2_lv(root, *, num_subjects: int = 4, videos_per_subject: int = 2,
                              duration: float = 30.0, fps: float = 30.0,
                              frame_size: tuple[int, int] = (128, 112),
                              rates: Mapping[str, float] | None = None, noise: float = 2.5,
                              quirks: bool = True, seed: int = 0,
                              jpeg_quality: int = 95) -> pathlib.Path:
  """Writes a synthetic CAS(ME)^2 long-video set under `root` (module doc); returns root.

  Subjects s15, s16, ...; videos `<number>_<code>` with codes 0401, 0402, ... A matching
  `.complete` marker means the tree is reused; anything else is rewritten from scratch. quirks:
  the first macro-expression of every other video is coded with offset 0 (the reader then ends it
  at its apex)."""
  root = pathlib.Path(root)
  rates = dict(DEFAULT_RATES if rates is None else rates)
  params = dict(kind="casme2_lv", num_subjects=num_subjects,
                videos_per_subject=videos_per_subject, duration=duration, fps=fps,
                frame_size=list(frame_size), rates=rates, noise=noise, quirks=quirks, seed=seed,
                jpeg_quality=jpeg_quality, version=1)
  if _fresh(root, params, "write_synthetic_casme2_lv"):
    return root
  number = lambda s: 15 + s
  plans = _plans(seed, num_subjects, videos_per_subject, fps, duration, rates,
                 lambda s: f"s{number(s)}", lambda s, v: f"{number(s)}_{401 + v:04d}")
  video_names, intervals = {}, []
  for i, plan in enumerate(plans):
    code = plan.video.split("_")[1]
    video_names[code] = f"clip{code}"
    folder = root / "rawpic" / plan.subject / f"{plan.video}clip{code}"
    _write_frames(folder, render_frames(plan, tuple(frame_size), noise=noise),
                  lambda n: f"img{n}.jpg", jpeg_quality)
    quirked = False
    for m in plan.coded():
      offset = m.offset + 1
      if quirks and i % 2 == 1 and m.kind == "macro" and not quirked:
        offset, quirked = 0, True
      intervals.append(sheets.LabelledInterval("casme_sq", plan.subject, plan.video, m.onset + 1,
                                               m.apex + 1, offset, m.kind, "", m.emotion))
  sheets.write_casme_sq_sheet(root / sheets.CASME_SQ_SHEETS[0], intervals,
                              video_names=video_names)
  _save_plans(root, plans)
  (root / COMPLETE_MARKER).write_text(json.dumps(params))
  return root


def write_synthetic_samm_lv(root, *, num_subjects: int = 4, videos_per_subject: int = 2,
                            duration: float = 10.0, fps: float = 200.0,
                            frame_size: tuple[int, int] = (128, 112),
                            rates: Mapping[str, float] | None = None, noise: float = 2.5,
                            quirks: bool = True, seed: int = 0,
                            jpeg_quality: int = 95) -> pathlib.Path:
  """Writes a synthetic SAMM Long Videos set under `root` (module doc); returns root.

  Subjects 006, 007, ...; videos `<subject>_<n>` from 1. quirks: the first micro-expression of
  every other video has apex -1 (the reader then puts it in the middle)."""
  root = pathlib.Path(root)
  rates = dict(DEFAULT_RATES if rates is None else rates)
  params = dict(kind="samm_lv", num_subjects=num_subjects, videos_per_subject=videos_per_subject,
                duration=duration, fps=fps, frame_size=list(frame_size), rates=rates,
                noise=noise, quirks=quirks, seed=seed, jpeg_quality=jpeg_quality, version=1)
  if _fresh(root, params, "write_synthetic_samm_lv"):
    return root
  plans = _plans(seed, num_subjects, videos_per_subject, fps, duration, rates,
                 lambda s: f"{6 + s:03d}", lambda s, v: f"{6 + s:03d}_{v + 1}")
  intervals = []
  for i, plan in enumerate(plans):
    _write_frames(root / "SAMM_longvideos" / plan.video,
                  render_frames(plan, tuple(frame_size), noise=noise),
                  lambda n, video=plan.video: f"{video}_{n:04d}.jpg", jpeg_quality)
    quirked = False
    for m in plan.coded():
      apex = m.apex + 1
      if quirks and i % 2 == 1 and m.kind == "micro" and not quirked:
        apex, quirked = -1, True
      intervals.append(sheets.LabelledInterval("samm_long", plan.subject, plan.video,
                                               m.onset + 1, apex, m.offset + 1, m.kind, "",
                                               m.emotion))
  sheets.write_samm_long_sheet(root / sheets.SAMM_LONG_SHEET, intervals)
  _save_plans(root, plans)
  (root / COMPLETE_MARKER).write_text(json.dumps(params))
  return root
