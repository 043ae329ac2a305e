"""CASME II loader sequence options used by the configs: subtract_onset (synthetic sequence
configs) and mask_padding=False (M1 feeds the padding frames)."""

from __future__ import annotations

import ml_collections
import numpy as np

from microexp.loaders import casme2 as loading


def _config(root, data_dir, **sequence):
  return ml_collections.ConfigDict(dict(
      name="casme2", representation="sequences", classes="5", synthetic=False,
      manual_dir=str(root), data_dir=str(data_dir), image_size=16,
      sequence=dict(dict(mode="pad", length=24, grayscale=True), **sequence), workers=1))


def test_subtract_onset_and_mask_padding(synthetic_casme2_root, tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("seq_options")
  plain = loading.load_casme2(_config(synthetic_casme2_root, data_dir))
  assert not plain["mask"].all()  # 12-20-frame clips padded to 24
  rel = loading.load_casme2(_config(synthetic_casme2_root, data_dir, subtract_onset=True))
  np.testing.assert_array_equal(rel["mask"], plain["mask"])
  np.testing.assert_array_equal(rel["inputs"][:, 0], 0.0)  # the onset minus itself
  real = plain["mask"]
  np.testing.assert_allclose(rel["inputs"][real],
                             (plain["inputs"] - plain["inputs"][:, :1])[real], atol=1e-6)
  assert np.all(rel["inputs"][~real] == 0)
  m1 = loading.load_casme2(_config(synthetic_casme2_root, data_dir, mask_padding=False))
  assert m1["mask"].all()
  np.testing.assert_array_equal(m1["inputs"], plain["inputs"])
