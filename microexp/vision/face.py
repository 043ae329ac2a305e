"""Face detection and cropping: one stable box per clip, cropped and resized like the training faces.

Detectors are a registry (`register`, `get`, `names`): a detector maps one RGB frame to candidate
boxes `(x, y, w, h)` that frame the face the way CASME II's cropped images do (forehead to chin).

- `haar`: OpenCV's frontal-face Haar cascade (shipped in `cv2.data.haarcascades`); its square
  stops short of the hairline and the chin, so it is made 20% taller (the CASME II framing).
- `skin`: bounding box of the largest face-shaped skin-coloured region (YCrCb range of Chai & Ngan
  1999). A fallback for faces the cascade misses (profile-ish, low contrast); coarser framing.
- `center`: the central square of the frame (a face filmed straight on, roughly centred).
- `none`: the whole frame (input that is already a cropped face, like CASME II's `Cropped/`).

`detect_face` runs detectors in order until one finds a face on the first frames of the clip and
takes the per-coordinate median box, so that one box holds for the whole clip: the micro-movement
must not be swamped by a jittering crop.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import cv2
import numpy as np

from microexp.registry import Registry

Box = tuple[int, int, int, int]  # x, y, w, h in pixels
Detector = Callable[[np.ndarray], list[Box]]

_DETECTORS = Registry("face detector")

# Detectors tried by default, in order.
DEFAULT_DETECTORS = ("haar", "skin")


class NoFaceError(ValueError):
  """No detector found a face; the message says which were tried and what to do."""


def register(name: str):
  """Decorator: registers `detector(frame [H, W, 3] uint8 RGB) -> list[Box]` under `name`."""
  return _DETECTORS.register(name)


def get(name: str) -> Detector:
  return _DETECTORS.get(name)


def names() -> list[str]:
  return _DETECTORS.names()


def _expand(box: Box, left_right: float, top: float, bottom: float) -> Box:
  x, y, w, h = box
  return (int(round(x - left_right * w)), int(round(y - top * h)),
          int(round(w * (1 + 2 * left_right))), int(round(h * (1 + top + bottom))))


_CASCADE: list[cv2.CascadeClassifier] = []


def _cascade() -> cv2.CascadeClassifier:
  if not _CASCADE:
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
      raise RuntimeError(f"{path}: Haar cascade missing or unreadable; install "
                         "opencv-contrib-python-headless 4.x (OpenCV 5 wheels ship no cascades).")
    _CASCADE.append(cascade)
  return _CASCADE[0]


@register("haar")
def haar(frame: np.ndarray) -> list[Box]:
  """Frontal-face Haar cascade, boxes widened from brows-to-mouth to forehead-to-chin."""
  gray = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
  min_side = max(24, min(gray.shape) // 10)
  found = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                      minSize=(min_side, min_side))
  # The cascade's square spans the face's width from the forehead to just above the chin; CASME II
  # crops are ~20% taller. Measured on 12 synthetic faces pasted at a known box: the raw square's
  # top is 0.105 +- 0.03 of its side below the crop's, its bottom 0.102 +- 0.02 above it, its
  # sides within 0.02 (tests/predict/test_face.py checks the overlap).
  return [_expand(tuple(int(v) for v in b), 0.0, 0.1, 0.1) for b in found]


@register("skin")
def skin(frame: np.ndarray) -> list[Box]:
  """Largest skin-coloured connected region with a face-like shape (YCrCb thresholds)."""
  ycrcb = cv2.cvtColor(frame, cv2.COLOR_RGB2YCrCb)
  mask = cv2.inRange(ycrcb, (0, 133, 77), (255, 173, 127))
  kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
  mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
  mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
  contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
  min_area = 0.005 * frame.shape[0] * frame.shape[1]
  boxes = []
  for contour in sorted(contours, key=cv2.contourArea, reverse=True):
    if cv2.contourArea(contour) < min_area or len(contour) < 5:
      continue
    x, y, w, h = cv2.boundingRect(contour)
    # Faces are roughly as tall as wide (an arm or a wall patch is not).
    if 0.6 <= h / w <= 2.0:
      boxes.append((x, y, w, h))
  return boxes


@register("center")
def center(frame: np.ndarray) -> list[Box]:
  """The central square of the frame, 80% of the shorter side."""
  height, width = frame.shape[:2]
  side = int(0.8 * min(height, width))
  return [((width - side) // 2, (height - side) // 2, side, side)]


@register("none")
def whole_frame(frame: np.ndarray) -> list[Box]:
  """The whole frame: the input is already a cropped face."""
  return [(0, 0, frame.shape[1], frame.shape[0])]


@dataclasses.dataclass(frozen=True)
class FaceBox:
  """One box for a whole clip and the detector that found it."""

  box: Box
  detector: str
  num_detected: int  # frames (of those tried) on which the detector found a face


def _largest(boxes: list[Box]) -> Box:
  return max(boxes, key=lambda b: b[2] * b[3])


def detect_face(frames: np.ndarray, *, start: int = 0, num_frames: int = 5,
                detectors: Sequence[str] = DEFAULT_DETECTORS) -> FaceBox:
  """Finds one face box for the clip.

  Args:
    frames: uint8 [T, H, W, 3] RGB.
    start: first frame to look at (the onset when it is known).
    num_frames: frames looked at from `start`; the per-coordinate median of the largest box on
      each frame is returned.
    detectors: names tried in order; the first that finds a face on any of those frames wins.

  Raises:
    NoFaceError: no detector found a face.
  """
  frames = np.asarray(frames)
  start = int(np.clip(start, 0, len(frames) - 1))
  window = frames[start:start + max(1, num_frames)]
  for name in detectors:
    detector = get(name)
    found = [b for b in (detector(f) for f in window) if b]
    if found:
      median = np.median(np.array([_largest(b) for b in found]), axis=0)
      return FaceBox(tuple(int(round(v)) for v in median), name, len(found))
  raise NoFaceError(
      f"No face found on frames {start}..{start + len(window) - 1} with detectors "
      f"{list(detectors)}. Check that the face is frontal and visible, or pass --detector=center "
      "(face roughly centred) or --detector=none (input already cropped to the face).")


def crop(frames: np.ndarray, box: Box, size: int | tuple[int, int]) -> np.ndarray:
  """Crops `box` from every frame (padding with edge pixels outside) and resizes it.

  Args:
    frames: uint8 [T, H, W, C].
    box: (x, y, w, h); may reach outside the frame.
    size: output side, or (height, width).

  Returns:
    uint8 [T, size_h, size_w, C].
  """
  height, width = (size, size) if isinstance(size, int) else size
  x, y, w, h = box
  frame_h, frame_w = frames.shape[1:3]
  pad = max(0, -x, -y, x + w - frame_w, y + h - frame_h)
  if pad:
    frames = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
  patch = frames[:, y + pad:y + pad + h, x + pad:x + pad + w]
  return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
                   for f in patch]).reshape(len(frames), height, width, -1)
