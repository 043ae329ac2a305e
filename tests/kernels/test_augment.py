"""The augmentation CPU kernel equals the pure-JAX transforms (augment.apply_one per sample):
flips, rotation (map_coordinates' values), crop, flow's signs and vectors; images and clips, any
channel count, stacked folds; and its gradient is theirs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microexp.kernels import augment as augment_kernel
from microexp.train import augment

pytestmark = pytest.mark.skipif(not augment_kernel.available(), reason="CPU kernel not built")

_CONFIGS = [
    {"flip_h": True, "crop": 2, "rotation": 8.0},  # configs/ststnet_megc.py's
    {"flip_h": True, "flip_v": True, "rotation": 180.0},
    {"crop": 3},
    {"flip_v": True},
    {"flip_h": True, "crop": 1, "rotation": 30.0, "flow_aware": False},
    {"flip_h": True, "flip_v": True, "crop": 4, "rotation": 45.0},
]


def _both(cfg, x, is_flow, seed=0):
  key = jax.random.key(seed)
  got = jax.jit(lambda k, x: augment.augment(k, x, cfg, is_flow=is_flow))(key, x)
  params = augment.draw(key, x.shape[0], cfg)
  want = jax.jit(lambda p, x: augment._apply_each(p, x, cfg, is_flow=is_flow))(params, x)  # pylint: disable=protected-access
  return np.asarray(got), np.asarray(want)


def _data(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, shape), jnp.float32)


@pytest.mark.parametrize("is_flow", [True, False])
@pytest.mark.parametrize("cfg", _CONFIGS)
@pytest.mark.parametrize("shape", [(32, 28, 28, 3), (6, 17, 23, 5), (7, 6, 9, 1), (9, 12, 10, 2),
                                   (5, 4, 13, 11, 3)])  # the last: clips [B, T, H, W, C]
def test_equals_the_pure_jax_transforms(shape, cfg, is_flow):
  x = _data(shape, seed=sum(shape))
  got, want = _both(cfg, x, is_flow, seed=len(shape))
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
  assert not np.array_equal(got, np.asarray(x))  # it did transform


@pytest.mark.parametrize("is_flow", [True, False])
def test_every_angle_of_a_full_turn(is_flow):
  """Angles across -180 .. 180 degrees, each sample its own (map_coordinates' values). Source
  points up to 20 pixels from the centre carry float32 rounding of ~2e-6 pixels, which the two
  evaluation orders (C++ and XLA) round differently by a few ulps: up to ~1.6e-5 of values in
  [-1, 1] (measured over these 288 maps), hence 2e-5 here."""
  x = _data((96, 28, 28, 3), seed=1)
  for seed in range(3):
    got, want = _both({"rotation": 180.0}, x, is_flow, seed=seed)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)


def test_stacked_folds_are_each_their_own_batch():
  """A fold axis in front (the engine's vmapped folds): each fold's batch as on its own."""
  cfg = _CONFIGS[0]
  keys = jax.random.split(jax.random.key(3), 3)
  x = _data((3, 40, 28, 28, 3), seed=2)
  got = jax.jit(jax.vmap(lambda k, x: augment.augment(k, x, cfg, is_flow=True)))(keys, x)
  for f in range(3):
    params = augment.draw(keys[f], 40, cfg)
    want = augment._apply_each(params, x[f], cfg, is_flow=True)  # pylint: disable=protected-access
    np.testing.assert_allclose(np.asarray(got[f]), np.asarray(want), rtol=0, atol=1e-5)


def test_the_gradient_is_the_pure_jax_transforms():
  cfg = _CONFIGS[0]
  key = jax.random.key(4)
  x = _data((4, 28, 28, 3), seed=4)
  target = _data((4, 28, 28, 3), seed=5)
  loss = lambda f: lambda x: jnp.sum((f(x) - target) ** 2)
  params = augment.draw(key, 4, cfg)
  got = jax.grad(loss(lambda x: augment.augment(key, x, cfg, is_flow=True)))(x)
  want = jax.grad(loss(lambda x: augment._apply_each(params, x, cfg, is_flow=True)))(x)  # pylint: disable=protected-access
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-5)
  assert np.abs(np.asarray(want)).max() > 0.1


def test_bad_shapes_are_refused():
  with pytest.raises(ValueError, match=r"\[\.\.\., B, T, H, W, C\]"):
    augment_kernel.augment(jnp.zeros((2, 8, 8, 3)), jnp.zeros((2, 6)), crop=0, flow=True,
                           signed_flips=True, rotate=True)
  with pytest.raises(ValueError, match="params"):
    augment_kernel.augment(jnp.zeros((2, 1, 8, 8, 3)), jnp.zeros((3, 6)), crop=0, flow=True,
                           signed_flips=True, rotate=True)


def test_frames_under_two_pixels_use_the_pure_jax_transforms():
  x = _data((3, 1, 9, 2), seed=6)
  got, want = _both(_CONFIGS[0], x, True)
  np.testing.assert_array_equal(got, want)


def test_a_large_batch_spread_over_threads_is_the_same():
  """Batches of >= 2^20 values run on XLA's intra-op pool, each example on some thread."""
  cfg = _CONFIGS[0]
  keys = jax.random.split(jax.random.key(8), 2)
  x = _data((2, 48, 64, 64, 3), seed=8)  # 1.2M values
  got = jax.jit(jax.vmap(lambda k, x: augment.augment(k, x, cfg, is_flow=True)))(keys, x)
  for f in range(2):
    params = augment.draw(keys[f], 48, cfg)
    want = augment._apply_each(params, x[f], cfg, is_flow=True)  # pylint: disable=protected-access
    np.testing.assert_allclose(np.asarray(got[f]), np.asarray(want), rtol=0, atol=1e-5)
