"""main.py-style loading (`registry.load(config.dataset)`) of every new dataset on its synthetic
tree: the arrays' contract, the counts, and the `au` arrays of every loader with AUs."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from configs import ststnet_casme3
from configs import ststnet_dfme
from microexp.loaders import megc_frames as megc
from microexp import loaders as registry
from microexp.data import action_units as au_lib
from microexp.synthetic import megc as synthetic_megc
from microexp.data.emotions import get_subset

_COMMON = ("inputs", "emotion", "subject", "dataset", "clip", "au", "au_names")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("microexp_data"))


def _check(arrays, n, name):
  for key in _COMMON:
    assert len(arrays[key]) == n, key
  assert arrays["inputs"].shape == (n, 28, 28, 3) and arrays["inputs"].dtype == np.float32
  # Default 'per_clip' scaling: every channel of every clip spans -1..1.
  np.testing.assert_allclose(arrays["inputs"].min(axis=(1, 2)), -1, atol=1e-5)
  assert set(arrays["dataset"]) == {name}
  assert len(set(arrays["clip"])) == n
  assert arrays["au"].dtype == np.float32 and arrays["au"].shape == arrays["au_names"].shape
  assert (arrays["au_names"] == arrays["au_names"][:1]).all()


def _small(config, data_dir, **synthetic_kwargs):
  config.dataset.data_dir = data_dir
  config.dataset.workers = 1
  config.dataset.synthetic_kwargs.update(synthetic_kwargs)
  return config


def test_casme3_config(data_dir):
  config = _small(ststnet_casme3.get_config("synthetic"), data_dir, num_subjects=3,
                  clips_per_subject=4)
  arrays = registry.load(config.dataset)
  _check(arrays, 12, "casme3")
  assert set(arrays["subject"]) == {"spNO.1", "spNO.2", "spNO.3"}
  assert (arrays["fps"] == 30).all() and arrays["face_box"].shape == (12, 4)
  # Uncropped frames: landmark alignment, the method that ran per clip returned.
  assert config.dataset.alignment == "landmarks" and arrays["alignment"].shape == (12,)
  assert set(arrays["alignment"]) <= {"landmarks", "box"}
  assert arrays["au"].sum(1).min() >= 1  # every synthetic clip has an AU
  names = list(arrays["au_names"][0])
  assert names == sorted(names, key=int)
  labels, keep = get_subset(config.dataset.classes).map_emotions(arrays["emotion"])
  assert keep.all() and set(labels) >= {0, 1}
  # Sides kept apart: 'L12' and '12' become separate columns.
  config.dataset.au_sides = True
  sided = registry.load(config.dataset)
  assert "L12" in set(sided["au_names"][0]) and "L12" not in set(arrays["au_names"][0])
  np.testing.assert_array_equal(sided["au"].sum(1) > 0, arrays["au"].sum(1) > 0)


def test_dfme_config_keeps_fps_and_split(data_dir):
  config = _small(ststnet_dfme.get_config("synthetic"), data_dir, num_subjects=(2, 1, 1),
                  clips_per_subject=3)
  arrays = registry.load(config.dataset)  # splits=('train',): LOSO inside the training sheet
  _check(arrays, 6, "dfme")
  assert set(arrays["split"]) == {"train"}
  config.dataset.splits = ()
  everything = registry.load(config.dataset)
  _check(everything, 12, "dfme")
  assert sorted(set(everything["split"])) == ["testA", "testB", "train"]
  assert set(everything["fps"]) == {200.0, 300.0, 500.0}
  config.dataset.splits = ("val",)
  with pytest.raises(ValueError, match="unknown \\['val'\\]"):
    registry.load(config.dataset)


@pytest.mark.parametrize("name, n", [("samm", 7), ("smic", 6)])
def test_samm_smic(data_dir, name, n):
  config = ml_collections.ConfigDict(dict(
      name=name, synthetic=True, data_dir=data_dir, image_size=28, flow_method="dis",
      third_channel="strain", workers=1, synthetic_kwargs=dict(num_subjects=2, clips_per_subject=3)))
  arrays = registry.load(config)
  _check(arrays, n, name)  # SAMM: 2 x 3 clips + the quirk rows' Other clip (Macro dropped)
  if name == "samm":
    # Each clip codes the AUs its emotion's synthetic motion moves (synthetic_megc._SAMM_AUS).
    names = arrays["au_names"][0]
    for emotion, row in zip(arrays["emotion"], arrays["au"]):
      cell = synthetic_megc._SAMM_AUS[str(emotion)]  # pylint: disable=protected-access
      assert set(names[row > 0]) == set(au_lib.action_unit_numbers(cell)), emotion
    assert set(arrays["subject"]) == {"006", "007"}
  else:
    assert arrays["au"].shape == (n, 0) and (arrays["fps"] == 100).all()


def test_user_copy_errors(tmp_path):
  config = ststnet_casme3.get_config("")
  config.dataset.data_dir = str(tmp_path)
  with pytest.raises(ValueError, match="manual_dir is not set.*CAS\\(ME\\)\\^3"):
    registry.load(config.dataset)
  config.dataset.manual_dir = str(tmp_path / "nope")
  with pytest.raises(FileNotFoundError, match="nope does not exist"):
    registry.load(config.dataset)
  config.dataset.manual_dir = None
  config.dataset.representation = "sequences"
  with pytest.raises(ValueError, match="'sequences' is not built yet"):
    registry.load(config.dataset)


def test_composite_has_au(tmp_path):
  root = synthetic_megc.write_synthetic_megc(tmp_path / "megc", num_subjects=(2, 2, 2),
                                             clips_per_subject=3, image_size=(64, 56))
  arrays, _ = megc.build_composite(root, image_size=16)
  n = len(arrays["clip"])
  assert arrays["au"].shape[0] == arrays["au_names"].shape[0] == n
  smic = arrays["dataset"] == "smic"
  assert arrays["au"][smic].sum() == 0 and arrays["au"][~smic].sum(1).min() >= 1


def test_casme2_has_au(data_dir):
  config = ml_collections.ConfigDict(dict(
      name="casme2", representation="apex_flow", synthetic=True, data_dir=data_dir, image_size=28,
      flow_method="dis", third_channel="magnitude", workers=1, au_sides=True,
      synthetic_kwargs=dict(num_subjects=2, clips_per_subject=6, image_size=(48, 40),
                            num_frames=(6, 8), seed=3)))
  arrays = registry.load(config)
  assert arrays["au"].shape[0] == arrays["au_names"].shape[0] == 12
  names = list(arrays["au_names"][0])
  assert "L10" in names  # the quirky '4+L10' clip, side kept
  others = arrays["emotion"] == "others"
  # Every coded clip has an AU; only '?' (an 'others' clip) has none.
  assert (arrays["au"][~others].sum(1) >= 1).all()


def test_composite_aligns_samm_only(tmp_path):
  """`alignment` applies to SAMM's (uncropped) clips; CASME II / SMIC crops are used whole."""
  from microexp.vision import align  # pylint: disable=g-import-not-at-top

  root = synthetic_megc.write_synthetic_megc(tmp_path / "megc", num_subjects=(1, 2, 1),
                                             clips_per_subject=2, image_size=(64, 56))
  plain, _ = megc.build_composite(root, image_size=16)
  aligned, report = megc.build_composite(root, image_size=16, alignment="landmarks")
  samm = aligned["dataset"] == "samm"
  assert set(plain["alignment"]) == {"none"} and set(aligned["alignment"][~samm]) == {"none"}
  expected = "landmarks" if align.available() else "box"
  assert set(aligned["alignment"][samm]) == {expected}
  assert any(line.startswith("samm faces: ") and "(alignment 'landmarks')" in line
             for line in report), report
  np.testing.assert_array_equal(aligned["inputs"][~samm], plain["inputs"][~samm])
  assert not np.allclose(aligned["inputs"][samm], plain["inputs"][samm])
  with pytest.raises(ValueError, match="Unknown alignment"):
    megc.build_composite(root, image_size=16, alignment="procrustes")


def test_megc2019_loader_reads_alignment(data_dir):
  config = ml_collections.ConfigDict(dict(
      name="megc2019", representation="apex_flow", synthetic=True, data_dir=data_dir,
      image_size=16, flow_method="dis", workers=1, alignment="box"))
  arrays = registry.load(config)
  samm = arrays["dataset"] == "samm"
  assert samm.any() and set(arrays["alignment"][samm]) == {"box"}
  assert set(arrays["alignment"][~samm]) == {"none"}
