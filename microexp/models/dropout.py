"""Dropout drawing its mask from as few random bits as give the keep probability exactly.

flax's `nn.Dropout` draws a 32-bit uniform per element (one threefry block per element). A keep
probability `p` that is a multiple of 1/256 (rate 0.5, 0.25, 0.75, ...) is exactly
`P(b < 256 p)` for a uniform 8-bit `b`: a quarter of the random words. Multiples of 1/65536 use
16 bits; any other rate flax's 32-bit draw. Same key, rng collection and scaling as nn.Dropout;
the mask is a deterministic function of the key, so reruns and resumed runs repeat it.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

_NARROW_BITS = (8, 16)


def keep_mask(key, keep: float, shape) -> jax.Array:
  """Bool `shape`: True with probability `keep` per element, from the narrowest exact draw."""
  for bits in _NARROW_BITS:
    threshold = keep * (1 << bits)
    if threshold == int(threshold) and 0 < threshold < (1 << bits):
      dtype = jnp.uint8 if bits == 8 else jnp.uint16
      draw = jax.random.bits(key, shape, dtype)
      return draw < jnp.asarray(int(threshold), dtype)
  return jax.random.bernoulli(key, keep, shape)


class Dropout(nn.Module):
  """`nn.Dropout(rate, deterministic)` (inverted: kept values scaled by 1 / (1 - rate); rng
  collection 'dropout') with its mask from `keep_mask`."""

  rate: float
  deterministic: bool | None = None
  rng_collection: str = "dropout"

  @nn.compact
  def __call__(self, inputs, deterministic: bool | None = None, rng=None):
    deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
    if self.rate == 0.0 or deterministic:
      return inputs
    if self.rate == 1.0:
      return jnp.zeros_like(inputs)
    keep = 1.0 - self.rate
    rng = self.make_rng(self.rng_collection) if rng is None else rng
    mask = keep_mask(rng, keep, inputs.shape)
    return jax.lax.select(mask, inputs / keep, jnp.zeros_like(inputs))
