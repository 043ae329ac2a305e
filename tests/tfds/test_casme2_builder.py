"""CASME II TFDS builder: TFDS-style test over synthetic dummy data, values, formats, bad input."""

from __future__ import annotations

import shutil
import tempfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from microexp.vision import flow
from microexp.data import casme2
from microexp.synthetic import casme2 as synthetic
from microexp.data.emotions import CASME2_EMOTIONS
from tfds_casme2.casme2 import casme2_dataset_builder as cb

_DUMMY_KWARGS = dict(num_subjects=2, clips_per_subject=3, image_size=(48, 40), num_frames=(6, 8),
                     seed=1, quirks=True)


@pytest.mark.slow  # builds the dataset several times (test_download_and_prepare_as_dataset ~11 s)
class Casme2BuilderTest(tfds.testing.DatasetBuilderTestCase):
  """The `tfds new` test: build each config from dummy data, read back with `as_dataset`."""

  DATASET_CLASS = cb.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["apex_flow", "apex_flow_tvl1_strain_28", "sequences_gray_28",
                                  "sequences_rgb_28", "flow_sequences_dis_magnitude_28"]
  SPLITS = {"train": 6}  # 2 subjects x 3 clips, none dropped by the quirks
  SKIP_CHECKSUMS = True  # manual download: no URLs

  @classmethod
  def setUpClass(cls):
    # Dummy data = a tiny synthetic CASME II in the official layout (quirks included).
    cls._dummy_root = tempfile.mkdtemp(prefix="casme2_dummy_")
    cls.EXAMPLE_DIR = str(synthetic.write_synthetic_casme2(cls._dummy_root, **_DUMMY_KWARGS))
    super().setUpClass()

  @classmethod
  def tearDownClass(cls):
    super().tearDownClass()
    shutil.rmtree(cls._dummy_root, ignore_errors=True)

  def _make_builder(self, config=None):
    # `as_dataset` (tf.data) reads tfrecord; array_record (the default) is tested below.
    return self.dataset_class(data_dir=self.tmp_dir, config=config, version=self.VERSION,
                              file_format="tfrecord")


# ---- pytest tests on the shared synthetic tree (conftest.synthetic_casme2_root) ----------------


def _build(root, data_dir, config, **kwargs) -> cb.Builder:
  builder = cb.Builder(config=config, data_dir=str(data_dir), **kwargs)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
  return builder


def _by_key(source) -> dict[str, dict]:
  examples = [source[i] for i in range(len(source))]
  return {f"{e['subject'].decode()}/{e['filename'].decode()}": e for e in examples}


def test_make_config_names_and_validation():
  assert cb.make_config("apex_flow").name == "apex_flow"
  assert cb.make_config("apex_flow", image_size=224, flow_method="farneback").name == "apex_flow"
  c = cb.make_config("apex_flow", image_size=28, flow_method="tvl1", third_channel="strain")
  assert (c.name, c.image_size, c.flow_method, c.third_channel) == (
      "apex_flow_tvl1_strain_28", 28, "tvl1", "strain")
  assert cb.make_config("sequences", grayscale=True, image_size=48).name == "sequences_gray_48"
  assert cb.make_config("apex_flow", flow_method="tvl1",
                        flow_kwargs=dict(scales=3, warps=3)).name.endswith("_scales3_warps3")
  names = [c.name for c in cb.Builder.BUILDER_CONFIGS]
  assert names[0] == "apex_flow" and len(names) == len(set(names))
  assert "apex_flow_tvl1_strain_28" in names and "flow_sequences" in names
  with pytest.raises(ValueError, match="flow method"):
    cb.make_config("apex_flow", flow_method="horn_schunck")
  with pytest.raises(ValueError, match="representation"):
    cb.make_config("video")


def test_apex_flow_values_array_record(synthetic_casme2_root, tmp_path):
  config = cb.make_config("apex_flow", image_size=28, flow_method="dis", third_channel="strain")
  builder = _build(synthetic_casme2_root, tmp_path, config, workers=1)
  assert builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD
  examples = _by_key(builder.as_data_source(split="train"))
  clips, _ = casme2.list_clips(synthetic_casme2_root)
  assert sorted(examples) == sorted(f"{c.record.subject}/{c.record.filename}" for c in clips)
  clip = clips[5]
  ex = examples[f"{clip.record.subject}/{clip.record.filename}"]
  gray = casme2.read_frames([clip.frame_paths[clip.onset_index],
                             clip.frame_paths[clip.apex_index]], grayscale=True)[..., 0]
  expected = flow.apex_flow_image(gray[0], gray[1], method="dis", third_channel="strain", size=28)
  np.testing.assert_allclose(ex["flow"], expected, atol=1e-5)
  assert ex["onset"].shape == (28, 28, 3) and ex["onset"].dtype == np.uint8
  assert CASME2_EMOTIONS[ex["emotion"]] == clip.record.emotion
  assert ex["apex_frame"] == clip.frame_numbers[clip.apex_index]
  assert ex["action_units"].decode() == "+".join(clip.record.action_units)


def test_sequences_and_flow_sequences_parallel(synthetic_casme2_root, tmp_path):
  clips, _ = casme2.list_clips(synthetic_casme2_root)
  by_key = {f"{c.record.subject}/{c.record.filename}": c for c in clips}
  seq = _by_key(_build(synthetic_casme2_root, tmp_path, "sequences_gray_28",
                       workers=2).as_data_source("train"))
  for key, ex in list(seq.items())[:3]:
    clip = by_key[key]
    frames = np.stack(ex["frames"])
    assert frames.shape == (len(clip.frame_paths), 28, 28, 1)
    np.testing.assert_array_equal(
        frames, casme2.read_frames(clip.frame_paths, size=(28, 28), grayscale=True))
    assert (ex["onset_index"], ex["apex_index"], ex["offset_index"]) == (
        clip.onset_index, clip.apex_index, clip.offset_index)
  flows = _by_key(_build(synthetic_casme2_root, tmp_path, "flow_sequences_dis_magnitude_28",
                         workers=1).as_data_source("train"))
  key = next(iter(flows))
  f = flows[key]["flow"]
  assert f.shape == (len(by_key[key].frame_paths), 28, 28, 3) and f.dtype == np.float32
  np.testing.assert_array_equal(f[0], 0.0)  # the onset relative to itself
  assert np.abs(f[by_key[key].apex_index]).max() > 0.05  # motion at the apex


def test_corrupt_image_fails_cleanly(synthetic_casme2_root, tmp_path):
  root = tmp_path / "copy"
  shutil.copytree(synthetic_casme2_root, root)
  clips, _ = casme2.list_clips(root)
  bad = clips[len(clips) // 2].frame_paths[clips[len(clips) // 2].apex_index]
  bad.write_bytes(b"not a jpeg")
  with pytest.raises(ValueError, match=str(bad.name)):
    _build(root, tmp_path / "data", "apex_flow_dis_magnitude_28", workers=1)
  # Nothing that looks like a dataset is left behind: the builder sees no prepared data.
  reloaded = cb.Builder(config="apex_flow_dis_magnitude_28", data_dir=str(tmp_path / "data"))
  assert not reloaded.data_path.exists()
  assert not list((tmp_path / "data").rglob("dataset_info.json"))
  with pytest.raises(Exception):
    reloaded.as_data_source("train")


def test_missing_manual_dir_or_sheet(tmp_path):
  with pytest.raises(Exception, match="CASME2-coding"):
    _build(tmp_path / "absent", tmp_path / "data", "apex_flow_dis_magnitude_28")
  (tmp_path / "empty" / "Cropped").mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match="CASME2-coding"):
    _build(tmp_path / "empty", tmp_path / "data", "apex_flow_dis_magnitude_28")
