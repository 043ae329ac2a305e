"""`config.dataset.flow_normalization`: one function (microexp.vision.flow.normalize_flow) used by the
CASME II loader and by predict, recorded by the engine in final/model.json."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from microexp.vision import flow
from microexp.predict import run as predict
from microexp.data import casme2
from microexp.loaders import casme2 as loading
from microexp.train import workdir
from microexp.models import builder


def test_normalize_flow_per_clip_and_none():
  rng = np.random.default_rng(0)
  x = (rng.normal(size=(5, 6, 3)) * [1.0, 3.0, 0.1]).astype(np.float32)
  y = flow.normalize_flow(x, "per_clip")
  np.testing.assert_allclose(y.min(axis=(0, 1)), -1, atol=1e-6)
  np.testing.assert_allclose(y.max(axis=(0, 1)), 1, atol=1e-6)
  # Min-max commutes with negation: a flipped (u -> -u) normalised image is the normalised flip.
  np.testing.assert_allclose(flow.normalize_flow(-x, "per_clip"), -y, atol=1e-6)
  # A sequence is scaled over the whole clip (time and space), per channel.
  seq = np.stack([x, 2 * x])
  ys = flow.normalize_flow(seq, "per_clip")
  np.testing.assert_allclose(ys[1].max(axis=(0, 1)), 1, atol=1e-6)
  assert ys[0].max() < 0.9
  assert np.all(flow.normalize_flow(np.zeros((4, 4, 3)), "per_clip") == 0)
  np.testing.assert_array_equal(flow.normalize_flow(x, "none"), x)
  np.testing.assert_allclose(flow.normalize_flows(np.stack([x, -x]))[1], -y, atol=1e-6)
  with pytest.raises(ValueError, match="flow_normalization 'minmax'"):
    flow.normalize_flow(x, "minmax")
  assert flow.flow_normalization({}) == "per_clip"
  with pytest.raises(ValueError, match="per_clip"):
    flow.flow_normalization({"flow_normalization": "l2"})


@pytest.mark.parametrize("mode", ["per_clip", "none"])
def test_loader_and_predict_agree(synthetic_casme2_root, tmp_path_factory, mode):
  """Same clip, same preprocessing spec: the loader's input == predict's model input."""
  data_dir = tmp_path_factory.mktemp("norm_data") if mode == "per_clip" else None
  ds = ml_collections.ConfigDict(dict(
      name="casme2", representation="apex_flow", classes="5", synthetic=False,
      manual_dir=str(synthetic_casme2_root),
      data_dir=str(data_dir or tmp_path_factory.getbasetemp() / "norm_data0"), image_size=24,
      flow_method="dis", flow_kwargs={"preset": "fast"}, third_channel="strain",
      flow_normalization=mode, sequence=dict(mode="pad", length=8, grayscale=True), workers=1))
  arrays = loading.load_casme2(ds)
  spec = workdir.preprocessing_spec(ds, arrays["inputs"].shape[1:])
  assert spec["flow_normalization"] == mode and spec["flow_kwargs"] == {"preset": "fast"}
  assert spec["crop_size"] is None  # real data: predict's CASME II default

  clips, _ = casme2.list_clips(synthetic_casme2_root)
  by_name = {f"{c.record.subject}/{c.record.filename}": c for c in clips}
  for i in (0, len(arrays["clip"]) - 1):
    clip = by_name[arrays["clip"][i]]
    gray = casme2.read_frames([clip.frame_paths[clip.onset_index],
                               clip.frame_paths[clip.apex_index]], grayscale=True)[..., 0]
    x = predict.model_input(gray[0], gray[1], spec)
    assert x.shape == (1,) + arrays["inputs"].shape[1:]
    np.testing.assert_allclose(x[0], arrays["inputs"][i], atol=1e-5)
    if mode == "per_clip":
      np.testing.assert_allclose(x[0].max(axis=(0, 1)), 1, atol=1e-5)


def test_flow_bound_needs_raw_flow():
  from tests.train import tiny_config  # pylint: disable=g-import-not-at-top
  config = tiny_config()
  config.model.name = "resnet50"
  config.model.kwargs = ml_collections.ConfigDict({"flow_input": True, "flow_bound": 2.0})
  with pytest.raises(ValueError, match="flow_normalization='none'"):
    builder.from_config(config, 3)
