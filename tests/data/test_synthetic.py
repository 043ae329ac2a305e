"""Synthetic CASME II: layout, quirks, caching, and that classes live in the motion only."""

from __future__ import annotations

import collections
import json

import cv2
import numpy as np
import openpyxl
import pytest

from microexp.data import casme2, emotions
from microexp.data import casme2_sheet
from microexp.synthetic import casme2 as synthetic


def test_fixture_has_layout_and_sheet_quirks(synthetic_casme2_root):
  root = synthetic_casme2_root
  assert (root / synthetic.COMPLETE_MARKER).is_file()
  sheet = root / "CASME2-coding-20140508.xlsx"
  ws = openpyxl.load_workbook(sheet)["Sheet1"]
  rows = list(ws.iter_rows(values_only=True))
  assert rows[0] == ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", None,
                     "Action Units", "Estimated Emotion")
  cells = list(zip(*rows[1:]))
  assert {type(v) for v in cells[0]} == {int, str}  # 1 and '02'
  assert "/" in cells[3]
  assert {"EP01_2", "EP09f", "EP06_02_01"} <= set(cells[1])
  assert any(isinstance(v, int) for v in cells[6]) and "4+L10" in cells[6] and "?" in cells[6]

  records, report = casme2_sheet.parse_coding_sheet(sheet)
  assert len(records) == 36 and len(report) == 1 and "apex '/'" in report[0]
  assert {r.emotion for r in records} == set(emotions.CASME2_EMOTIONS)
  assert len({r.subject for r in records}) == 6
  assert len({r.onset for r in records}) > 10  # absolute frame numbers, random starts
  _, keep = emotions.get_subset("3").map_emotions([r.emotion for r in records])
  assert keep.sum() >= 15
  for r in records:
    assert 12 <= r.offset - r.onset + 1 <= 20
    folder = root / "Cropped" / r.subject / r.filename
    assert (folder / f"reg_img{r.onset}.jpg").is_file()
    assert (folder / f"reg_img{r.offset}.jpg").is_file()


def test_emotion_counts_follow_weights():
  counts = synthetic.emotion_counts(None, 108)
  assert sum(counts.values()) == 108 and set(counts) == set(emotions.CASME2_EMOTIONS)
  for e, w in synthetic.DEFAULT_EMOTION_WEIGHTS.items():
    assert abs(counts[e] - w * 108) <= 1
  assert synthetic.emotion_counts(["happiness", "surprise"], 5) in (
      {"happiness": 3, "surprise": 2}, {"happiness": 2, "surprise": 3})
  assert synthetic.emotion_counts({"fear": 1, "others": 3}, 8) == {"fear": 2, "others": 6}
  with pytest.raises(ValueError, match="contempt"):
    synthetic.emotion_counts(["contempt"], 4)


def test_emotions_argument_restricts_classes(tmp_path):
  root = synthetic.write_synthetic_casme2(tmp_path, num_subjects=2, clips_per_subject=3,
                                          image_size=(24, 20), num_frames=(5, 6),
                                          emotions=["happiness", "surprise", "repression"])
  clips, _ = casme2.list_clips(root)
  assert collections.Counter(c.record.emotion for c in clips) == {
      "happiness": 2, "surprise": 2, "repression": 2}


def test_marker_reuse_and_clean_regeneration(tmp_path):
  kwargs = dict(num_subjects=2, clips_per_subject=2, image_size=(24, 20), num_frames=(5, 6))
  root = synthetic.write_synthetic_casme2(tmp_path, **kwargs)
  marker = root / synthetic.COMPLETE_MARKER
  assert json.loads(marker.read_text())["num_subjects"] == 2
  frame = next((root / "Cropped").rglob("*.jpg"))
  stamp = frame.stat().st_mtime_ns
  synthetic.write_synthetic_casme2(tmp_path, **kwargs)
  assert frame.stat().st_mtime_ns == stamp  # complete and same arguments: reused

  # A half-written tree (no marker) is regenerated from scratch.
  marker.unlink()
  stray = root / "Cropped" / "sub09" / "EP99_99" / "reg_img1.jpg"
  stray.parent.mkdir(parents=True)
  stray.write_bytes(b"partial")
  synthetic.write_synthetic_casme2(tmp_path, **kwargs)
  assert marker.is_file() and not stray.exists()
  assert len(casme2.list_clips(root)[0]) == 4

  # Different arguments: regenerated too.
  synthetic.write_synthetic_casme2(tmp_path, **{**kwargs, "num_subjects": 3})
  assert len(casme2.list_clips(root)[0]) == 6


def test_refuses_to_overwrite_foreign_data(tmp_path):
  (tmp_path / "CASME2-coding-20140508.xlsx").write_bytes(b"a real sheet")
  with pytest.raises(FileExistsError, match="not written by write_synthetic_casme2"):
    synthetic.write_synthetic_casme2(tmp_path, num_subjects=1, clips_per_subject=1)
  assert (tmp_path / "CASME2-coding-20140508.xlsx").read_bytes() == b"a real sheet"


def test_seeded_and_subject_specific():
  face_a = synthetic.make_face(np.random.default_rng(0), (60, 50))
  face_b = synthetic.make_face(np.random.default_rng(1), (60, 50))
  assert face_a.image.shape == (60, 50, 3)
  assert np.abs(face_a.image - face_b.image).mean() > 10  # another subject, another face
  clips = [synthetic.render_clip(face_a, "happiness", 8, 4, 1.0, np.random.default_rng(3))
           for _ in range(2)]
  np.testing.assert_array_equal(clips[0], clips[1])
  assert clips[0].shape == (8, 60, 50, 3) and clips[0].dtype == np.uint8
  with pytest.raises(ValueError, match="contempt"):
    synthetic.render_clip(face_a, "contempt", 8, 4, 1.0, np.random.default_rng(3))


def test_motion_peaks_at_apex_with_small_amplitude():
  face = synthetic.make_face(np.random.default_rng(0), (170, 140))
  frames = synthetic.render_clip(face, "surprise", 20, 8, 1.0, np.random.default_rng(0),
                                 noise=0.0, jitter_px=0.0).astype(np.float32)
  change = np.abs(frames - frames[0]).mean(axis=(1, 2, 3))
  assert change[1] == 0 and int(np.argmax(change)) == 8
  assert 0 < change[-1] < change[8]  # decays toward the offset but not fully
  field = synthetic.motion_field(face, synthetic.EMOTION_MOTIONS["surprise"])
  peak = np.linalg.norm(field, axis=-1).max()
  assert 0.5 < peak < 4  # a few pixels at most


@pytest.mark.parametrize("emotion, upper", [("surprise", True), ("happiness", False),
                                            ("repression", False), ("sadness", None)])
def test_each_emotion_moves_its_regions(emotion, upper):
  face = synthetic.make_face(np.random.default_rng(0), (170, 140))
  mag = np.linalg.norm(synthetic.motion_field(face, synthetic.EMOTION_MOTIONS[emotion]), axis=-1)
  nose_y = face.landmarks["nose_tip"][1]
  above, below = mag[:int(nose_y)].sum(), mag[int(nose_y):].sum()
  if upper is None:  # brows and mouth
    assert above > 0.2 * below and below > 0.2 * above
  else:
    assert (above > 3 * below) if upper else (below > 3 * above)


@pytest.fixture(scope="module")
def motion_dataset(tmp_path_factory):
  """8 subjects x 14 clips: onset, apex grey frames [N, 2, H, W], labels [N], subjects [N]."""
  root = synthetic.write_synthetic_casme2(tmp_path_factory.mktemp("motion"), num_subjects=8,
                                          clips_per_subject=14, image_size=(85, 70),
                                          num_frames=(12, 16), seed=1)
  clips, _ = casme2.list_clips(root)
  pairs = np.stack([
      casme2.read_frames([c.frame_paths[c.onset_index], c.frame_paths[c.apex_index]],
                         grayscale=True)[..., 0] for c in clips]).astype(np.float32)
  labels = np.array([emotions.CASME2_EMOTIONS.index(c.record.emotion) for c in clips])
  return pairs, labels, np.array([c.record.subject for c in clips])


def loso_nearest_centroid(features, labels, subjects) -> float:
  """Leave-one-subject-out accuracy of a nearest-centroid classifier on standardised features."""
  x = (features - features.mean(0)) / (features.std(0) + 1e-6)
  correct = 0
  for s in np.unique(subjects):
    train, test = subjects != s, subjects == s
    centroids = np.stack([x[train & (labels == k)].mean(0) for k in np.unique(labels)])
    pred = np.unique(labels)[((x[test][:, None] - centroids[None]) ** 2).sum(-1).argmin(1)]
    correct += (pred == labels[test]).sum()
  return correct / len(labels)


def test_classes_recognisable_from_motion_not_from_one_frame(motion_dataset):
  pairs, labels, subjects = motion_dataset
  assert len(np.unique(labels)) == 7
  pool = lambda x, hw: cv2.resize(x, (hw[1], hw[0]), interpolation=cv2.INTER_AREA).ravel()
  flow_features, apex_features, onset_features = [], [], []
  for onset, apex in pairs:
    flow = cv2.calcOpticalFlowFarneback(onset, apex, None, 0.5, 3, 9, 3, 5, 1.1, 0)
    flow -= np.median(flow.reshape(-1, 2), axis=0)  # remove the head jitter
    flow_features.append(pool(flow, (8, 6)))
    apex_features.append(pool(apex, (16, 12)))
    onset_features.append(pool(onset, (16, 12)))
  chance = np.bincount(labels).max() / len(labels)  # majority class, ~0.2
  motion = loso_nearest_centroid(np.stack(flow_features), labels, subjects)
  apex_only = loso_nearest_centroid(np.stack(apex_features), labels, subjects)
  onset_only = loso_nearest_centroid(np.stack(onset_features), labels, subjects)
  print(f"LOSO nearest centroid: onset->apex flow {motion:.2f}, apex frame {apex_only:.2f}, "
        f"onset frame {onset_only:.2f}, majority {chance:.2f}")
  assert motion >= 0.7
  assert apex_only <= chance + 0.12 and onset_only <= chance + 0.12
