"""models/dropout.py: nn.Dropout's semantics from fewer random bits."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microexp.models import dropout


# Rate 0.5 (the MEGC networks') in the fast suite; each other rate compiles its own draw: slow.
@pytest.mark.parametrize("rate", [0.5, pytest.param(0.25, marks=pytest.mark.slow),
                                  pytest.param(0.3, marks=pytest.mark.slow)])
def test_keep_fraction_and_scaling_match_the_rate(rate):
  x = jnp.ones((64, 32, 32))
  y = dropout.Dropout(rate).apply({}, x, deterministic=False,
                                  rngs={"dropout": jax.random.key(3)})
  kept = np.asarray(y != 0)
  # 65536 Bernoulli draws: the kept fraction is within 4 standard deviations of 1 - rate.
  sd = np.sqrt(rate * (1 - rate) / kept.size)
  assert abs(kept.mean() - (1 - rate)) < 4 * sd
  np.testing.assert_allclose(np.asarray(y)[kept], 1.0 / (1.0 - rate), rtol=1e-6)


@pytest.mark.parametrize("keep, bits", [(0.5, 1), (0.75, 2), (0.3125, 4), (3 / 256, 8),
                                        (1 / 1024, 16), (0.3, None)])
def test_narrowest_exact_draw_is_used(keep, bits, monkeypatch):
  assert dropout.field_bits(keep) == bits
  seen = []
  real_bits = jax.random.bits
  monkeypatch.setattr(jax.random, "bits", lambda key, shape, dtype: seen.append((shape, dtype))
                      or real_bits(key, shape, dtype))
  dropout.keep_mask(jax.random.key(0), keep, (8, 10, 16))
  # One 32-bit word per 32 / bits elements (rounded up), or flax's draw.
  assert seen == ([] if bits is None else [((-(-1280 * bits // 32),), jnp.uint32)])


@pytest.mark.parametrize("keep", [0.5, pytest.param(0.75, marks=pytest.mark.slow),
                                  pytest.param(0.3125, marks=pytest.mark.slow)])
def test_packed_fields_are_each_element_s_own_bits(keep):
  """Element i reads bits [b * (i mod 32/b), ...) of word i // (32/b): the masks of an array are
  the row-major prefix of a longer array's (odd sizes included), and each field value occurs."""
  key = jax.random.key(4)
  small = dropout.keep_mask(key, keep, (7, 5))
  large = dropout.keep_mask(key, keep, (700,))
  np.testing.assert_array_equal(np.asarray(small).reshape(-1), np.asarray(large)[:35])
  bits = dropout.field_bits(keep)
  words = np.asarray(jax.random.bits(key, (-(-700 * bits // 32),), jnp.uint32))
  fields = (words[:, None] >> np.arange(0, 32, bits, dtype=np.uint32)) & ((1 << bits) - 1)
  want = fields.reshape(-1)[:700] < keep * (1 << bits)
  np.testing.assert_array_equal(np.asarray(large), want)


def test_masks_are_independent_across_elements_and_folds():
  """Neighbouring elements (same word) and vmapped folds (own keys) draw independently: pair
  frequencies of rate 0.5 masks near 1/4."""
  keys = jax.random.split(jax.random.key(9), 4)
  masks = np.asarray(jax.vmap(lambda k: dropout.keep_mask(k, 0.5, (64, 10, 10, 16)))(keys))
  assert not np.array_equal(masks[0], masks[1])
  flat = masks.reshape(4, -1)
  for a, b in ((flat[:, :-1], flat[:, 1:]), (flat[0], flat[1])):
    both = np.mean(a & b)
    assert abs(both - 0.25) < 4 * np.sqrt(0.25 * 0.75 / a.size)


def test_same_key_same_mask_and_other_keys_differ():
  x = jnp.ones((8, 10, 10, 16))
  apply = lambda seed: dropout.Dropout(0.5).apply({}, x, deterministic=False,
                                                  rngs={"dropout": jax.random.key(seed)})
  np.testing.assert_array_equal(np.asarray(apply(1)), np.asarray(apply(1)))
  assert np.mean(np.asarray(apply(1)) != np.asarray(apply(2))) > 0.3
  jitted = jax.jit(lambda k: dropout.Dropout(0.5).apply({}, x, deterministic=False,
                                                        rngs={"dropout": k}))
  np.testing.assert_array_equal(np.asarray(jitted(jax.random.key(1))), np.asarray(apply(1)))


def test_deterministic_and_edge_rates_match_flax():
  x = jnp.arange(12.0).reshape(3, 4)
  rngs = {"dropout": jax.random.key(0)}
  for rate, deterministic in ((0.5, True), (0.0, False), (1.0, False)):
    ours = dropout.Dropout(rate).apply({}, x, deterministic=deterministic, rngs=rngs)
    flax = nn.Dropout(rate).apply({}, x, deterministic=deterministic, rngs=rngs)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(flax))
