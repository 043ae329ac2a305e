"""STSTNet's three streams run as one (lowering.fused_conv, one pool and dropout): the published
network's parameters, outputs, batch statistics and gradients, restated here with flax's layers."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microexp import models
from microexp.models import lowering

TOL = 1e-5


class ReferenceSTSTNet(nn.Module):
  """Three separate streams of nn.Conv -> ReLU -> nn.BatchNorm -> nn.max_pool (ststnet.py's
  docstring), concatenated, average-pooled, one dense layer."""

  num_classes: int
  stream_features: tuple = (3, 5, 8)

  @nn.compact
  def __call__(self, x, *, train):
    streams = []
    for i, f in enumerate(self.stream_features):
      s = nn.relu(nn.Conv(f, (3, 3), padding="SAME", name=f"conv{i}")(x))
      s = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{i}")(s)
      streams.append(nn.max_pool(s, (3, 3), (3, 3), "SAME"))
    y = nn.avg_pool(jnp.concatenate(streams, -1), (2, 2), (2, 2), "VALID")
    return nn.Dense(self.num_classes, name="fc")(y.reshape((y.shape[0], -1)))


def _x(shape=(6, 28, 28, 3), seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _close(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=TOL, atol=TOL)


def _train_outputs(model, variables, x):
  """(logits, new batch_stats, parameter gradients) of one train-mode call."""
  r = jnp.asarray(np.random.default_rng(5).standard_normal((x.shape[0], 3)), jnp.float32)

  def loss(params):
    y, upd = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
    return jnp.sum(y * r), (y, upd["batch_stats"])

  (_, (y, stats)), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
  return y, stats, grads


def _jitted_outputs(model, key, x, variables=None):
  """(variables of model.init(key), eval logits, train outputs) in ONE compiled program (run op by
  op, flax's layers dispatch hundreds of small programs); `variables` replaces the init's."""

  @jax.jit
  def run(key, x, variables):
    init = model.init(key, x, train=False)
    variables = init if variables is None else variables
    return init, model.apply(variables, x, train=False), _train_outputs(model, variables, x)

  return run(key, x, variables)


# Slow: test_batch_norm_after_the_pool_equals_the_published_order (fast, 'matmul') checks the same
# outputs, statistics and gradients with random parameters; this one adds the init draws.
@pytest.mark.slow
@pytest.mark.parametrize("impl", ["auto", "xla"])
def test_fused_streams_equal_the_published_network(impl):
  ours = models.get("ststnet", num_classes=3, batch_norm=True, dropout=0.0, conv_impl=impl)
  ref = ReferenceSTSTNet(3)
  x, key = _x(), jax.random.key(7, impl="rbg")  # rbg: threefry init compiles ~4x longer
  variables, ours_eval, ours_train = _jitted_outputs(ours, key, x)
  ref_init, ref_eval, ref_train = _jitted_outputs(ref, key, x, variables)
  _close(variables, ref_init)  # same tree, same init draws
  _close(ours_eval, ref_eval)
  _close(ours_train, ref_train)


@pytest.mark.slow
def test_fused_streams_equal_the_published_network_vmapped_over_folds():
  ours = models.get("ststnet", num_classes=3, batch_norm=True, dropout=0.0)
  ref = ReferenceSTSTNet(3)
  xs = jnp.stack([_x(seed=s) for s in range(3)])
  stacked = jax.jit(jax.vmap(lambda k, x: ours.init(k, x, train=False)))(
      jax.random.split(jax.random.key(0, impl="rbg"), 3), xs)
  run = lambda m: jax.jit(jax.vmap(lambda v, x: _train_outputs(m, v, x)))(stacked, xs)
  _close(run(ours), run(ref))


def _random_variables(variables, seed):
  """`variables` with random parameters and running statistics: BatchNorm scales of both signs
  (and one exactly 0), so the pool after the affine map takes minima too."""
  rng = np.random.default_rng(seed)
  out = jax.tree.map(lambda v: jnp.asarray(rng.standard_normal(v.shape), jnp.float32),
                     variables)
  for i in range(3):
    stats = out["batch_stats"][f"bn{i}"]
    stats["var"] = 0.5 + jnp.abs(stats["var"])
  out["params"]["bn1"]["scale"] = out["params"]["bn1"]["scale"].at[0].set(-2.0).at[1].set(0.0)
  return out


@pytest.mark.parametrize("impl", ["matmul", "native", pytest.param("xla", marks=pytest.mark.slow)])
def test_batch_norm_after_the_pool_equals_the_published_order(impl):
  """STSTNet applies BatchNorm's affine map after the max-pool: outputs, updated statistics and
  gradients of the reference's BN -> pool, with random parameters (scales < 0 pool minima),
  train and eval, one fold and vmapped over stacked folds. 'native': the CPU kernel, its
  statistics from the kernel's channel sums."""
  ours = models.get("ststnet", num_classes=3, batch_norm=True, dropout=0.0, conv_impl=impl)
  ref = ReferenceSTSTNet(3)
  xs = jnp.stack([_x((4, 28, 28, 3), seed=s) for s in range(2)])
  shapes = jax.eval_shape(lambda: ours.init(jax.random.key(0), xs[0], train=False))
  stacked = jax.tree.map(lambda *v: jnp.stack(v), *[_random_variables(shapes, s) for s in (1, 2)])

  def outputs(model, variables, x):
    return _train_outputs(model, variables, x), model.apply(variables, x, train=False)

  def both(model):
    one = lambda v, x: outputs(model, v, x)
    return jax.jit(lambda v, x: (one(jax.tree.map(lambda a: a[0], v), x[0]),
                                 jax.vmap(one)(v, x)))(stacked, xs)

  out, want = both(ours), both(ref)
  # The scale that is exactly 0 gets its gradient from another element of tied windows.
  for o in (out, want):
    for grads in (o[0][0][2], o[1][0][2]):
      grads["bn1"]["scale"] = grads["bn1"]["scale"].at[..., 1].set(0.0)
  _close(out, want)


def test_fused_conv_equals_separate_convs():
  x = _x((2, 9, 9, 4))

  class Separate(nn.Module):
    @nn.compact
    def __call__(self, x):
      return jnp.concatenate([nn.Conv(f, (3, 3), name=f"c{i}")(x) for i, f in enumerate((2, 6))],
                             -1)

  class Fused(nn.Module):
    @nn.compact
    def __call__(self, x):
      return lowering.fused_conv(x, [lowering.ConvParams(f, (3, 3), name=f"c{i}")
                                     for i, f in enumerate((2, 6))], impl="matmul")

  key = jax.random.key(1, impl="rbg")
  variables = jax.jit(Separate().init)(key, x)
  _close(jax.jit(Fused().init)(key, x), variables)
  _close(jax.jit(Fused().apply)(variables, x), jax.jit(Separate().apply)(variables, x))
