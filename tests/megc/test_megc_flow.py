"""Precomputed MEGC2019 flow release: quirks, channel order, errors, TFDS loader."""

from __future__ import annotations

import pathlib
import shutil

import ml_collections
import numpy as np
import pytest

from microexp.data import megc_flow
from microexp.synthetic import megc as synthetic_megc


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> pathlib.Path:
  """Synthetic release with every quirk: 11 subjects (4 CASME II, 4 SAMM, 3 SMIC) x 6 clips."""
  return synthetic_megc.write_synthetic_megc_flow(tmp_path_factory.mktemp("flow") / "release")


def _copy(release, tmp_path) -> pathlib.Path:
  dest = tmp_path / "copy"
  shutil.copytree(release, dest)
  return dest


def test_canonical_ids():
  assert megc_flow.canonical_subject("samm", 6) == "006"
  assert megc_flow.canonical_subject("samm", "6.0") == "006"
  assert megc_flow.canonical_subject("smic", "s1") == "s01"
  assert megc_flow.canonical_subject("casme2", "1") == "sub01"
  assert megc_flow.canonical_clip("smic", "s1_ne_01") == "s01_ne_01"
  assert megc_flow.canonical_clip("samm", "6_1_2") == "006_1_2"
  assert megc_flow.canonical_clip("casme2", "EP02_01f") == "EP02_01f"
  assert megc_flow.parse_image_name("sub01_EP02_01f .png") == (("casme2", "sub01", "EP02_01f"), True)
  assert megc_flow.parse_image_name("006_006_1_2.png") == (("samm", "006", "006_1_2"), False)
  with pytest.raises(megc_flow.FlowSetError, match="not <subject>_<clip>"):
    megc_flow.parse_image_name("face.png")


def test_reads_release_with_quirks(release):
  records, flows, report = megc_flow.load_flow_set(release)
  assert len(records) == flows.shape[0] == 66
  assert flows.shape[1:] == (28, 28, 3) and flows.dtype == np.uint8
  text = "\n".join(report)
  assert "space before the suffix" in text
  assert "pre-split folder(s)" in text
  assert "re-padded" in text and "'6'->'006'" in text
  subjects = {r.qualified_subject for r in records}
  assert "samm/006" in subjects and "smic/s01" in subjects and "casme2/sub01" in subjects
  assert len(subjects) == 11
  assert {r.dataset for r in records} == {"casme2", "samm", "smic"}
  # CSV's unpadded SMIC clip 's1_ne_01' matched the file 's01_s01_ne_01 .png'.
  assert any(r.clip.startswith("s01_") for r in records)


def test_channel_order_is_rgb_u_v_strain(tmp_path):
  """A PNG whose R=u ramps in x, G=v ramps in y, B=strain constant reads back as [u, v, strain]."""
  import cv2
  folder = tmp_path / "rel"
  folder.mkdir()
  rgb = np.zeros((28, 28, 3), np.uint8)
  rgb[..., 0] = np.arange(28)[None, :] * 9  # u: varies along x
  rgb[..., 1] = np.arange(28)[:, None] * 9  # v: varies along y
  rgb[..., 2] = 77  # strain
  cv2.imwrite(str(folder / "sub01_EP01_01 .png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
  (folder / "gt.csv").write_text("data,subject,clip,label\ncasme2,sub01,EP01_01,2\n")
  records, flows, _ = megc_flow.load_flow_set(folder)
  np.testing.assert_array_equal(flows[0], rgb)
  assert megc_flow.CHANNELS == ("u", "v", "strain") and records[0].label == 2


def test_headerless_csv(release, tmp_path):
  root = _copy(release, tmp_path)
  csv_path = root / "combined_3_class2_for_optical_flow.csv"
  lines = csv_path.read_text().splitlines()[1:]
  csv_path.unlink()
  (root / "combined_3class_gt.csv").write_text(
      "\n".join(",".join(l.split(",")[:4]) for l in lines) + "\n")
  records, _, report = megc_flow.load_flow_set(root)
  assert len(records) == 66 and any("no header" in line for line in report)


def test_missing_and_extra_listed_together(release, tmp_path):
  root = _copy(release, tmp_path)
  images = root / "STSNet_whole_norm_u_v_os"
  gone = sorted(images.iterdir())[:2]
  for path in gone:
    path.unlink()
  shutil.copyfile(sorted(images.iterdir())[0], images / "sub09_EP99_99 .png")
  with pytest.raises(megc_flow.FlowSetError) as err:
    megc_flow.load_flow_set(root)
  message = str(err.value)
  assert "2 clip(s) without an image and 1 image(s) without a CSV row" in message
  assert "'sub09_EP99_99 .png'" in message
  for path in gone:
    key, _ = megc_flow.parse_image_name(path)
    assert "/".join(key) in message


def test_bad_inputs_name_the_file(release, tmp_path):
  root = _copy(release, tmp_path)
  images = root / "STSNet_whole_norm_u_v_os"
  victim = sorted(images.iterdir())[0]
  victim.write_bytes(b"not a png")
  with pytest.raises(megc_flow.FlowSetError, match=str(victim.name).replace("(", r"\(")):
    megc_flow.load_flow_set(root)
  bad_csv = tmp_path / "bad.csv"
  bad_csv.write_text("dataset,sub,filename_o,label\ncasme3,sub01,EP01,0\n")
  with pytest.raises(megc_flow.FlowSetError, match=r"bad.csv, line 2: unknown dataset"):
    megc_flow.read_ground_truth(bad_csv)
  bad_csv.write_text("dataset,sub,filename_o,label\ncasme2,sub01,EP01,7\n")
  with pytest.raises(megc_flow.FlowSetError, match=r"line 2: label '7'"):
    megc_flow.read_ground_truth(bad_csv)


def test_presplit_only_folder_is_refused(release, tmp_path):
  root = tmp_path / "only_split"
  shutil.copytree(release / "006", root / "006")
  (root / "gt.csv").write_text("data,subject,clip,label\n")
  with pytest.raises(FileNotFoundError, match="Pre-split"):
    megc_flow.load_flow_set(root)


def test_tfds_loader(release, tmp_path):
  from microexp.loaders import megc
  config = ml_collections.ConfigDict(dict(
      name="megc2019_flow", synthetic=False, manual_dir=str(release), data_dir=str(tmp_path),
      image_size=28))
  arrays = megc.load_megc2019_flow(config)
  assert arrays["inputs"].shape == (66, 28, 28, 3) and arrays["inputs"].dtype == np.float32
  assert -1.0 <= arrays["inputs"].min() and arrays["inputs"].max() <= 1.0
  assert set(arrays["emotion"]) == {"negative", "positive", "surprise"}
  assert all(s.startswith(d + "/") for s, d in zip(arrays["subject"], arrays["dataset"]))
  # Same values as the reader (the builder keeps RGB = u, v, strain).
  records, flows, _ = megc_flow.load_flow_set(release)
  by_key = {f"{r.qualified_subject}/{r.clip}": f for r, f in zip(records, flows)}
  for x, s, c in zip(arrays["inputs"], arrays["subject"], arrays["clip"]):
    np.testing.assert_allclose(x, by_key[f"{s}/{c}"] * (2 / 255.0) - 1, atol=1e-6)
