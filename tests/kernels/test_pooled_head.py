"""The pooled-head CPU kernel (BatchNorm's affine map of max-pooled maps, dropout, average pool)
equals the same function in pure JAX: outputs and gradients, every dropout field width, scales
of both signs, stacked folds; and STSTNet trains the same through it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microexp import models
from microexp.kernels import pooled_head
from microexp.models import dropout

pytestmark = pytest.mark.skipif(not pooled_head.available(), reason="CPU kernel not built")


def _inputs(rng, lead, b, h, w, c):
  pmax = rng.standard_normal((*lead, b, h, w, c)).astype(np.float32)
  pmin = (pmax - np.abs(rng.standard_normal(pmax.shape))).astype(np.float32)
  a = rng.standard_normal((*lead, c)).astype(np.float32)  # both signs
  shift = rng.standard_normal((*lead, c)).astype(np.float32)
  return tuple(map(jnp.asarray, (pmax, pmin, a, shift)))


def _both(args, key, rate, window):
  """(kernel, reference) outputs and gradients of a random linear loss of the head."""
  pmax, pmin, a, shift = args
  keep = 1.0 - rate
  if rate:
    words, bits, threshold = dropout.packed_words(key, keep, pmax.shape)
    mask = dropout.keep_mask(key, keep, pmax.shape)
  else:
    words, bits, threshold, mask = None, 0, 0, None
  ours = lambda *v: pooled_head.affine_dropout_avg_pool(*v, words, window=window, bits=bits,
                                                        threshold=threshold, keep=keep)
  ref = lambda *v: pooled_head.reference(*v, mask, window=window, keep=keep)
  out_shape = jax.eval_shape(ref, *args).shape
  weights = jax.random.normal(jax.random.fold_in(key, 1), out_shape)
  run = lambda f: jax.jit(jax.value_and_grad(lambda *v: jnp.sum(f(*v) * weights),
                                             argnums=(0, 1, 2, 3)))(*args)
  return run(ours), run(ref), jax.jit(ours)(*args), jax.jit(ref)(*args)


def _close(got, want, tol=1e-5):
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    scale = float(jnp.max(jnp.abs(w))) or 1.0
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=tol * scale)


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.75, 1 - 1 / 16, 1 - 3 / 256, 0.0])
@pytest.mark.parametrize("shape,window", [((32, 10, 10, 16), (2, 2)), ((3, 7, 9, 32), (2, 3)),
                                          ((2, 6, 6, 16), (3, 3))])
def test_equals_the_pure_jax_head(shape, window, rate):
  """Rates whose fields are 1, 2, 4, 8 and 16 bits, and none; maps the window does not tile
  (7 x 9 by 2 x 3: the last row and column unused, their gradient 0)."""
  rng = np.random.default_rng(sum(shape) + int(rate * 1000))
  args = _inputs(rng, (), *shape)
  (loss, grads), (ref_loss, ref_grads), out, ref_out = _both(args, jax.random.key(7), rate, window)
  _close(out, ref_out)
  _close(grads, ref_grads)
  np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-5)
  assert float(jnp.max(jnp.abs(ref_grads[2]))) > 0  # the scale's gradient is exercised


def test_stacked_folds_each_use_their_own_words():
  rng = np.random.default_rng(0)
  args = _inputs(rng, (3,), 8, 10, 10, 16)
  keys = jax.random.split(jax.random.key(1), 3)
  packed = jax.vmap(lambda k: dropout.packed_words(k, 0.5, args[0].shape[1:])[0])(keys)
  got = jax.jit(jax.vmap(lambda *v: pooled_head.affine_dropout_avg_pool(
      *v, window=(2, 2), bits=1, threshold=1, keep=0.5)))(*args, packed)
  for f in range(3):
    mask = dropout.keep_mask(keys[f], 0.5, args[0].shape[1:])
    want = pooled_head.reference(*(v[f] for v in args), mask, window=(2, 2), keep=0.5)
    _close(got[f], want)


def test_unsupported_maps_are_refused():
  args = _inputs(np.random.default_rng(0), (), 2, 10, 10, 8)
  with pytest.raises(ValueError, match="multiples of 16"):
    pooled_head.affine_dropout_avg_pool(*args, None, window=(2, 2), bits=0, threshold=0, keep=1.0)


def test_ststnet_trains_the_same_through_the_kernel(monkeypatch):
  """The recipe's STSTNet (BatchNorm, dropout 0.5), one train step's loss, gradients and batch
  statistics with the kernel and with the pure-JAX layers (same dropout key, same mask)."""
  model = models.get("ststnet", num_classes=3, batch_norm=True, dropout=0.5)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(32, 28, 28, 3)), jnp.float32)
  variables = model.init(jax.random.key(0), x[:1], train=False)
  params = dict(variables["params"])
  params["bn1"] = {**params["bn1"], "scale": -0.7 * jnp.ones_like(params["bn1"]["scale"])}

  def step(p):  # a new function per use: nothing traced is reused
    def loss(p):
      out, updates = model.apply({"params": p, "batch_stats": variables["batch_stats"]}, x,
                                 train=True, rngs={"dropout": jax.random.key(5)},
                                 mutable=["batch_stats"])
      return jnp.sum(jnp.sin(out)), updates
    return jax.value_and_grad(loss, has_aux=True)(p)

  fresh = lambda: lambda p: step(p)
  assert "pooled_head" in str(jax.make_jaxpr(fresh())(params))
  got = jax.jit(fresh())(params)
  monkeypatch.setattr(pooled_head, "available", lambda: False)
  assert "pooled_head" not in str(jax.make_jaxpr(fresh())(params))
  want = jax.jit(fresh())(params)
  _close(got, want, tol=2e-5)
