"""The fusion barrier (a custom-call copy) copies exactly, is in the compiled gradient of the
recurrent models, and falls back to the identity where it cannot run; with it the recurrent
models compute the same loss bit for bit and the same gradients up to float rounding (XLA
contracts multiply-adds within a fusion, and the barrier moves fusion boundaries)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microexp import models
from microexp.kernels import fusion_barrier

pytestmark = pytest.mark.skipif(not fusion_barrier.available(), reason="CPU kernel not built")

_TARGET = "microexp_fusion_barrier"


@pytest.mark.parametrize("shape,dtype", [((3, 5, 7), jnp.float32), ((2, 4, 4, 16), jnp.bfloat16),
                                         ((0, 3), jnp.float32), ((), jnp.float32),
                                         ((6,), jnp.int32)])
def test_the_barrier_copies_its_argument(shape, dtype):
  x = jnp.asarray(np.random.default_rng(0).normal(size=shape) * 100, dtype)
  f = jax.jit(lambda x: fusion_barrier.fusion_barrier(x * 2) + 1)
  if x.size:  # XLA folds an empty array to a constant
    assert _TARGET in f.lower(x).compile().as_text()
  got = f(x)
  assert got.dtype == x.dtype and got.shape == x.shape
  np.testing.assert_array_equal(np.asarray(got), np.asarray(x * 2 + 1))


def test_the_barrier_leaves_its_argument_intact():
  """The call may reuse its argument's buffer (an alias): where the argument is still needed,
  XLA must copy it first."""
  x = jnp.arange(12.0).reshape(3, 4)
  y = jax.jit(lambda x: (fusion_barrier.fusion_barrier(x), x * 1))(x)
  np.testing.assert_array_equal(np.asarray(y[0]), np.arange(12.0).reshape(3, 4))
  np.testing.assert_array_equal(np.asarray(y[1]), np.asarray(x))
  np.testing.assert_array_equal(np.asarray(jax.jit(fusion_barrier.fusion_barrier)(x)),
                                np.asarray(x))
  np.testing.assert_array_equal(np.asarray(x), np.arange(12.0).reshape(3, 4))


def test_the_barrier_vmaps():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 3, 5)), jnp.float32)
  got = jax.jit(jax.vmap(lambda r: fusion_barrier.fusion_barrier(jnp.sin(r)) * r))(x)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(jnp.sin(x) * x))


def _recurrence(x, w):
  """An elementwise recurrence unrolled over x's leading axis, its carry behind the barrier."""
  c = jnp.zeros_like(x[0])
  for t in range(x.shape[0]):
    c = fusion_barrier.cotangent_barrier(jnp.tanh(c * w + x[t]))
  return jnp.sum(c * c)


def _same_up_to_rounding(got, want):
  """Equal losses; gradients within 1e-5 of each leaf's largest magnitude."""
  assert np.asarray(got[0]) == np.asarray(want[0])
  for a, b in zip(jax.tree.leaves(got[1]), jax.tree.leaves(want[1])):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.max(np.abs(b)))


def test_cotangent_barrier_keeps_values_and_gradients(monkeypatch):
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(6, 2, 8, 8, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
  grad = lambda: jax.jit(jax.value_and_grad(_recurrence, argnums=(0, 1)))
  compiled = grad().lower(x, w).compile()
  assert compiled.as_text().count(_TARGET) >= x.shape[0] - 1  # the last step's needs none
  got = compiled(x, w)
  batched = jax.jit(jax.vmap(jax.grad(_recurrence, argnums=(0, 1)), in_axes=(0, None)))(
      jnp.stack([x, -x]), w)
  monkeypatch.setattr(fusion_barrier, "available", lambda: False)
  compiled = grad().lower(x, w).compile()
  assert _TARGET not in compiled.as_text()
  want = compiled(x, w)
  _same_up_to_rounding(got, want)
  for i, sign in enumerate((1, -1)):
    want_i = grad()(sign * x, w)
    _same_up_to_rounding((want_i[0], jax.tree.map(lambda b, i=i: b[i], batched)), want_i)


@pytest.mark.parametrize("name,kwargs,clip", [
    pytest.param("convlstm", dict(stem_features=(4,), lstm_features=(4, 8),
                                  dense_features=(8,)), (3, 4, 12, 12, 3),
                 marks=pytest.mark.slow),  # ~15 s to compile its unrolled gradient
    ("cnn_lstm", dict(frame_features=(4,), lstm_features=(8,)), (3, 4, 12, 12, 3)),
])
def test_recurrent_models_train_the_same_with_the_barrier(monkeypatch, name, kwargs, clip):
  """One train step's loss and gradients of the model (padded frames included), with the barrier
  on its carry and without: the same up to rounding; the barrier is in the compiled gradient."""
  model = models.get(name, num_classes=3, **kwargs)
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=clip), jnp.float32)
  mask = jnp.asarray(np.arange(clip[1])[None, :] < np.array([[4], [2], [3]]))
  variables = model.init(jax.random.key(0), x[:1], train=False, mask=mask[:1])

  def grad():  # a new function per use: nothing traced is reused
    def loss(params):
      out, _ = model.apply({**variables, "params": params}, x, train=True, mask=mask,
                           rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats"])
      return jnp.sum(jnp.sin(out))
    return jax.jit(jax.value_and_grad(loss))

  params = variables["params"]
  compiled = grad().lower(params).compile()
  assert _TARGET in compiled.as_text()
  got = compiled(params)
  monkeypatch.setattr(fusion_barrier, "available", lambda: False)
  compiled = grad().lower(params).compile()
  assert _TARGET not in compiled.as_text()
  want = compiled(params)
  _same_up_to_rounding(got, want)
