"""Face alignment for uncropped frames: landmarks -> eye-line rotation -> one face box per clip.

The alignment of a clip is estimated on its onset frame (a face at rest) and the same affine
transform is applied to every frame, so that the crop never jitters: frame-to-frame crop motion
would be larger than the micro-expression. Methods (`ALIGNMENTS`, `config.dataset.alignment`,
recorded in model.json's `preprocessing.alignment` so that predict repeats what training did):

- `landmarks`: dlib's 68-point shape predictor (`shape_predictor_68_face_landmarks.dat`, shipped by
  the `face-recognition-models` pip package; dlib from the `dlib-bin` wheels, numpy 2 compatible).
  The face rectangle comes from dlib's HOG detector, or from the Haar / skin detectors of
  `microexp.vision.face` when HOG misses. The frame is rotated about the eye midpoint so the line between
  the eye centres is horizontal, and the box is placed from the eyes and the chin (the CASME II
  framing, forehead to chin; `landmark_box`). Without dlib it falls back to `box` (logged once).
- `box`: one detector box (`microexp.vision.face.detect_face`, Haar then skin), no rotation.
- `none`: the whole frame (frames that are already face crops, like CASME II's `Cropped/`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import logging
import pathlib
from typing import Callable, Sequence

import cv2
import numpy as np

from microexp.vision import face as face_lib

ALIGNMENTS = ("landmarks", "box", "none")
# What predict does for a model.json that records no alignment (trained before the field existed,
# or on frames that were already face crops): one detector box, as predict always did.
DEFAULT_PREDICT_ALIGNMENT = "box"

LANDMARK_PACKAGE = "face_recognition_models"
LANDMARK_MODEL = "shape_predictor_68_face_landmarks.dat"
# 68-point (iBUG 300-W) indices: the eyes' contours and the chin.
LEFT_EYE, RIGHT_EYE, CHIN = slice(36, 42), slice(42, 48), 8

# Box from the landmarks in the levelled face, in units of the eye-to-chin distance D (eye midpoint
# to chin, vertical): top 0.82 D above the eyes, bottom 0.11 D below the chin, width 1.6 D centred
# on the eye midpoint. Measured like the Haar expansion (microexp/vision/face.py): dlib landmarks of 40
# synthetic faces pasted at a known box, +-0.08 / 0.05 / 0.09 between faces
# (`benchmarks/face_found_rate.py --calibrate`). Synthetic proportions: check on real crops.
BOX_TOP, BOX_BOTTOM, BOX_WIDTH = 0.82, 0.11, 1.6

# HOG detection runs on a copy at most this wide (SAMM frames are 2040 px); landmarks at full size.
DETECT_WIDTH = 640

Landmarks = np.ndarray  # float32 [68, 2] (x, y) px
LandmarkFn = Callable[[np.ndarray, "face_lib.Box | None"], "Landmarks | None"]

log = logging.getLogger(__name__)


class LandmarksUnavailable(ImportError):
  """dlib or the landmark model file is not installed."""


def landmark_model_path() -> pathlib.Path:
  """The 68-point model inside the installed `face-recognition-models` package (not imported:
  its __init__ needs setuptools' pkg_resources, which Python 3.12 venvs no longer carry)."""
  spec = importlib.util.find_spec(LANDMARK_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise LandmarksUnavailable(f"pip package 'face-recognition-models' is not installed (it ships "
                               f"{LANDMARK_MODEL}); see requirements.txt.")
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "models" / LANDMARK_MODEL
  if not path.is_file():
    raise LandmarksUnavailable(f"{path}: landmark model missing from the installed package.")
  return path


@functools.lru_cache(maxsize=1)
def _dlib_models():
  try:
    import dlib  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise LandmarksUnavailable(f"dlib is not importable ({e}); install the pinned 'dlib-bin' "
                               "wheel (requirements.txt).") from e
  return dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(str(landmark_model_path()))


def available() -> bool:
  """Whether the `landmarks` method can run here (dlib and the model file are installed)."""
  try:
    _dlib_models()
  except LandmarksUnavailable:
    return False
  return True


def hog_faces(frame: np.ndarray) -> list[face_lib.Box]:
  """dlib's HOG frontal-face detector on uint8 [H, W, 3] RGB; boxes (x, y, w, h), largest first.

  The frame is edge-padded by 15% first: tight face crops (CASME II's, SMIC's) leave the detector
  no margin (synthetic tight crops: 38/40 found without padding, 40/40 with it).
  """
  _, detector, _ = _dlib_models()
  height, width = frame.shape[:2]
  scale = min(1.0, DETECT_WIDTH / width)
  small = frame if scale == 1.0 else cv2.resize(
      frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
  pad = int(0.15 * max(small.shape[:2]))
  padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
  # Upsampling once finds faces down to ~40 px; only worth its cost on small frames.
  found = detector(np.ascontiguousarray(padded), 1 if max(small.shape[:2]) < 400 else 0)
  boxes = [(int(round((r.left() - pad) / scale)), int(round((r.top() - pad) / scale)),
            int(round(r.width() / scale)), int(round(r.height() / scale))) for r in found]
  return sorted(boxes, key=lambda b: -b[2] * b[3])


def landmarks(frame: np.ndarray, box: face_lib.Box | None = None) -> Landmarks | None:
  """68 landmarks of the largest face on uint8 [H, W, 3] RGB, float32 [68, 2]; None if no face.

  `box` (x, y, w, h) skips detection: the shape predictor fits inside it (e.g. a Haar box).
  """
  dlib, _, predictor = _dlib_models()
  if box is None:
    boxes = hog_faces(frame)
    if not boxes:
      return None
    box = boxes[0]
  x, y, w, h = box
  shape = predictor(np.ascontiguousarray(frame), dlib.rectangle(x, y, x + w, y + h))
  return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


def eye_centres(points: Landmarks) -> tuple[np.ndarray, np.ndarray]:
  """(left, right) eye centres [2] as seen in the image (mean of each eye's 6 contour points)."""
  points = np.asarray(points, np.float64)
  return points[LEFT_EYE].mean(0), points[RIGHT_EYE].mean(0)


def eye_angle(points: Landmarks) -> float:
  """Angle (degrees) of the eye line in image coordinates (y down): > 0 when the right eye is lower.
  Rotating the frame counter-clockwise by it (cv2.getRotationMatrix2D's sign) levels the eyes."""
  left, right = eye_centres(points)
  return float(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])))


def landmark_box(points: Landmarks) -> face_lib.Box:
  """Face box (x, y, w, h) from the landmarks of a *levelled* face (BOX_TOP, BOX_BOTTOM, ...)."""
  points = np.asarray(points, np.float64)
  left, right = eye_centres(points)
  eyes = (left + right) / 2
  reach = max(float(points[CHIN, 1] - eyes[1]), 1.0)
  top, bottom = eyes[1] - BOX_TOP * reach, points[CHIN, 1] + BOX_BOTTOM * reach
  width = BOX_WIDTH * reach
  return (int(round(eyes[0] - width / 2)), int(round(top)), int(round(width)),
          int(round(bottom - top)))


@dataclasses.dataclass(frozen=True)
class Alignment:
  """One transform for a whole clip: rotate by `angle` about `centre`, then crop `box`."""

  method: str  # what ran: 'landmarks', 'box' or 'none'
  angle: float  # degrees, counter-clockwise (cv2.getRotationMatrix2D)
  centre: tuple[float, float]  # rotation centre (x, y) px: the eye midpoint
  face: face_lib.FaceBox  # box (x, y, w, h) in the rotated frame and the detector that found it
  frame: int  # the frame it was estimated on (the onset)

  def matrix(self, size: tuple[int, int]) -> np.ndarray:
    """float64 [2, 3] affine map from frame pixels to crop pixels of size (height, width)."""
    height, width = size
    rotate = np.vstack([cv2.getRotationMatrix2D(self.centre, self.angle, 1.0), [0, 0, 1]])
    x, y, w, h = self.face.box
    crop = np.array([[width / w, 0, -x * width / w], [0, height / h, -y * height / h], [0, 0, 1]])
    return (crop @ rotate)[:2]

  def to_json(self) -> dict:
    return {"method": self.method, "angle": round(self.angle, 3),
            "centre": [round(c, 2) for c in self.centre], "face_box": list(self.face.box),
            "face_detector": self.face.detector, "frame": self.frame}


_WARNED: list[bool] = []


def estimate(frames: np.ndarray, *, method: str = "landmarks", start: int = 0,
             num_frames: int = 5, detectors: Sequence[str] = face_lib.DEFAULT_DETECTORS,
             landmark_fn: LandmarkFn | None = None) -> Alignment:
  """The clip's alignment, from frame `start` (the onset; the next frames if no face there).

  Args:
    frames: uint8 [T, H, W, 3] RGB.
    method: one of ALIGNMENTS.
    start, num_frames: frames looked at (`landmarks`: the first with a face; `box`: median box).
    detectors: `microexp.vision.face` detectors: the `box` method, and the face rectangle for landmarks
      when dlib's HOG detector misses.
    landmark_fn: `(frame, box or None) -> [68, 2] or None`; default `landmarks` (dlib). Tests
      inject known landmarks through it.

  Raises:
    face.NoFaceError: no detector found a face.
  """
  if method not in ALIGNMENTS:
    raise ValueError(f"Unknown alignment {method!r}; choose one of {ALIGNMENTS}.")
  frames = np.asarray(frames)
  start = int(np.clip(start, 0, len(frames) - 1))
  if method == "none":
    box = face_lib.detect_face(frames, start=start, detectors=["none"])
    return Alignment("none", 0.0, (0.0, 0.0), box, start)
  if method == "landmarks" and landmark_fn is None:
    try:
      _dlib_models()
      landmark_fn = landmarks
    except LandmarksUnavailable as e:
      if not _WARNED:
        log.warning("Landmark alignment unavailable (%s); falling back to the %s face box "
                    "without rotation.", e, list(detectors))
        _WARNED.append(True)
      method = "box"
  if method == "box":
    box = face_lib.detect_face(frames, start=start, num_frames=num_frames, detectors=detectors)
    return Alignment("box", 0.0, (0.0, 0.0), box, start)
  for t in range(start, min(len(frames), start + max(1, num_frames))):
    points, detector = landmark_fn(frames[t], None), "dlib-hog"
    if points is None:
      # HOG missed: fit the landmarks inside the Haar / skin box of this frame.
      try:
        fallback = face_lib.detect_face(frames, start=t, num_frames=1, detectors=detectors)
      except face_lib.NoFaceError:
        continue
      points, detector = landmark_fn(frames[t], fallback.box), f"dlib-in-{fallback.detector}"
    if points is None:
      continue
    angle = eye_angle(points)
    left, right = eye_centres(points)
    centre = tuple(float(c) for c in (left + right) / 2)
    rotate = cv2.getRotationMatrix2D(centre, angle, 1.0)
    levelled = np.asarray(points, np.float64) @ rotate[:, :2].T + rotate[:, 2]
    return Alignment("landmarks", angle, centre,
                     face_lib.FaceBox(landmark_box(levelled), detector, 1), t)
  raise face_lib.NoFaceError(
      f"No face found on frames {start}..{start + num_frames - 1} with dlib's HOG detector or "
      f"{list(detectors)}. Check that the face is frontal and visible, or pass --detector=center "
      "(face roughly centred) or --detector=none (input already cropped to the face).")


def apply(frames: np.ndarray, alignment: Alignment, size: int | tuple[int, int]) -> np.ndarray:
  """The aligned face crops of every frame: uint8 [T, H, W, C] -> uint8 [T, size_h, size_w, C].

  No rotation: exactly `face.crop` (edge padding outside the frame). With one: a single affine
  warp per frame (edge pixels replicated outside), after an area shrink when the box is much larger
  than the crop (a 1000 px SAMM face to 280 px), so that fine texture does not alias.
  """
  height, width = (size, size) if isinstance(size, int) else size
  frames = np.asarray(frames)
  if alignment.angle == 0.0:
    return face_lib.crop(frames, alignment.face.box, (height, width))
  matrix = alignment.matrix((height, width))
  scale = min(width / alignment.face.box[2], height / alignment.face.box[3])
  shrink = min(1.0, 2 * scale)  # leave a factor <= 2 to the warp's bilinear sampling
  out = []
  for frame in frames:
    if shrink < 1.0:
      frame = cv2.resize(frame, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    m = matrix @ np.diag([1 / shrink, 1 / shrink, 1.0]) if shrink < 1.0 else matrix
    out.append(cv2.warpAffine(frame, m, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE))
  return np.stack(out).reshape(len(frames), height, width, -1)


def align_clip(frames: np.ndarray, size: int | tuple[int, int], *, method: str = "landmarks",
               onset: int = 0, detectors: Sequence[str] = face_lib.DEFAULT_DETECTORS,
               ) -> tuple[np.ndarray, Alignment]:
  """Aligns a clip on its onset frame: (uint8 crops [T, size_h, size_w, C], the Alignment).

  frames: uint8 [T, H, W, 3] RGB, or gray [T, H, W] / [T, H, W, 1] (the crops keep that shape).
  """
  frames = np.asarray(frames)
  shape = frames.shape
  frames = frames.reshape(shape[:3] + (-1,))
  rgb = np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames
  alignment = estimate(rgb, method=method, start=onset, detectors=detectors)
  crops = apply(frames, alignment, size)
  return crops.reshape(crops.shape[:3] + shape[3:]), alignment


def align_pair(onset: np.ndarray, apex: np.ndarray, size: int | tuple[int, int], *,
               method: str = "landmarks",
               detectors: Sequence[str] = face_lib.DEFAULT_DETECTORS) -> tuple[np.ndarray, ...]:
  """A builder's onset / apex frames [H, W, 3] -> aligned crops [size_h, size_w, 3] (onset box)."""
  crops, _ = align_clip(np.stack([onset, apex]), size, method=method, detectors=detectors)
  return crops[0], crops[1]


# Batch builders (TFDS apex-flow builders, the MEGC composite): faces wider than this are shrunk
# before the flow (its cost; the stored flow is small).
WORK_WIDTH = 256


def estimate_clip(frames: np.ndarray, method: str, *, start: int = 0,
                  detectors: Sequence[str] = face_lib.DEFAULT_DETECTORS) -> Alignment:
  """`estimate` on frame `start` only, for builders that must not stop on one clip: when no face is
  found the central box is used (method 'box', detector 'center'; counted in the build log)."""
  try:
    return estimate(frames, method=method, start=start, num_frames=1, detectors=detectors)
  except face_lib.NoFaceError:
    return estimate(frames, method="box", start=start, num_frames=1, detectors=["center"])


def align_for_flow(pair: np.ndarray, method: str, *, work_width: int = WORK_WIDTH,
                   detectors: Sequence[str] = face_lib.DEFAULT_DETECTORS,
                   ) -> tuple[np.ndarray, Alignment]:
  """Onset / apex uint8 [2, H, W, 3] RGB -> (aligned crops [2, h, w, 3] with w <= work_width, the
  Alignment estimated on the onset, `estimate_clip`): one transform for both frames."""
  alignment = estimate_clip(pair, method, detectors=detectors)
  return apply(pair, alignment, work_size(alignment.face.box, work_width)), alignment


def work_size(box, work_width: int = WORK_WIDTH) -> tuple[int, int]:
  """(h, w) of the crop the batch builders compute flow on: the face box (x, y, w, h) shrunk to at
  most `work_width` px wide, aspect kept (predict repeats it: model.json's `work_width`)."""
  _, _, width, height = box
  shrink = min(1.0, work_width / width)
  return max(8, round(height * shrink)), max(8, round(width * shrink))
