"""On-device augmentation: flow-aware flips, crop, rotation of vectors, mixup."""

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


@pytest.fixture(scope="module")
def flow():
  return np.random.default_rng(0).normal(size=(16, 6, 5, 3)).astype(np.float32)


def test_flips_negate_the_matching_flow_component(flow):
  with jax.threefry_partitionable(False):
    out = np.asarray(jax.jit(lambda k, x: augment.augment(
        k, x, _cfg(flip_h=True, flip_v=True), is_flow=True))(jax.random.PRNGKey(0), flow))
  seen = set()
  for x, y in zip(flow, out):
    candidates = {
        (0, 0): x,
        (1, 0): x[:, ::-1] * [-1, 1, 1],          # horizontal flip: u -> -u
        (0, 1): x[::-1] * [1, -1, 1],             # vertical flip: v -> -v
        (1, 1): x[::-1, ::-1] * [-1, -1, 1]}
    match = [k for k, c in candidates.items() if np.allclose(y, c)]
    assert len(match) == 1
    seen.add(match[0])
  assert len(seen) >= 3  # the flips are random per sample


def test_crop_is_a_shift_with_zero_padding_for_flow(flow):
  with jax.threefry_partitionable(False):
    out = np.asarray(jax.jit(lambda k, x: augment.augment(k, x, _cfg(crop=2), is_flow=True))(
        jax.random.PRNGKey(1), flow))
  for x, y in zip(flow, out):
    padded = np.pad(x, ((2, 2), (2, 2), (0, 0)))
    windows = [padded[dy:dy + 6, dx:dx + 5] for dy in range(5) for dx in range(5)]
    assert any(np.array_equal(y, w) for w in windows)


def test_rotation_rotates_flow_vectors():
  # A uniform field (u, v) = (1, 0): after rotation, the vectors (away from borders) have unit
  # length and the same direction everywhere; magnitude is unchanged.
  x = np.zeros((1, 9, 9, 3), np.float32)
  x[..., 0], x[..., 2] = 1.0, 1.0
  with jax.threefry_partitionable(False):
    y = np.asarray(jax.jit(lambda k, x: augment.augment(k, x, _cfg(rotation=30.0), is_flow=True))(
        jax.random.PRNGKey(2), x))[0, 3:6, 3:6]
  np.testing.assert_allclose(np.hypot(y[..., 0], y[..., 1]), 1.0, atol=1e-5)
  np.testing.assert_allclose(y[..., 2], 1.0, atol=1e-5)
  assert np.ptp(y[..., 1]) < 1e-5 and abs(y[0, 0, 1]) > 1e-3  # rotated by a non-zero angle


def test_mixup_mixes_inputs_and_targets_consistently(flow):
  targets = np.eye(3, dtype=np.float32)[np.arange(16) % 3]
  with jax.threefry_partitionable(False):
    x, t, _ = jax.jit(lambda k, x, t: augment.mixup(k, x, t, None, 0.4))(
        jax.random.PRNGKey(3), flow, targets)
  t, x = np.asarray(t), np.asarray(x)
  np.testing.assert_allclose(t.sum(-1), 1.0, atol=1e-6)
  # Every mixed input is lam * x_i + (1 - lam) * x_j for one shared lam and some partner j.
  mixed = t.max(-1) < 1 - 1e-6  # pairs of different classes reveal lam (or 1 - lam)
  assert mixed.any()
  top = float(t[mixed][0].max())
  lams = (top, 1.0 - top)
  for i in range(16):
    assert any(np.allclose(x[i], lam * flow[i] + (1 - lam) * flow[j], atol=1e-5)
               for j in range(16) for lam in lams)
  assert not np.allclose(x, flow)
