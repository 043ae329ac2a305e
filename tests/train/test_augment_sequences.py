"""Whole-sequence flips (one draw per clip, every frame alike) and the thesis's plain image
flips."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
import pytest

from microexp.train import augment


def _cfg(**kw):
  cfg = ml_collections.ConfigDict({"flip_h": False, "flip_v": False, "crop": 0, "rotation": 0.0,
                                   "mixup": 0.0})
  cfg.update(kw)
  return cfg


def _augment(x, cfg, is_flow, seed=0):
  with jax.threefry_partitionable(False):
    return np.asarray(jax.jit(lambda k, x: augment.augment(k, x, cfg, is_flow=is_flow))(
        jax.random.PRNGKey(seed), x))


@pytest.mark.parametrize("is_flow", [False, True])
def test_a_clip_is_flipped_whole(is_flow):
  """[B, T, H, W, C]: each clip is either untouched or mirrored in every frame (flow: u -> -u)."""
  clips = np.random.default_rng(0).normal(size=(16, 5, 6, 4, 3)).astype(np.float32)
  out = _augment(clips, _cfg(flip_h=True), is_flow)
  sign = np.array([-1, 1, 1] if is_flow else [1, 1, 1], np.float32)
  flipped = 0
  for x, y in zip(clips, out):
    mirrored = x[:, :, ::-1] * sign
    assert np.allclose(y, x) or np.allclose(y, mirrored)  # never some frames only
    flipped += bool(np.allclose(y, mirrored))
  assert 0 < flipped < len(clips)  # one random draw per clip


def test_plain_flips_keep_the_flow_signs():
  """flow_aware=False: Keras' RandomFlip on a flow image mirrors pixels, u and v keep their sign."""
  flow = np.random.default_rng(1).normal(size=(16, 6, 5, 3)).astype(np.float32)
  out = _augment(flow, _cfg(flip_h=True, flip_v=True, flow_aware=False), is_flow=True)
  seen = set()
  for x, y in zip(flow, out):
    candidates = {(0, 0): x, (1, 0): x[:, ::-1], (0, 1): x[::-1], (1, 1): x[::-1, ::-1]}
    match = [k for k, c in candidates.items() if np.allclose(y, c)]
    assert len(match) == 1
    seen.add(match[0])
  assert len(seen) >= 3
