"""The apex-flow builders (CAS(ME)^3, DFME, SAMM, SMIC-HS): TFDS test case, values, face boxes."""

from __future__ import annotations

import pathlib
import shutil
import tempfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from microexp.data import casme2
from microexp.data import synthetic_casme3
from microexp.data import synthetic_dfme
from microexp.data import synthetic_megc
from tfds_casme2 import apex_flow
from tfds_casme2.casme3 import casme3_dataset_builder
from tfds_casme2.dfme import dfme_dataset_builder
from tfds_casme2.samm import samm_dataset_builder
from tfds_casme2.smic import smic_dataset_builder

CONFIG = "apex_flow_dis_strain_28"
# name -> (builder, synthetic writer, its kwargs, clips expected)
CASES = {
    "casme3": (casme3_dataset_builder.Builder, synthetic_casme3.write_synthetic_casme3,
               dict(num_subjects=2, clips_per_subject=3), 6),
    "dfme": (dfme_dataset_builder.Builder, synthetic_dfme.write_synthetic_dfme,
             dict(num_subjects=(2, 1, 1), clips_per_subject=2), 8),
    "samm": (samm_dataset_builder.Builder, synthetic_megc.write_synthetic_samm,
             dict(num_subjects=2, clips_per_subject=2), 5),  # + the 'Other' clip
    "smic": (smic_dataset_builder.Builder, synthetic_megc.write_synthetic_smic,
             dict(num_subjects=2, clips_per_subject=2), 4),
}


class Casme3BuilderTest(tfds.testing.DatasetBuilderTestCase):
  """The `tfds new` test over a synthetic CAS(ME)^3 (tfrecord, read back with `as_dataset`)."""

  DATASET_CLASS = casme3_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = [CONFIG]
  SPLITS = {"train": 6}
  SKIP_CHECKSUMS = True

  @classmethod
  def setUpClass(cls):
    cls._dummy_root = tempfile.mkdtemp(prefix="casme3_dummy_")
    cls.EXAMPLE_DIR = str(synthetic_casme3.write_synthetic_casme3(
        pathlib.Path(cls._dummy_root) / "partA", **CASES["casme3"][2]))
    super().setUpClass()

  @classmethod
  def tearDownClass(cls):
    super().tearDownClass()
    shutil.rmtree(cls._dummy_root, ignore_errors=True)

  def _make_builder(self, config=None):
    return self.dataset_class(data_dir=self.tmp_dir, config=config, version=self.VERSION,
                              file_format="tfrecord")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """name -> (manual_dir, the examples of the array_record build, sorted by key)."""
  out = {}
  for name, (builder_cls, write, kwargs, _) in CASES.items():
    root = write(tmp_path_factory.mktemp(name) / "manual", **kwargs)
    builder = builder_cls(config=CONFIG, data_dir=str(tmp_path_factory.mktemp(f"{name}_tfds")),
                          workers=1)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(root)))
    source = builder.as_data_source(split="train")
    out[name] = (root, [source[i] for i in range(len(source))])
  return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_counts_and_features(built, name):
  _, examples = built[name]
  assert len(examples) == CASES[name][3]
  keys = {(e["subject"], e["clip"]) for e in examples}
  assert len(keys) == len(examples)
  for e in examples:
    assert e["flow"].shape == (28, 28, 3) and e["flow"].dtype == np.float32
    assert np.abs(e["flow"][..., :2]).max() > 0  # the face moved between onset and apex
    assert e["onset"].shape == e["apex"].shape == (28, 28, 3)
    assert e["onset_frame"] < e["apex_frame"] <= e["offset_frame"]
  fps = {float(e["fps"]) for e in examples}
  assert fps == {"casme3": {30.0}, "dfme": {200.0, 300.0, 500.0}, "samm": {200.0},
                 "smic": {100.0}}[name]
  detectors = {e["face_detector"].decode() for e in examples}
  assert detectors == {"none"} if name == "smic" else "none" not in detectors
  if name == "dfme":
    assert {e["split"].decode() for e in examples} == {"train", "testA", "testB"}


def test_casme3_face_box_finds_the_pasted_face(built):
  """The synthetic face sits on a plain background: the box must cover it (IoU > 0.5)."""
  root, examples = built["casme3"]
  for e in examples:
    path = root / e["subject"].decode() / e["filename"].decode() / "color" / f"{e['onset_frame']}.jpg"
    frame = casme2.read_frames([path])[0].astype(int)
    background = frame[0, 0]
    ys, xs = np.nonzero(np.abs(frame - background).max(-1) > 12)
    truth = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    x, y, w, h = e["face_box"]
    inter = max(0, min(x + w, truth[2]) - max(x, truth[0])) * max(0, min(y + h, truth[3]) -
                                                                  max(y, truth[1]))
    union = w * h + (truth[2] - truth[0]) * (truth[3] - truth[1]) - inter
    assert inter / union > 0.5, (e["face_box"], truth, e["face_detector"])


def test_make_config():
  builder = casme3_dataset_builder.Builder
  assert apex_flow.make_config(builder).name == "apex_flow"
  assert apex_flow.make_config(builder, image_size=28, flow_method="dis",
                               third_channel="strain") is builder.BUILDER_CONFIGS[
                                   [c.name for c in builder.BUILDER_CONFIGS].index(CONFIG)]
  custom = apex_flow.make_config(builder, image_size=64, flow_method="tvl1",
                                 flow_kwargs=dict(scales=3))
  assert custom.name == "apex_flow_tvl1_magnitude_64_scales3"
  with pytest.raises(ValueError, match="flow method"):
    apex_flow.make_config(builder, flow_method="horn")


def test_missing_sheet_error_shows_the_layout(tmp_path):
  builder = casme3_dataset_builder.Builder(config=CONFIG, data_dir=str(tmp_path / "tfds"))
  with pytest.raises(FileNotFoundError, match="(?s)label sheet.*Expected layout.*spNO.1/a/color"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path)))
