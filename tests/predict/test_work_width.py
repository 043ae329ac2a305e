"""Predict computes flow at the resolution the dataset's builder did: model.json's `work_width`
for the apex-flow builders (CAS(ME)^3, DFME, SAMM, SMIC-HS: the aligned face at most
`align.WORK_WIDTH` px wide), `crop_size` / CASME II's default otherwise."""

from __future__ import annotations

import sys

import ml_collections
import numpy as np
import pytest

from microexp.vision import align
from microexp import loaders
from microexp.predict import run as predict
from microexp.train import workdir
from microexp.loaders import flow_datasets as apex_flow


def _spec(**ds):
  ds = ml_collections.ConfigDict({"representation": "apex_flow", "image_size": 28, **ds})
  return workdir.preprocessing_spec(ds, (28, 28, 3))


def test_casme3_spec_records_the_builders_work_width():
  spec = _spec(name="casme3", synthetic=True, alignment="landmarks")
  assert spec["work_width"] == align.WORK_WIDTH and spec["crop_size"] is None
  assert _spec(name="casme2", synthetic=True, synthetic_kwargs={"image_size": 64})[
      "work_width"] is None
  # An explicit crop_size wins (the user says what training used).
  assert _spec(name="dfme", crop_size=200)["work_width"] is None


def test_apex_flow_datasets_are_the_loaders_built_by_apex_flow():
  """DATASETS names exactly the registered loaders whose module loads through apex_flow.load."""
  uses = {name for name in loaders.names()
          if getattr(sys.modules[loaders.get(name).__module__], "apex_flow", None) is apex_flow}
  assert uses == set(apex_flow.DATASETS)


@pytest.mark.parametrize("width", [600, 180])
def test_predict_crops_as_the_builder(width):
  """A wide frame (shrunk to WORK_WIDTH) and a narrow one (kept): predict's crops are the
  builder's (`align.align_for_flow`), pixel for pixel."""
  rng = np.random.default_rng(0)
  pair = rng.integers(0, 255, size=(2, 3 * width // 4, width, 3), dtype=np.uint8)
  crops, aligned = align.align_for_flow(pair, "none")
  spec = _spec(name="samm", alignment="none")
  size = predict._crop_size(spec, aligned)  # pylint: disable=protected-access
  assert size == crops.shape[1:3] and max(size) <= max(align.WORK_WIDTH, 3 * width // 4)
  assert crops.shape[2] == min(width, align.WORK_WIDTH)
  np.testing.assert_array_equal(align.apply(pair, aligned, size), crops)
  # Without a work width (CASME II), predict keeps its fixed crop.
  assert predict._crop_size({"crop_size": None}, aligned) == predict.DEFAULT_CROP_SIZE  # pylint: disable=protected-access
