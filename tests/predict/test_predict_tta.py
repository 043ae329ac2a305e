"""predict evaluates a model trained with flip TTA the way the engine evaluated it."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from microexp import models
from microexp.predict import run as predict
from microexp.train import tta


def _final(flip_h: bool, representation: str = "apex_flow") -> predict.FinalModel:
  module = models.get("ststnet", num_classes=3)
  x = np.zeros((1, 28, 28, 3), np.float32)
  variables = jax.jit(lambda k, x: module.init(k, x, train=False))(jax.random.key(0, impl="rbg"), x)
  return predict.FinalModel(
      module=module, variables=variables, class_names=("negative", "positive", "surprise"),
      preprocessing={"representation": representation},
      config={"train": {"tta": {"flip_h": flip_h}}}, path=None)


@pytest.mark.slow
def test_flip_tta_averages_the_input_and_its_flow_aware_mirror():
  x = np.random.default_rng(0).normal(size=(4, 28, 28, 3)).astype(np.float32)
  plain, with_tta = _final(False), _final(True)
  softmax = lambda z: np.asarray(jax.nn.softmax(plain.module.apply(plain.variables, z,
                                                                   train=False), -1))
  np.testing.assert_allclose(predict.classify(plain, x), softmax(x), atol=1e-6)
  mirrored = np.asarray(tta.flip_flow(x, is_flow=True))
  assert np.allclose(mirrored[..., 0], -x[:, :, ::-1, 0])  # u changes sign with the mirror
  expected = (softmax(x) + softmax(mirrored)) / 2
  np.testing.assert_allclose(predict.classify(with_tta, x), expected, atol=1e-6)
  assert not np.allclose(expected, softmax(x), atol=1e-4)  # the TTA changed something
  np.testing.assert_allclose(predict.classify(with_tta, x).sum(-1), 1.0, atol=1e-6)
