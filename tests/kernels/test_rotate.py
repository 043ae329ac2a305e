"""The rotation CPU kernel equals the augmentation's gather (map_coordinates' values), any angle."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microexp.kernels import rotate
from microexp.train import augment


@pytest.mark.parametrize("shape", [(28, 28, 3), (17, 23, 5), (6, 9, 1)])
def test_equals_the_gather_for_every_angle(shape):
  rng = np.random.default_rng(sum(shape))
  angles = jnp.asarray(np.deg2rad(np.linspace(-180, 180, 41)), jnp.float32)
  maps = jnp.asarray(rng.standard_normal((len(angles), *shape)), jnp.float32)
  got = jax.jit(jax.vmap(lambda a, m: rotate.rotate(m, jnp.stack([jnp.cos(a), jnp.sin(a)]))))(
      angles, maps)
  want = jax.jit(jax.vmap(augment._gather_resample))(angles, maps)  # pylint: disable=protected-access
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-5)


def test_stacked_leading_axes_and_many_maps():
  """Folds x batch of maps (the threaded path: more than a few small maps per call)."""
  rng = np.random.default_rng(0)
  angles = jnp.asarray(rng.uniform(-0.3, 0.3, (3, 40)), jnp.float32)
  maps = jnp.asarray(rng.standard_normal((3, 40, 28, 28, 3)), jnp.float32)
  one = lambda a, m: rotate.rotate(m, jnp.stack([jnp.cos(a), jnp.sin(a)]))
  got = jax.jit(jax.vmap(jax.vmap(one)))(angles, maps)
  want = jax.jit(jax.vmap(jax.vmap(augment._gather_resample)))(angles, maps)  # pylint: disable=protected-access
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-5)
