"""models/batch_norm.py: flax nn.BatchNorm's variables, outputs, statistics and gradients."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microexp.models import batch_norm

TOL = 1e-5


def _x(shape, seed=0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(1.5 + 2.0 * rng.standard_normal(shape), jnp.float32)


def _variables(c, seed=1):
  rng = np.random.default_rng(seed)
  f = lambda: jnp.asarray(rng.standard_normal(c), jnp.float32)
  return {"params": {"scale": 1.0 + 0.3 * f(), "bias": f()},
          "batch_stats": {"mean": f(), "var": 1.0 + 0.2 * jnp.abs(f())}}


def _run(module, variables, x, *, train, mask=None):
  """(output, new batch_stats, grads of a loss w.r.t. (x, params)), as one compiled program (op
  by op, a gradient through flax's BatchNorm dispatches dozens of small programs)."""
  r = jnp.asarray(np.random.default_rng(2).standard_normal(x.shape), jnp.float32)

  @jax.jit
  def run(variables, x, mask):
    def loss(x, params):
      y, updates = module.apply({**variables, "params": params}, x, use_running_average=not train,
                                mask=mask, mutable=["batch_stats"])
      return jnp.sum(jnp.tanh(y) * r), (y, updates["batch_stats"])

    (_, (y, stats)), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        x, variables["params"])
    return y, stats, grads

  return run(variables, x, mask)


def _close(a, b):
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape", [(16, 7, 7, 3), (8, 10, 10, 16), (12, 5)])
def test_equals_flax_batch_norm_outputs_stats_and_gradients(shape, train):
  x, variables = _x(shape), _variables(shape[-1])
  ours = _run(batch_norm.BatchNorm(momentum=0.9), variables, x, train=train)
  flax = _run(nn.BatchNorm(momentum=0.9), variables, x, train=train)
  _close(ours, flax)
  assert jax.tree.structure(ours) == jax.tree.structure(flax)


@pytest.mark.parametrize("train", [True, False])
def test_equals_flax_batch_norm_vmapped_over_stacked_folds(train):
  folds, shape = 3, (8, 6, 6, 5)
  xs = jnp.stack([_x(shape, seed=s) for s in range(folds)])
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *[_variables(5, seed=s) for s in range(folds)])
  run = lambda m: jax.vmap(lambda v, x: _run(m, v, x, train=train))(stacked, xs)
  _close(run(batch_norm.BatchNorm(momentum=0.9)), run(nn.BatchNorm(momentum=0.9)))


def test_masked_statistics_equal_flax():
  x, variables = _x((10, 4, 4, 6)), _variables(6)
  mask = jnp.asarray(np.arange(10) < 7)[:, None, None, None]
  ours = _run(batch_norm.BatchNorm(momentum=0.8), variables, x, train=True, mask=mask)
  flax = _run(nn.BatchNorm(momentum=0.8), variables, x, train=True, mask=mask)
  _close(ours, flax)


@pytest.mark.parametrize("shape,mask_shape,axes", [
    ((10, 4, 4, 6), (10, 1, 1, 1), (0, 1, 2)),  # padded frames (the sequence models)
    ((4, 6, 8, 3), (6, 1, 3), (0, 1, 2)),  # mask on a feature axis, shorter than x
    ((5, 4, 2), (5, 4, 2), (0, 1)),  # one mask value per element
    ((2, 3, 4, 5), (3, 1, 1), (0, 2, 3)),  # feature axis 1
    ((8, 3), (8, 1), (0,)),
])
def test_masked_moments_equal_the_masked_mean(shape, mask_shape, axes):
  """`moments` counts the selected elements from the mask alone; the same moments as
  `jnp.mean(where=mask)` (to rounding: the sums' fusion differs), vmapped too."""
  x = _x(shape)
  mask = jnp.asarray(np.random.default_rng(3).random(mask_shape) < 0.7).at[(0,) * len(
      mask_shape)].set(True)
  ok = np.broadcast_to(np.asarray(mask), shape).any(axis=axes)  # a feature with none: 0/0 = nan

  def reference(x, mask):
    mean = jnp.mean(x, axes, where=mask)
    return mean, jnp.maximum(0.0, jnp.mean(x * x, axes, where=mask) - mean * mean)

  for got, want in [(jax.jit(batch_norm.moments, static_argnums=1)(x, axes, mask),
                     jax.jit(reference)(x, mask)),
                    (jax.vmap(lambda x: batch_norm.moments(x, axes, mask))(jnp.stack([x, -x])),
                     jax.vmap(lambda x: reference(x, mask))(jnp.stack([x, -x])))]:
    for g, w in zip(got, want):
      assert g.shape == w.shape
      np.testing.assert_allclose(np.asarray(g)[..., ok], np.asarray(w)[..., ok], rtol=1e-6,
                                 atol=1e-6)
      assert np.isnan(np.asarray(g)[..., ~ok]).all()


def test_masked_count_is_exact_on_large_maps():
  mask = jnp.asarray(np.arange(96) % 5 != 0).reshape(96, 1, 1, 1)
  count = batch_norm._masked_count(  # pylint: disable=protected-access
      mask, (96, 64, 64, 16), (0, 1, 2))
  np.testing.assert_array_equal(np.asarray(count), np.full(16, 76 * 64 * 64, np.float32))


def test_initialises_the_same_variables_as_flax():
  x = _x((4, 5, 5, 7))
  ours = batch_norm.BatchNorm(use_running_average=False).init(jax.random.key(0), x)
  flax = nn.BatchNorm(use_running_average=False).init(jax.random.key(0), x)
  assert jax.tree.structure(ours) == jax.tree.structure(flax)
  _close(ours, flax)


def test_cross_device_options_are_a_clear_error():
  with pytest.raises(ValueError, match="batch_norm.py.*axis_name"):
    batch_norm.BatchNorm(use_running_average=False, axis_name="batch").init(
        jax.random.key(0), _x((4, 3)))
