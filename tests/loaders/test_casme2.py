"""CASME II loader: synthetic build on demand, array contract, sequence modes, errors."""

from __future__ import annotations

import logging

import ml_collections
import numpy as np
import pytest

from microexp.vision import flow
from microexp.loaders import casme2 as loading
from microexp import loaders
from microexp.data.emotions import CASME2_EMOTIONS

_SYNTHETIC = dict(num_subjects=2, clips_per_subject=3, image_size=(48, 40), num_frames=(6, 10),
                  seed=3)


def _config(data_dir, **overrides) -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict(dict(
      name="casme2", representation="apex_flow", classes="7", synthetic=True, manual_dir=None,
      data_dir=str(data_dir), image_size=28, flow_method="dis", third_channel="magnitude",
      sequence=dict(mode="pad", length=0, grayscale=True), synthetic_kwargs=_SYNTHETIC,
      workers=1, flow_normalization="none"))
  cfg.update(overrides)
  return cfg


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("microexp_data")


def _check_common(out, n):
  for key in ("inputs", "emotion", "subject", "dataset", "clip"):
    assert len(out[key]) == n, key
  assert set(out["emotion"]) <= set(CASME2_EMOTIONS)
  assert set(out["subject"]) == {"sub01", "sub02"}
  assert set(out["dataset"]) == {"casme2"}
  assert len(set(out["clip"])) == n and all(c.startswith("sub0") for c in out["clip"])


def test_apex_flow_builds_once_and_loads(data_dir, caplog):
  caplog.set_level(logging.INFO)
  assert loaders.get("casme2") is loading.load_casme2
  out = loading.load_casme2(_config(data_dir))
  _check_common(out, 6)
  assert out["inputs"].shape == (6, 28, 28, 3) and out["inputs"].dtype == np.float32
  assert "mask" not in out
  # Channel 2 is the magnitude of channels 0, 1; synthetic faces move at the apex.
  np.testing.assert_allclose(out["inputs"][..., 2], np.hypot(out["inputs"][..., 0],
                                                             out["inputs"][..., 1]), atol=1e-5)
  assert np.abs(out["inputs"][..., :2]).max() > 0.05
  assert "building" in caplog.text and "reusing" not in caplog.text
  caplog.clear()
  again = loading.load_casme2(_config(data_dir))
  assert "reusing" in caplog.text and "building" not in caplog.text
  np.testing.assert_array_equal(again["inputs"], out["inputs"])
  assert (data_dir / "manual").is_dir() and (data_dir / "synthetic").is_dir()
  # The default scaling, per clip and channel to -1..1, is applied to the same stored flow.
  scaled = loading.load_casme2(_config(data_dir, flow_normalization="per_clip"))
  np.testing.assert_allclose(scaled["inputs"], flow.normalize_flows(out["inputs"], "per_clip"))
  assert scaled["inputs"].min() >= -1 and scaled["inputs"].max() <= 1


def test_sequences_modes(data_dir):
  cfg = _config(data_dir, representation="sequences")
  ragged = loading.load_casme2(cfg)
  _check_common(ragged, 6)
  n, t, h, w, c = ragged["inputs"].shape
  assert (h, w, c) == (28, 28, 1) and 6 <= t <= 10
  lengths = ragged["mask"].sum(1)
  assert lengths.max() == t and lengths.min() >= 6
  assert ragged["inputs"].min() >= 0 and ragged["inputs"].max() <= 1
  assert np.all(ragged["inputs"][~ragged["mask"]] == 0)
  assert np.all(ragged["inputs"][ragged["mask"]].reshape(-1, 28 * 28).max(1) > 0)

  cfg.sequence.update(mode="apex_window", length=4)
  win = loading.load_casme2(cfg)
  assert win["inputs"].shape == (6, 4, 28, 28, 1) and win["mask"].all()
  cfg.sequence.update(mode="pad", length=12)
  padded = loading.load_casme2(cfg)
  assert padded["inputs"].shape[1] == 12
  np.testing.assert_array_equal(padded["mask"].sum(1), lengths)
  np.testing.assert_array_equal(padded["inputs"][:, :t], ragged["inputs"])


def test_flow_sequences(data_dir):
  out = loading.load_casme2(_config(data_dir, representation="flow_sequences",
                                    sequence=dict(mode="ragged", length=0, grayscale=True)))
  _check_common(out, 6)
  assert out["inputs"].shape[2:] == (28, 28, 3) and out["mask"].shape == out["inputs"].shape[:2]
  np.testing.assert_array_equal(out["inputs"][:, 0], 0.0)  # flow of the onset to itself


def test_pad_sequences_windows():
  seqs = [np.arange(t, dtype=np.float32)[:, None, None, None] for t in (3, 8, 10)]
  x, mask = loading.pad_sequences(seqs, [1, 6, 2], mode="apex_window", length=4)
  assert x.shape == (3, 4, 1, 1, 1)
  np.testing.assert_array_equal(mask.sum(1), [3, 4, 4])
  np.testing.assert_array_equal(x[1, :, 0, 0, 0], [4, 5, 6, 7])  # apex 6 centred
  np.testing.assert_array_equal(x[2, :, 0, 0, 0], [0, 1, 2, 3])  # apex 2 near the start
  x, mask = loading.pad_sequences(seqs, [1, 6, 9], mode="pad", length=5)
  np.testing.assert_array_equal(x[2, :, 0, 0, 0], [5, 6, 7, 8, 9])  # cut, apex kept
  x, mask = loading.pad_sequences(seqs, [1, 6, 2], mode="pad", length=5, padding="pre")
  np.testing.assert_array_equal(x[0, :, 0, 0, 0], [0, 0, 0, 1, 2])  # zeros first, clip last
  np.testing.assert_array_equal(mask[0], [False, False, True, True, True])
  with pytest.raises(ValueError, match="padding"):
    loading.pad_sequences(seqs, [1, 6, 2], padding="middle")
  x, mask = loading.pad_sequences(seqs, [1, 6, 2], mode="ragged", length=2)
  assert x.shape[1] == 10
  with pytest.raises(ValueError, match="apex_window"):
    loading.pad_sequences(seqs, [1, 6, 2], mode="apex_window", length=0)
  with pytest.raises(ValueError, match="sequence mode"):
    loading.pad_sequences(seqs, [1, 6, 2], mode="loop")


def test_user_copy_errors(tmp_path):
  with pytest.raises(ValueError, match="manual_dir is not set"):
    loading.load_casme2(_config(tmp_path, synthetic=False))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    loading.load_casme2(_config(tmp_path, synthetic=False, manual_dir=str(tmp_path / "nope")))
  (tmp_path / "copy" / "Cropped").mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match="CASME2-coding"):
    loading.load_casme2(_config(tmp_path, synthetic=False, manual_dir=str(tmp_path / "copy")))
