"""The apex-flow builders (CAS(ME)^3, DFME, SAMM, SMIC-HS): TFDS test case, values, face boxes."""

from __future__ import annotations

import pathlib
import shutil
import tempfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from microexp.data import casme2
from microexp.synthetic import casme3 as synthetic_casme3
from microexp.synthetic import dfme as synthetic_dfme
from microexp.synthetic import megc as synthetic_megc
from tfds_casme2 import apex_flow_base as apex_flow
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


def test_alignment_is_part_of_the_config_name():
  builder = casme3_dataset_builder.Builder  # uncropped frames: default 'landmarks'
  assert apex_flow.default_alignment(builder) == "landmarks"
  assert apex_flow.default_alignment(smic_dataset_builder.Builder) == "none"
  default = apex_flow.make_config(builder, image_size=28, flow_method="dis", third_channel="strain")
  assert apex_flow.make_config(builder, image_size=28, flow_method="dis", third_channel="strain",
                               alignment="landmarks") is default
  names = {apex_flow.make_config(builder, image_size=28, flow_method="dis", third_channel="strain",
                                 alignment=a).name for a in ("landmarks", "box", "none")}
  assert names == {CONFIG, f"{CONFIG}_alignbox", f"{CONFIG}_alignnone"}
  assert apex_flow.make_config(builder, alignment="box").name == "apex_flow_alignbox"
  assert apex_flow.make_config(smic_dataset_builder.Builder, alignment="none").name == "apex_flow"
  with pytest.raises(ValueError, match="Unknown alignment"):
    apex_flow.make_config(builder, alignment="procrustes")


@pytest.mark.parametrize("name", ["casme3", "samm"])
def test_stored_alignment_is_the_one_align_pair_gives(built, name):
  """Each clip is aligned with the transform `align.align_pair` uses on its onset / apex frames
  (estimated on the onset, applied to both) and stores it; dlib finds the synthetic faces."""
  from microexp.vision import align  # pylint: disable=g-import-not-at-top

  root, examples = built[name]
  builder_cls = CASES[name][0]
  clips, _ = builder_cls(config=CONFIG, data_dir=str(root.parent / "unused"))._list_clips(root)
  paths = {(c.meta["subject"], c.meta["clip"]): (c.onset_path, c.apex_path) for c in clips}
  methods = []
  for e in examples:
    key = (e["subject"].decode(), e["clip"].decode())
    methods.append(e["alignment"].decode())
    assert e["face_detector"].decode().startswith("dlib-") == (methods[-1] == "landmarks")
    if not align.available():
      continue
    pair = casme2.read_frames(list(paths[key]))
    crops, expected = align.align_clip(pair, 28)  # what align_pair crops with
    assert tuple(e["face_box"]) == expected.face.box, key
    assert e["face_detector"].decode() == expected.face.detector
    assert float(e["alignment_angle"]) == pytest.approx(expected.angle, abs=1e-4)
    np.testing.assert_allclose(e["alignment_centre"], expected.centre, atol=1e-3)
    # Same transform; the builder resamples through a <= 256 px working crop first (measured
    # mean |difference| 4-6.5 gray levels on the synthetic faces' fine texture).
    assert np.abs(e["onset"].astype(int) - crops[0]).mean() < 10, key
    assert np.abs(e["apex"].astype(int) - crops[1]).mean() < 10, key
  if align.available():
    assert methods.count("landmarks") >= len(methods) - 1, methods
  else:
    assert set(methods) == {"box"}


def test_alignments_build_apart_and_log_found_rates(tmp_path, caplog):
  root = synthetic_casme3.write_synthetic_casme3(tmp_path / "manual", num_subjects=1,
                                                 clips_per_subject=2)
  builder_cls = casme3_dataset_builder.Builder
  stored = {}
  for alignment in ("box", "none"):
    config = apex_flow.make_config(builder_cls, image_size=28, flow_method="dis",
                                   third_channel="strain", alignment=alignment)
    builder = builder_cls(config=config, data_dir=str(tmp_path / "tfds"), workers=1)
    with caplog.at_level("INFO"):
      builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
          manual_dir=str(root)))
    source = builder.as_data_source(split="train")
    stored[alignment] = [source[i] for i in range(len(source))]
    assert f"alignment {alignment!r}: {alignment} 2/2" in caplog.text
  assert {e["alignment"].decode() for e in stored["box"]} == {"box"}
  assert {e["face_detector"].decode() for e in stored["none"]} == {"none"}
  frame = casme2.read_frames(sorted((root / "spNO.1").glob("*/color/*.jpg"))[:1])[0]
  for e in stored["none"]:
    assert tuple(e["face_box"]) == (0, 0, frame.shape[1], frame.shape[0])
    assert float(e["alignment_angle"]) == 0.0
  # The whole frame and the face box are different inputs: never one cache.
  assert not np.allclose(stored["box"][0]["flow"], stored["none"][0]["flow"])
