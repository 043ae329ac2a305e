"""HTNet's facial regions: face crops in the release, landmarks -> centres, mosaics, the loader."""

from __future__ import annotations

import pathlib
import shutil

import ml_collections
import numpy as np
import pytest

from microexp.vision import face_regions
from microexp.data import megc_flow
from microexp.synthetic import casme2 as synthetic
from microexp.synthetic import megc as synthetic_megc


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> pathlib.Path:
  return synthetic_megc.write_synthetic_megc_flow(
      tmp_path_factory.mktemp("regions") / "release", num_subjects=(2, 2, 1), clips_per_subject=3)


def test_mean_face_centres_are_the_release_fallback_rounded_and_clamped():
  np.testing.assert_array_equal(face_regions.MEAN_FACE_CENTRES,
                                [[11, 10], [11, 21], [21, 10], [21, 21]])
  centres, source = face_regions.region_centres(None)
  np.testing.assert_array_equal(centres, face_regions.MEAN_FACE_CENTRES)
  assert source == "mean_face"


def test_box_landmarks_beat_the_mean_face_on_synthetic_faces():
  import cv2
  rng = np.random.default_rng(0)
  box_err, mean_err = [], []
  for _ in range(8):
    face = synthetic.make_face(rng, (96, 80))
    crop = cv2.resize(np.clip(face.image, 0, 255).astype(np.uint8), (224, 224),
                      interpolation=cv2.INTER_AREA)
    lm = face.landmarks
    truth = [(lm[n][1] * 28 / 96, lm[n][0] * 28 / 80)
             for n in ("eye_l", "eye_r", "mouth_corner_l", "mouth_corner_r")]
    truth = np.clip(np.round(truth), 7, 21)
    centres, source = face_regions.region_centres(crop)
    assert source == "box_landmarks"
    box_err.append(np.abs(centres - truth).mean())
    mean_err.append(np.abs(face_regions.MEAN_FACE_CENTRES - truth).mean())
  assert np.median(box_err) < np.median(mean_err), (box_err, mean_err)


def test_landmarker_is_pluggable_and_checked():
  image = np.zeros((224, 224, 3), np.uint8)
  exact = lambda img: {n: (56.0 + 112 * (i % 2), 56.0 + 112 * (i // 2))
                       for i, n in enumerate(face_regions.REGIONS)}
  centres, _ = face_regions.region_centres(image, landmarker=exact)
  np.testing.assert_array_equal(centres, [[7, 7], [7, 21], [21, 7], [21, 21]])
  with pytest.raises(ValueError, match="returned no"):
    face_regions.region_centres(image, landmarker=lambda img: {"nose": (1.0, 1.0)})


def test_mosaic_tiles_the_four_regions():
  flow = np.arange(28 * 28 * 3, dtype=np.float32).reshape(28, 28, 3)
  mosaic = face_regions.region_mosaic(flow, face_regions.MEAN_FACE_CENTRES)
  assert mosaic.shape == (28, 28, 3)
  np.testing.assert_array_equal(mosaic[:14, :14], flow[4:18, 3:17])  # left eye
  np.testing.assert_array_equal(mosaic[14:, 14:], flow[14:28, 14:28])  # right mouth corner
  with pytest.raises(ValueError, match="does not fit"):
    face_regions.region_mosaic(flow, [[3, 10], [11, 21], [21, 10], [21, 21]])


def test_release_crops_give_landmark_regions_and_absence_the_mean_face(release, tmp_path):
  records, _, _ = megc_flow.load_flow_set(release)
  assert all(r.imagename for r in records)
  crops = release / megc_flow.FACE_CROP_FOLDER
  assert len(list(crops.glob("*.jpg"))) == len(records)
  centres, sources, report = megc_flow.load_region_centres(release, records)
  assert centres.shape == (len(records), 4, 2) and centres.dtype == np.int32
  assert set(sources) == {"box_landmarks"} and "from their face crops." in report[0]
  # Without one crop: that clip alone falls back to the mean face; without the folder, all do.
  root = tmp_path / "copy"
  shutil.copytree(release, root)
  (root / megc_flow.FACE_CROP_FOLDER / records[0].imagename).unlink()
  _, sources, report = megc_flow.load_region_centres(root, records)
  assert sources[0] == "mean_face" and set(sources[1:]) == {"box_landmarks"}
  assert "1 without a crop" in report[0]
  shutil.rmtree(root / megc_flow.FACE_CROP_FOLDER)
  centres, sources, report = megc_flow.load_region_centres(root, records)
  assert set(sources) == {"mean_face"} and "no combined_datasets_whole" in report[0]
  np.testing.assert_array_equal(centres, np.broadcast_to(face_regions.MEAN_FACE_CENTRES,
                                                         centres.shape))


def test_bad_crop_names_the_file(release, tmp_path):
  root = tmp_path / "copy"
  shutil.copytree(release, root)
  records, _, _ = megc_flow.load_flow_set(root)
  victim = root / megc_flow.FACE_CROP_FOLDER / records[1].imagename
  victim.write_bytes(b"not a jpeg")
  with pytest.raises(megc_flow.FlowSetError, match=victim.name):
    megc_flow.load_region_centres(root, records)


def test_loader_region_mosaic(release, tmp_path):
  from microexp.loaders import megc
  config = ml_collections.ConfigDict(dict(
      name="megc2019_flow", synthetic=False, manual_dir=str(release), data_dir=str(tmp_path),
      image_size=28, regions="none"))
  whole = megc.load_megc2019_flow(config)
  assert whole["region_centres"].shape == (len(whole["inputs"]), 4, 2)
  config.regions = "mosaic"
  mosaic = megc.load_megc2019_flow(config)
  expected = face_regions.region_mosaics(whole["inputs"], whole["region_centres"])
  from microexp.vision import flow as flow_lib
  np.testing.assert_allclose(mosaic["inputs"], flow_lib.normalize_flows(expected, "per_clip"),
                             atol=1e-6)
