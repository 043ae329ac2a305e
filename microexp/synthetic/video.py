"""Synthetic test videos: a face with a planted micro-expression, and a long recording with
planted micro and macro events (ground truth returned), written as .mp4."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from microexp.synthetic import casme2 as synthetic
from microexp.vision import video


@dataclasses.dataclass(frozen=True)
class SyntheticVideo:
  """What `write_synthetic_video` planted: ground truth for tests and demos."""

  path: pathlib.Path
  emotion: str
  onset: int
  apex: int
  face_box: tuple[int, int, int, int]  # x, y, w, h of the pasted face in the frame
  fps: float


def write_synthetic_video(path: str | pathlib.Path, *, emotion: str = "happiness",
                          num_frames: int = 48, onset: int = 12, apex: int = 30,
                          frame_size: tuple[int, int] = (288, 384),
                          face_size: tuple[int, int] = (204, 168), intensity: float = 1.2,
                          fps: float = 30.0, seed: int = 0) -> SyntheticVideo:
  """Writes an .mp4 of a synthetic face (microexp.synthetic.casme2) with a planted micro-expression.

  Frames 0..onset are neutral (head jitter and sensor noise only); the expression rises from the
  onset to its peak at `apex` and decays (`synthetic.render_clip`). The face is pasted at a random
  place in a larger frame over a textured background, so face detection has work to do.

  Args:
    path: output .mp4.
    emotion: planted emotion (a CASME II emotion with a synthetic motion).
    num_frames, onset, apex: clip length and the planted onset / apex frames (0 <= onset < apex).
    frame_size, face_size: (H, W) of the video and of the pasted face.
    intensity: peak motion (1.0 = the synthetic CASME II's mean).
    fps: frame rate written in the file.
    seed: face identity, placement, noise.

  Returns:
    SyntheticVideo with the planted ground truth.
  """
  if not 0 <= onset < apex < num_frames:
    raise ValueError(f"Need 0 <= onset ({onset}) < apex ({apex}) < num_frames ({num_frames}).")
  rng = np.random.default_rng(seed)
  face = synthetic.make_face(rng, face_size)
  # intensity 0: the neutral lead-in with the same jitter and noise as the expression.
  lead = (synthetic.render_clip(face, emotion, onset + 1, 1, 0.0, rng)[:onset] if onset else
          np.zeros((0,) + tuple(face_size) + (3,), np.uint8))
  clip = synthetic.render_clip(face, emotion, num_frames - onset, apex - onset, intensity, rng)
  faces = np.concatenate([lead, clip])
  frames, box = _paste(faces, frame_size, rng)
  video.write_video(path, frames, fps)
  return SyntheticVideo(pathlib.Path(path), emotion, onset, apex, box, fps)


def _paste(faces: np.ndarray, frame_size: tuple[int, int],
           rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
  """Faces uint8 [T, h, w, 3] pasted at a random place over a textured background of frame_size
  (H, W): (frames uint8 [T, H, W, 3], the face box (x, y, w, h))."""
  (height, width), (face_h, face_w) = frame_size, faces.shape[1:3]
  if face_h > height or face_w > width:
    raise ValueError(f"face_size {(face_h, face_w)} does not fit in frame_size {frame_size}.")
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
  pattern = 30 * np.sin(xx / rng.uniform(15, 40)) * np.cos(yy / rng.uniform(15, 40))
  background = 100 + pattern[..., None] + rng.uniform(-20, 20, 3)  # [H, W, 3]
  frames = np.repeat(np.clip(background, 0, 255).astype(np.uint8)[None], len(faces), axis=0)
  y0, x0 = int(rng.integers(0, height - face_h + 1)), int(rng.integers(0, width - face_w + 1))
  frames[:, y0:y0 + face_h, x0:x0 + face_w] = faces
  return frames, (x0, y0, face_w, face_h)


@dataclasses.dataclass(frozen=True)
class PlantedEvent:
  """One planted movement of a synthetic long video (frames, inclusive)."""

  emotion: str
  onset: int
  apex: int
  offset: int
  kind: str  # 'micro' (<= 0.5 s) or 'macro'


@dataclasses.dataclass(frozen=True)
class SyntheticLongVideo:
  """What `write_synthetic_long_video` planted."""

  path: pathlib.Path
  events: tuple[PlantedEvent, ...]
  num_frames: int
  face_box: tuple[int, int, int, int]
  fps: float

  def of_kind(self, kind: str) -> list[PlantedEvent]:
    return [e for e in self.events if e.kind == kind]


# (emotion, start s, duration s, intensity): four micro-expressions and one macro-expression
# (a 2 s smile, 4x stronger: rise 0.5 s, hold 1 s, fall 0.5 s).
DEFAULT_LONG_EVENTS = (("surprise", 1.2, 0.4, 1.6), ("happiness", 3.0, 0.4, 2.6),
                       ("happiness", 5.0, 2.0, 6.0), ("disgust", 8.0, 0.35, 2.4),
                       ("surprise", 10.0, 0.45, 1.6))
MICRO_MAX_DURATION = 0.5  # s: the usual upper bound of a micro-expression


def _event_profile(num_frames: int, onset: int, offset: int, macro: bool) -> np.ndarray:
  """[T] strength 0..1: sin^2 rise, (macro: hold), sin^2 fall back to 0 at `offset`."""
  t = np.arange(num_frames, dtype=np.float64)
  span = max(offset - onset, 2)
  rise_end = onset + (0.25 if macro else 0.45) * span
  fall_start = onset + (0.75 if macro else 0.45) * span
  rise = np.clip((t - onset) / max(rise_end - onset, 1), 0, 1)
  fall = np.clip((t - fall_start) / max(offset - fall_start, 1), 0, 1)
  return (np.sin(0.5 * np.pi * rise) ** 2 * np.cos(0.5 * np.pi * fall) ** 2).astype(np.float32)


def write_synthetic_long_video(path: str | pathlib.Path, *, events=DEFAULT_LONG_EVENTS,
                               duration: float = 12.0, fps: float = 30.0,
                               frame_size: tuple[int, int] = (288, 384),
                               face_size: tuple[int, int] = (204, 168), noise: float = 2.0,
                               seed: int = 0) -> SyntheticLongVideo:
  """Writes an .mp4 of a synthetic face at rest with several planted movements (spotting tests).

  Each event (emotion, start s, duration s, intensity) moves the emotion's facial regions
  (`synthetic.EMOTION_MOTIONS`) and comes back to rest by its end; one lasting <= 0.5 s is a
  'micro' event with its apex 45% in, a longer one a 'macro' event (rise, hold, fall). Head
  jitter and sensor noise as in `write_synthetic_video`; the face is pasted at a random place.

  Returns:
    SyntheticLongVideo with every planted event in frames.
  """
  import cv2  # pylint: disable=g-import-not-at-top

  num_frames = int(round(duration * fps))
  rng = np.random.default_rng(seed)
  face = synthetic.make_face(rng, face_size)
  h, w = face_size
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  moves, planted = [], []  # (profile [T], apex displacement field [h, w, 2]) per event
  for emotion, start, length, intensity in events:
    onset = int(round(start * fps))
    offset = min(num_frames - 1, int(round((start + length) * fps)))
    if not 0 <= onset < offset:
      raise ValueError(f"Event {emotion!r} at {start} s for {length} s is outside the "
                       f"{duration} s video.")
    macro = length > MICRO_MAX_DURATION
    profile = _event_profile(num_frames, onset, offset, macro)
    moves.append((profile, synthetic.motion_field(face, synthetic.EMOTION_MOTIONS[emotion],
                                                  intensity)))
    planted.append(PlantedEvent(emotion, onset, int(np.argmax(profile)), offset,
                                "macro" if macro else "micro"))
  jitter_px = 0.03 * synthetic.MOTION_SCALE * face.half_width
  jitter = np.cumsum(rng.normal(0, jitter_px, (num_frames, 2)), axis=0).astype(np.float32)
  faces = np.empty((num_frames, h, w, 3), np.uint8)
  for t in range(num_frames):
    field = sum((profile[t] * move for profile, move in moves if profile[t] > 0),
                np.zeros((h, w, 2), np.float32))
    frame = cv2.remap(face.image, xx - field[..., 0] - jitter[t, 0],
                      yy - field[..., 1] - jitter[t, 1], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REFLECT)
    frame += np.float32(noise) * rng.standard_normal(frame.shape, dtype=np.float32)
    faces[t] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
  frames, box = _paste(faces, frame_size, rng)
  video.write_video(path, frames, fps)
  return SyntheticLongVideo(pathlib.Path(path), tuple(planted), num_frames, box, float(fps))


def main(argv) -> None:
  """`python -m microexp.synthetic.video --synthetic=OUT.mp4 [--emotion=surprise]`: a demo video to predict."""
  del argv
  from absl import flags  # pylint: disable=g-import-not-at-top

  f = flags.FLAGS
  video = write_synthetic_video(f.synthetic, emotion=f.emotion, seed=f.seed)
  print(f"Wrote {video.path}: '{video.emotion}' planted, onset frame {video.onset}, "
        f"apex frame {video.apex}, face box (x, y, w, h) {video.face_box}.")


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string("synthetic", None, "Output .mp4 of a synthetic face with a planted "
                      "micro-expression.", required=True)
  flags.DEFINE_string("emotion", "surprise", "Planted emotion (a CASME II emotion).")
  flags.DEFINE_integer("seed", 0, "Face identity, placement and noise.")
  app.run(main)
