"""Dropout drawing its mask from as few random bits as give the keep probability exactly.

flax's `nn.Dropout` draws a 32-bit uniform per element (one threefry block per element). A keep
probability `p` that is a multiple of 2^-b for b in 1, 2, 4, 8, 16 is exactly `P(f < 2^b p)` for
a uniform b-bit field `f`: each random 32-bit word gives 32 / b elements their fields (rate 0.5:
one bit each, 32 masks per word), the fields of consecutive elements in row-major order, so the
mask is a broadcast and a bitcast of the words (no transpose). Any other rate: flax's 32-bit
draw. Same key, rng collection and scaling as nn.Dropout; the mask is a deterministic function
of the key, so reruns and resumed runs repeat it.

Random stream: until 2026-12 exact rates drew 8- or 16-bit fields with `jax.random.bits(key,
shape, uint8 / uint16)`; the packed words give other (equally distributed) masks for the same
key, so runs from before then do not repeat their dropout masks bit for bit.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

_FIELD_BITS = (1, 2, 4, 8, 16)


def field_bits(keep: float) -> int | None:
  """The narrowest b of _FIELD_BITS with `keep * 2^b` an integer in (0, 2^b), else None."""
  for bits in _FIELD_BITS:
    threshold = keep * (1 << bits)
    if threshold == int(threshold) and 0 < threshold < (1 << bits):
      return bits
  return None


def packed_words(key, keep: float, shape) -> tuple[jax.Array, int, int]:
  """(words [N] uint32, bits, threshold) of `keep_mask` for a keep probability with `field_bits`:
  element j of `shape` (row-major) is kept where its field, bits b*j .. b*j + b - 1 of the words
  read as one little-endian bit string (word j // (32 / b), from its low bits up), is below the
  threshold. The mask's random draw, for kernels that unpack it themselves."""
  bits = field_bits(keep)
  if bits is None:
    raise ValueError(f"keep probability {keep} is not a multiple of 2^-b for b in {_FIELD_BITS}")
  per_word = 32 // bits
  words = jax.random.bits(key, (-(-math.prod(shape) // per_word),), jnp.uint32)
  return words, bits, int(keep * (1 << bits))


def keep_mask(key, keep: float, shape) -> jax.Array:
  """Bool `shape`: True with probability `keep` per element, from the narrowest exact draw."""
  if field_bits(keep) is None:
    return jax.random.bernoulli(key, keep, shape)
  words, bits, threshold = packed_words(key, keep, shape)
  n = math.prod(shape)
  shifts = jnp.arange(0, 32, bits, dtype=jnp.uint32)
  fields = (words[:, None] >> shifts) & jnp.uint32((1 << bits) - 1)
  mask = fields < jnp.uint32(threshold)
  return mask.reshape(-1)[:n].reshape(shape)


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

  def packed(self, shape, rng=None) -> tuple[jax.Array, int, int]:
    """The mask `__call__` would draw for inputs of `shape`, as `packed_words` (same key): for
    layers that apply the dropout in a kernel of their own (kernels/pooled_head.py). Call in
    train mode with a rate that `field_bits` packs."""
    rng = self.make_rng(self.rng_collection) if rng is None else rng
    return packed_words(rng, 1.0 - self.rate, shape)
