"""models/dropout.py: nn.Dropout's semantics from fewer random bits."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microexp.models import dropout


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.3])
def test_keep_fraction_and_scaling_match_the_rate(rate):
  x = jnp.ones((64, 32, 32))
  y = dropout.Dropout(rate).apply({}, x, deterministic=False,
                                  rngs={"dropout": jax.random.key(3)})
  kept = np.asarray(y != 0)
  # 65536 Bernoulli draws: the kept fraction is within 4 standard deviations of 1 - rate.
  sd = np.sqrt(rate * (1 - rate) / kept.size)
  assert abs(kept.mean() - (1 - rate)) < 4 * sd
  np.testing.assert_allclose(np.asarray(y)[kept], 1.0 / (1.0 - rate), rtol=1e-6)


@pytest.mark.parametrize("keep, bits", [(0.5, 8), (0.75, 8), (1 / 1024, 16), (0.3, 32)])
def test_narrowest_exact_draw_is_used(keep, bits, monkeypatch):
  seen = []
  real_bits = jax.random.bits
  monkeypatch.setattr(jax.random, "bits",
                      lambda key, shape, dtype: seen.append(dtype) or real_bits(key, shape, dtype))
  dropout.keep_mask(jax.random.key(0), keep, (4, 4))
  assert seen == ([jnp.uint8] if bits == 8 else [jnp.uint16] if bits == 16 else [])


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
