"""Test-time augmentation: flow-aware horizontal flip.

A mirrored face moves mirrored: flipping a flow image left-right and negating u (channel 0) gives
exactly the flow of the mirrored clip (v, magnitude and strain are unchanged). The flip is the
augmentation's own (`microexp.train.augment._flip`), so training and test time agree.
"""

from __future__ import annotations

from typing import Callable

import jax

from microexp.train import augment


def flip_flow(x: jax.Array, *, is_flow: bool = True) -> jax.Array:
  """x: [..., H, W, C] (u, v, ... for flow) -> the mirrored input, u negated when `is_flow`."""
  return augment._flip(x, x.ndim - 2, True, 0 if is_flow else None)  # pylint: disable=protected-access


def flip_tta(logits_fn: Callable[[jax.Array], jax.Array], x: jax.Array, *,
             is_flow: bool = True, multi_label: bool = False) -> jax.Array:
  """Mean class probabilities [B, K] of `logits_fn` on x [B, H, W, C] and on its mirror
  (softmax over K; per-output sigmoid when `multi_label`, the AU task)."""
  probs = jax.nn.sigmoid if multi_label else lambda z: jax.nn.softmax(z, -1)
  mirrored = flip_flow(x, is_flow=is_flow)
  return (probs(logits_fn(x)) + probs(logits_fn(mirrored))) / 2.0
