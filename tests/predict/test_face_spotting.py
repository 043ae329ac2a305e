"""Face detection on the synthetic video, crops, and onset / apex spotting against planted truth."""

from __future__ import annotations

import numpy as np
import pytest

from microexp.vision import face
from microexp.vision import flow as flow_lib
from microexp.vision import spotting
from microexp.vision import video
from microexp.synthetic import video as synthetic_video

# (seed, emotion, onset, apex): different faces, placements and motions.
CASES = [(1, "happiness", 10, 27), (2, "surprise", 6, 22), (4, "disgust", 14, 33)]


@pytest.fixture(scope="module", params=CASES, ids=[c[1] for c in CASES])
def clip(request, tmp_path_factory):
  seed, emotion, onset, apex = request.param
  path = tmp_path_factory.mktemp("spot") / f"{emotion}.mp4"
  info = synthetic_video.write_synthetic_video(path, emotion=emotion, num_frames=44, onset=onset, apex=apex,
                                     seed=seed)
  frames, _ = video.read_video(path)
  return info, frames


def _iou(a, b):
  ax, ay, aw, ah = a
  bx, by, bw, bh = b
  w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
  h = max(0, min(ay + ah, by + bh) - max(ay, by))
  return w * h / (aw * ah + bw * bh - w * h)


def test_haar_finds_the_synthetic_face(clip):
  info, frames = clip
  found = face.detect_face(frames)
  assert found.detector == "haar"
  # The calibrated Haar box frames the face like the training crop.
  assert _iou(found.box, info.face_box) > 0.8, (found.box, info.face_box)


def test_spotted_apex_near_planted(clip):
  info, frames = clip
  box = face.detect_face(frames).box
  spotted = spotting.spot(spotting.to_gray(face.crop(frames, box, (170, 140))))
  # A rest frame: before the planted onset, or within 2 frames after it, where the planted
  # profile (sin^2 rise over onset..apex) is still below 2% of the apex motion.
  assert spotted.onset <= info.onset + 2, (spotted.onset, info.onset)
  assert abs(spotted.apex - info.apex) <= 3, (spotted.apex, info.apex)
  assert spotted.motion[spotted.apex] > 3 * spotted.motion[:info.onset + 1].max()


def test_spot_overrides(clip):
  _, frames = clip
  gray = spotting.to_gray(frames[:, ::4, ::4])
  both = spotting.spot(gray, onset=2, apex=7)
  assert (both.onset, both.apex) == (2, 7)
  assert spotting.spot(gray, onset=3).onset == 3
  with pytest.raises(ValueError, match="outside the clip"):
    spotting.spot(gray, apex=len(gray))


def test_no_face_is_a_clear_error():
  rng = np.random.default_rng(0)
  noise = rng.integers(0, 40, (3, 120, 160, 3)).astype(np.uint8)  # dark noise: no face, no skin
  with pytest.raises(face.NoFaceError, match="No face found.*--detector"):
    face.detect_face(noise)
  # 'none' is the documented escape hatch for already-cropped input.
  assert face.detect_face(noise, detectors=["none"]).box == (0, 0, 160, 120)


def test_unknown_detector():
  with pytest.raises(ValueError, match="registered"):
    face.get("dlib")


def test_crop_pads_outside_and_resizes():
  frames = np.arange(2 * 10 * 10 * 3, dtype=np.uint8).reshape(2, 10, 10, 3)
  out = face.crop(frames, (-2, -2, 8, 6), (12, 16))
  assert out.shape == (2, 12, 16, 3)
  inside = face.crop(frames, (2, 3, 4, 5), (5, 4))
  np.testing.assert_array_equal(inside, frames[:, 3:8, 2:6])


def test_spot_intervals_finds_two_events():
  """Two planted movements in a long still recording -> two candidates at the right places."""
  rng = np.random.default_rng(0)
  from microexp.synthetic import casme2 as synthetic  # pylint: disable=g-import-not-at-top
  neutral = synthetic.make_face(rng, (80, 64))
  still = synthetic.render_clip(neutral, "happiness", 90, 1, 0.0, rng)
  events = {25: "surprise", 65: "surprise"}
  frames = still.copy()
  for apex, emotion in events.items():
    # A 15-frame movement: rises to its apex and comes back (profile 1 -> back to 0.2).
    clip = synthetic.render_clip(neutral, emotion, 15, 7, 2.0, rng)
    frames[apex - 7:apex + 8] = clip
  intervals, curve, level = spotting.spot_intervals(spotting.to_gray(frames, None), fps=30,
                                                    max_duration=0.4)
  apexes = sorted(i.apex for i in intervals)
  assert len(apexes) == 2, intervals
  assert all(abs(a - b) <= 4 for a, b in zip(apexes, sorted(events))), apexes
  assert all(i.onset < i.apex < i.offset for i in intervals)
  assert curve.max() > level > 0


def test_face_motions_on_threads_equal_the_serial_values(monkeypatch):
  """`face_motions` on a thread per core gives face_motion's values bit for bit, in order, and
  so do the curves built on it (spot, contrast_curve, event_extent)."""
  rng = np.random.default_rng(3)
  from microexp.synthetic import casme2 as synthetic  # pylint: disable=g-import-not-at-top
  frames = synthetic.render_clip(synthetic.make_face(rng, (80, 64)), "surprise", 40, 20, 2.0, rng)
  gray = spotting.to_gray(frames, None)
  pairs = [(0, t) for t in range(1, 40)] + [(t, t - 1) for t in range(39, 0, -3)]
  serial = np.array([spotting.face_motion(gray[a], gray[b]) for a, b in pairs])
  outputs = {}
  for workers in (1, 3):
    monkeypatch.setattr(flow_lib, "thread_workers", lambda w=workers: w)
    np.testing.assert_array_equal(spotting.face_motions(gray, pairs), serial)
    found = spotting.spot(gray)
    outputs[workers] = (found.onset, found.apex, found.motion, found.frame_motion,
                        spotting.contrast_curve(gray, 4), spotting.event_extent(gray, 20, 2))
  for one, three in zip(outputs[1], outputs[3]):
    np.testing.assert_array_equal(one, three)
  assert outputs[1][1] > outputs[1][0]  # the apex follows the onset
  assert spotting.face_motions(gray, []).shape == (0,)
