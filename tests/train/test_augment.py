"""On-device augmentation: flow-aware flips, crop, rotation of vectors, mixup."""

from __future__ import annotations

import jax
import jax.numpy as jnp
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


def _map_coordinates_rotation(angle, x):
  """x [H, W, C] rotated by jax.scipy's bilinear map_coordinates (zeros outside), flow vectors
  rotated after resampling: the reference of `augment._rotate`, differentiable."""
  h, w = x.shape[0], x.shape[1]
  c, s = jnp.cos(angle), jnp.sin(angle)
  yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")
  cy, cx = (h - 1) / 2, (w - 1) / 2
  coords = [-s * (xx - cx) + c * (yy - cy) + cy, c * (xx - cx) + s * (yy - cy) + cx]
  out = jnp.stack([jax.scipy.ndimage.map_coordinates(x[..., ch], coords, order=1,
                                                     mode="constant")
                   for ch in range(x.shape[-1])], -1)
  u, v = out[..., 0], out[..., 1]
  return out.at[..., 0].set(c * u - s * v).at[..., 1].set(s * u + c * v)


# One clip's frames share one angle: the reference is the image reference mapped over frames.
_reference_rotation = {3: jax.jit(_map_coordinates_rotation),
                       4: jax.jit(jax.vmap(_map_coordinates_rotation, in_axes=(None, 0)))}
_rotate_flow = jax.jit(lambda a, x: augment._rotate(a, x, True))  # pylint: disable=protected-access


@pytest.mark.parametrize("shape", [(9, 7, 3), (3, 8, 6, 2)])
def test_rotation_equals_bilinear_map_coordinates(shape):
  # The gather-based rotation is jax.scipy's bilinear map_coordinates (zeros outside), plane by
  # plane, with the flow vectors rotated after resampling.
  x = np.random.default_rng(4).normal(size=shape).astype(np.float32)
  for degrees in (-8.0, 3.5, 30.0, 170.0):
    a = np.float32(np.deg2rad(degrees))
    np.testing.assert_allclose(np.asarray(_rotate_flow(a, x)),
                               np.asarray(_reference_rotation[x.ndim](a, x)), atol=1e-5)


def test_batched_rotation_equals_map_coordinates_outputs_and_gradients():
  """The vmapped rotation (as `augment` runs it, angles up to far outside the map) and its
  gradient wrt the input equal map_coordinates' per sample."""
  rng = np.random.default_rng(7)
  x = jnp.asarray(rng.normal(size=(6, 28, 28, 3)), jnp.float32)
  angles = jnp.deg2rad(jnp.asarray([-8.0, 0.0, 2.5, 7.9, 45.0, -135.0], jnp.float32))
  r = jnp.asarray(rng.normal(size=x.shape), jnp.float32)

  def value_and_grad(rotate):
    f = jax.vmap(rotate)
    return f(angles, x), jax.grad(lambda x: jnp.sum(r * f(angles, x)))(x)

  got = jax.jit(lambda: value_and_grad(lambda a, x: augment._rotate(a, x, True)))()  # pylint: disable=protected-access
  want = jax.jit(lambda: value_and_grad(_map_coordinates_rotation))()
  for g, w in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-5)


@pytest.mark.parametrize("shape,max_degrees", [
    ((28, 28, 3), 8.0),
    pytest.param((4, 12, 10, 2), 15.0, marks=pytest.mark.slow),  # clips: the same code, T*C planes
])
def test_shifted_sum_rotation_equals_map_coordinates_outputs_and_gradients(shape, max_degrees):
  """The gather-free rotation (small reach, CPU) equals map_coordinates per sample, vmapped and
  not, outputs and input gradients, for angles up to its bound (both signs, 0, the bound)."""
  h, w = shape[-3], shape[-2]
  reach = augment.rotation_reach(h, w, max_degrees)
  assert reach <= augment.SHIFTED_SUM_MAX_REACH  # the cases exercise the shifted sum
  rng = np.random.default_rng(11)
  x = jnp.asarray(rng.normal(size=(5, *shape)), jnp.float32)
  r = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
  angles = jnp.deg2rad(jnp.asarray([-max_degrees, -0.3 * max_degrees, 0.0, 0.71 * max_degrees,
                                    max_degrees], jnp.float32))
  reference = jax.vmap(_reference_rotation[len(shape)])

  def value_and_grad(f):
    return f(angles, x), jax.grad(lambda x: jnp.sum(r * f(angles, x)))(x)

  rotate = lambda a, x: augment._rotate(a, x, True, max_degrees)  # pylint: disable=protected-access
  got = jax.jit(lambda: value_and_grad(jax.vmap(rotate)))()
  want = jax.jit(lambda: value_and_grad(reference))()
  for g, w_ in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w_), atol=1e-5)
  one = jax.jit(rotate)(angles[0], x[0])
  np.testing.assert_allclose(np.asarray(one), np.asarray(want[0][0]), atol=1e-5)


def test_rotation_reach_bounds_every_bilinear_corner():
  # Every corner a rotation within the bound samples lies within `rotation_reach` of its pixel,
  # and the reach picks the implementation: 28x28 at 8 deg is a shifted sum, 224x224 a gather.
  for h, w, deg in ((28, 28, 8.0), (9, 17, 30.0), (64, 48, 3.0), (5, 11, 180.0)):
    reach = augment.rotation_reach(h, w, deg)
    for a in np.deg2rad(np.linspace(-deg, deg, 11)).astype(np.float32):
      sy, sx = augment._source_coords(a, h, w)  # pylint: disable=protected-access
      off_y = np.asarray(sy) - np.arange(h)[:, None]
      off_x = np.asarray(sx) - np.arange(w)[None, :]
      assert np.floor(off_y).min() >= -reach and np.floor(off_y).max() + 1 <= reach
      assert np.floor(off_x).min() >= -reach and np.floor(off_x).max() + 1 <= reach
  assert augment.rotation_reach(28, 28, 8.0) <= augment.SHIFTED_SUM_MAX_REACH
  assert augment.rotation_reach(224, 224, 8.0) > augment.SHIFTED_SUM_MAX_REACH


def test_draw_covers_the_configured_ranges():
  with jax.threefry_partitionable(False):
    p = augment.draw(jax.random.PRNGKey(5), 4000, _cfg(rotation=8.0, crop=2))
  angles = np.rad2deg(np.asarray(p["angle"]))
  assert angles.min() >= -8.0 and angles.max() <= 8.0 and np.ptp(angles) > 15.0
  assert set(np.unique(np.asarray(p["shift"]))) == {0, 1, 2, 3, 4}
  assert 0.45 < np.asarray(p["flip_h"]).mean() < 0.55
