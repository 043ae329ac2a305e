"""The conv -> ReLU -> max-pool CPU kernel equals flax's layers: outputs, gradients, vmapped."""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microexp.kernels import conv_pool
from microexp.models import lowering

# (batch, h, w, ci, co, kernel, pool, padding): the zoo's specialised layers (STSTNet 16 channels
# with a 3x3 pool, Off-ApexNet's 6 and 16 with 2x2) and run-time shapes (odd sizes, VALID crops).
# The 16-channel path (conv_relu_pool16.h) also on the pixels a VALID pool drops, on windows with
# padding on one side (its compile-time masks) and with two padded rows (its run-time masks); the
# narrow kernel gradient (conv_relu_pool_narrow.h, Off-ApexNet's first layer) and the 16-channel
# input gradient on padded windows and on dropped pixels too.
CASES = [
    (4, 28, 28, 3, 16, 3, 3, "SAME"),
    (3, 28, 28, 1, 6, 5, 2, "SAME"),
    (3, 14, 14, 6, 16, 5, 2, "SAME"),
    (2, 11, 9, 2, 7, 3, 2, "VALID"),
    (2, 10, 13, 4, 5, 3, 3, "SAME"),
    (1, 7, 8, 3, 16, 1, 3, "VALID"),
    (2, 28, 28, 3, 16, 3, 3, "VALID"),
    (2, 13, 15, 6, 16, 5, 2, "SAME"),
    (2, 25, 26, 3, 16, 3, 3, ((2, 1), (1, 1))),
    (2, 13, 15, 1, 6, 5, 2, "SAME"),
    (2, 13, 15, 1, 6, 5, 2, "VALID"),
    (2, 13, 15, 6, 16, 5, 2, "VALID"),
]


def _case_id(case) -> str:
  return "x".join(map(str, case[:7])) + str(case[7]).replace(" ", "")


def _arrays(rng, lead, b, h, w, ci, co, k, *, integer=False):
  """Random x, kernel, bias. Not integers: normal draws rounded to multiples of 1/16 (x) and
  1/64 (kernel, bias), so that every pre-activation is exact in float32 whatever the summation
  order: the kernel and flax then take the same ReLU and max/min decisions, which a rounding
  difference at z ~ 0 or at a near-tie would flip (a discontinuous gradient, not an error)."""
  if integer:
    draw = lambda s, scale: rng.integers(-2, 3, s).astype(np.float32)
  else:
    draw = lambda s, scale: (np.round(rng.standard_normal(s) * scale * 64) / 64).astype(np.float32)
  x = draw((*lead, b, h, w, ci), 1.0)
  kernel = draw((*lead, k, k, ci, co), 0.3)
  bias = draw((*lead, co), 0.1)
  if not integer:
    x = np.round(x * 16) / 16
  return jnp.asarray(x), jnp.asarray(kernel), jnp.asarray(bias)


def _fns(pool, padding):
  ours = lambda x, k, b: lowering.conv_relu_max_pool(x, k, b, (pool, pool), padding, stats=True)
  ref = lambda x, k, b: conv_pool.reference(x, k, b, (pool, pool), padding)
  return ours, ref


def _outputs_and_grads(fn, args, cotangents):
  def loss(*a):
    return sum(jnp.sum(o * c) for o, c in zip(fn(*a), cotangents))
  return jax.jit(lambda *a: (fn(*a), jax.grad(loss, argnums=(0, 1, 2))(*a)))(*args)


def _assert_close(got, want, rtol=1e-5):
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    scale = float(jnp.max(jnp.abs(w))) or 1.0
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w, np.float32),
                               rtol=0, atol=rtol * scale)


def test_the_kernel_is_built_here():
  """The tests below check the kernel itself: on this CPU it must build (g++ is installed)."""
  assert conv_pool.available()


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("folds", [0, 3])
def test_outputs_and_gradients_equal_flax(case, folds):
  b, h, w, ci, co, k, pool, padding = case
  rng = np.random.default_rng(zlib.crc32(repr(case).encode()) + folds)  # the same every run
  lead = (folds,) if folds else ()
  args = _arrays(rng, lead, b, h, w, ci, co, k)
  ours, ref = _fns(pool, padding)
  if folds:  # stacked folds: vmapped over the leading axis, parameters per fold
    ours, ref = jax.vmap(ours), jax.vmap(ref)
  shapes = jax.eval_shape(ref, *args)
  cotangents = [jnp.asarray(rng.standard_normal(s.shape), jnp.float32) for s in shapes]
  _assert_close(_outputs_and_grads(ours, args, cotangents),
                _outputs_and_grads(ref, args, cotangents))


@pytest.mark.parametrize("case", [CASES[0], CASES[3]], ids=["ststnet", "valid"])
def test_ties_take_the_first_max_and_min_as_the_library(case):
  """Small integers: many equal values per window; the gradient goes to the first (row-major)
  max and min of each window, as nn.max_pool's."""
  b, h, w, ci, co, k, pool, padding = case
  rng = np.random.default_rng(5)
  args = _arrays(rng, (), b, h, w, ci, co, k, integer=True)
  ours, ref = _fns(pool, padding)
  shapes = jax.eval_shape(ref, *args)
  cotangents = [jnp.asarray(rng.standard_normal(s.shape), jnp.float32) for s in shapes]
  _assert_close(_outputs_and_grads(ours, args, cotangents),
                _outputs_and_grads(ref, args, cotangents))


def test_without_stats_the_sums_are_zero_and_the_pools_the_same():
  rng = np.random.default_rng(2)
  x, kernel, bias = _arrays(rng, (), *CASES[0][:6])
  with_stats = lowering.conv_relu_max_pool(x, kernel, bias, (3, 3), "SAME", stats=True)
  without = lowering.conv_relu_max_pool(x, kernel, bias, (3, 3), "SAME", stats=False)
  np.testing.assert_array_equal(without.max, with_stats.max)
  np.testing.assert_array_equal(without.min, with_stats.min)
  assert not np.any(np.asarray(without.sum)) and not np.any(np.asarray(without.sum_sq))
  assert np.all(np.asarray(with_stats.sum) > 0)


def test_results_are_the_same_bits_every_run():
  """Sums run in a fixed order whatever the threads: a resumed run repeats its numbers."""
  rng = np.random.default_rng(3)
  x, kernel, bias = _arrays(rng, (8,), *CASES[0][:6])
  fn = jax.jit(jax.vmap(lambda x, k, b: jax.grad(
      lambda k: jnp.sum(jnp.sin(lowering.conv_relu_max_pool(x, k, b, (3, 3), "SAME",
                                                            stats=True).sum)))(k)))
  first = np.asarray(fn(x, kernel, bias))
  for _ in range(3):
    np.testing.assert_array_equal(np.asarray(fn(x, kernel, bias)), first)


def test_uses_kernel_follows_the_impl():
  shape, kernel = (4, 28, 28, 3), (3, 3, 3, 16)
  assert lowering.uses_kernel("auto", shape, kernel, (3, 3), "SAME")
  assert lowering.uses_kernel("native", shape, kernel, (3, 3), "SAME")
  for impl in ("xla", "matmul"):
    assert not lowering.uses_kernel(impl, shape, kernel, (3, 3), "SAME")
  # What the kernel does not compute: 'auto' goes to the pure-JAX layers, 'native' says why.
  assert not lowering.uses_kernel("auto", shape, kernel, (3, 3), "SAME", jnp.bfloat16)
  assert not lowering.uses_kernel("auto", shape, (2, 2, 3, 16), (3, 3), "SAME")
  with pytest.raises(ValueError, match="conv_impl='native'"):
    lowering.uses_kernel("native", shape, (2, 2, 3, 16), (3, 3), "SAME")
