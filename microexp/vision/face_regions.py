"""Facial regions of a 28x28 flow image (HTNet): landmarks -> region centres -> a 2x2 region mosaic.

HTNet (Wang et al. 2024) looks at four 14x14 regions of the 28x28 onset->apex flow, around the left
eye, the right eye and the two mouth corners, tiled into one 28x28 mosaic
`[[left eye, right eye], [left mouth corner, right mouth corner]]`. Its release finds five
landmarks (MTCNN: eyes, nose, mouth corners) on the apex face crop resized to 28x28
(`combined_datasets_whole/<imagename>.jpg`), clamps them to 7..21 so that each 14x14 crop fits,
and falls back to fixed mean-face landmarks when no face is found.

Landmarks here come from a pluggable `landmarker` (`image [H, W, 3] uint8 RGB -> {name: (x, y)}`
in image pixels). The default, `box_landmarks`, finds the face box (`microexp.vision.face`: Haar cascade,
then skin colour, else the whole crop, which *is* a face crop) and places the landmarks at the
mean-face proportions of that box. A landmark aligner plugs in as another `landmarker`.

Mean face (`MEAN_FACE_LANDMARKS`): the release's own fallback, in px of the 28x28 MTCNN face crop
(left eye (9.53, 11.06), right eye (21.40, 10.92), nose (15.38, 17.38), mouth corners
(10.26, 22.12), (20.58, 22.26)). They are MTCNN landmarks of a face framed by MTCNN's box with no
margin — the framing of the release's crops and flow images — so they are the best prior we have
for where the regions lie when no crop (or no face) is available; as proportions of a face box
they also place the landmarks inside a detected box.

One deliberate difference: the release indexes the flow image as `flow[x - 7:x + 7, y - 7:y + 7]`
(rows by the landmark's x), i.e. it crops the regions of the *transposed* landmarks, and tiles
[0, 1] over [3, 4] (left eye, right eye over left mouth corner, right mouth corner in MTCNN order).
Here rows are y and columns x, so each crop holds the region its name says.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

LANDMARKS = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
REGIONS = ("left_eye", "right_eye", "left_mouth", "right_mouth")  # mosaic order, row-major
MEAN_FACE_SIZE = 28
MEAN_FACE_LANDMARKS = {  # (x, y) px in a 28x28 face crop: the HTNet release's fallback
    "left_eye": (9.528073, 11.062551), "right_eye": (21.396168, 10.919773),
    "nose": (15.380184, 17.380562), "left_mouth": (10.255435, 22.121233),
    "right_mouth": (20.583706, 22.25584)}
REGION_SIZE = 14

Landmarker = Callable[[np.ndarray], Mapping[str, tuple[float, float]]]


def box_landmarks(image: np.ndarray, detectors=("haar", "skin")) -> dict[str, tuple[float, float]]:
  """Face box (first detector that finds one, else the whole image) x mean-face proportions.

  image: uint8 [H, W, 3] RGB, a face crop. Returns {landmark: (x, y)} in image px.
  """
  from microexp.vision import face  # pylint: disable=g-import-not-at-top

  try:
    x, y, w, h = face.detect_face(image[None], num_frames=1, detectors=detectors).box
  except face.NoFaceError:
    x, y, (h, w) = 0, 0, image.shape[:2]
  return {name: (x + w * px / MEAN_FACE_SIZE, y + h * py / MEAN_FACE_SIZE)
          for name, (px, py) in MEAN_FACE_LANDMARKS.items()}


def centres_from_landmarks(landmarks: Mapping[str, tuple[float, float]], image_shape,
                           size: int = MEAN_FACE_SIZE,
                           region_size: int = REGION_SIZE) -> np.ndarray:
  """Landmarks (x, y) in an image of `image_shape` (H, W, ...) -> region centres int [4, 2]
  (row, col) in the `size` x `size` flow, clamped so that every `region_size` crop fits."""
  h, w = image_shape[:2]
  half = region_size // 2
  centres = [(landmarks[name][1] * size / h, landmarks[name][0] * size / w) for name in REGIONS]
  return np.clip(np.round(np.array(centres)), half, size - half).astype(np.int32)


MEAN_FACE_CENTRES = centres_from_landmarks(MEAN_FACE_LANDMARKS, (MEAN_FACE_SIZE, MEAN_FACE_SIZE))


def region_centres(face_crop: np.ndarray | None, *, landmarker: Landmarker = box_landmarks,
                   size: int = MEAN_FACE_SIZE) -> tuple[np.ndarray, str]:
  """Region centres int [4, 2] (row, col) in the `size` flow, and where they came from.

  face_crop: the apex face crop uint8 [H, W, 3] RGB with the flow's framing, or None (-> the mean
  face, source 'mean_face'). Otherwise the source is the landmarker's name.
  """
  if face_crop is None:
    return centres_from_landmarks(MEAN_FACE_LANDMARKS, (MEAN_FACE_SIZE,) * 2, size), "mean_face"
  landmarks = landmarker(face_crop)
  missing = [n for n in REGIONS if n not in landmarks]
  if missing:
    raise ValueError(f"Landmarker {getattr(landmarker, '__name__', landmarker)!r} returned no "
                     f"{missing}; it must return (x, y) for {REGIONS}.")
  return (centres_from_landmarks(landmarks, face_crop.shape, size),
          getattr(landmarker, "__name__", "landmarker"))


def region_boxes(centres, frame: tuple[int, int],
                 region_size: int = REGION_SIZE) -> list[tuple[int, int, int, int]]:
  """(row0, row1, col0, col1) of each region; raises if one leaves the `frame` (H, W)."""
  half = region_size // 2
  boxes = []
  for name, (r, c) in zip(REGIONS, np.asarray(centres).tolist()):
    box = (int(r) - half, int(r) - half + region_size, int(c) - half, int(c) - half + region_size)
    if box[0] < 0 or box[2] < 0 or box[1] > frame[0] or box[3] > frame[1]:
      raise ValueError(f"Region {name} centred at (row {r}, col {c}) does not fit a "
                       f"{region_size}px crop in a {frame[0]}x{frame[1]} image.")
    boxes.append(box)
  if len(boxes) != len(REGIONS):
    raise ValueError(f"Expected {len(REGIONS)} region centres {REGIONS}, got {len(boxes)}.")
  return boxes


def region_mosaic(flow: np.ndarray, centres, region_size: int = REGION_SIZE) -> np.ndarray:
  """flow [H, W, C] -> [2 * region_size, 2 * region_size, C]: the four regions tiled 2x2."""
  crops = [flow[r0:r1, c0:c1] for r0, r1, c0, c1 in region_boxes(centres, flow.shape[:2],
                                                                 region_size)]
  return np.concatenate([np.concatenate(crops[:2], 1), np.concatenate(crops[2:], 1)], 0)


def region_mosaics(flows: np.ndarray, centres: np.ndarray,
                   region_size: int = REGION_SIZE) -> np.ndarray:
  """flows [N, H, W, C], centres [N, 4, 2] -> [N, 2 * region_size, 2 * region_size, C]."""
  return np.stack([region_mosaic(f, c, region_size) for f, c in zip(flows, centres)])
