"""Flow-aware horizontal-flip TTA."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from microexp.train import tta


def _flow(seed=0, shape=(2, 6, 5, 3)):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def test_flip_twice_is_identity():
  x = _flow()
  np.testing.assert_array_equal(tta.flip_flow(tta.flip_flow(x)), x)


def test_flip_mirrors_and_negates_u_only():
  x = _flow()
  y = tta.flip_flow(x)
  np.testing.assert_array_equal(y[..., 0], -x[:, :, ::-1, 0])
  np.testing.assert_array_equal(y[..., 1:], x[:, :, ::-1, 1:])
  # A face moving right (u > 0 everywhere) moves left in the mirror.
  right = jnp.ones((1, 4, 4, 3))
  assert np.all(tta.flip_flow(right)[..., 0] < 0)
  # Images (not flow) are only mirrored.
  np.testing.assert_array_equal(tta.flip_flow(x, is_flow=False), x[:, :, ::-1])


def test_flip_tta_averages_both_views_and_is_flip_invariant():
  w = jnp.asarray(np.random.default_rng(1).standard_normal((6 * 5 * 3, 3)), jnp.float32)
  logits_fn = lambda x: x.reshape(x.shape[0], -1) @ w
  x = _flow()
  probs = tta.flip_tta(logits_fn, x)
  assert probs.shape == (2, 3)
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(probs, tta.flip_tta(logits_fn, tta.flip_flow(x)), rtol=1e-6)
