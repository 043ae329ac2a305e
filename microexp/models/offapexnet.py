"""Off-ApexNet (Gan et al., Signal Processing: Image Communication 2019): two streams on u and v.

Each stream (horizontal flow u, vertical flow v, one channel each): conv 5x5 6 filters -> ReLU ->
max-pool 2 -> conv 5x5 16 filters -> ReLU -> max-pool 2 (28x28 -> 7x7x16); the flattened streams
are concatenated and go through FC 1024 -> FC 1024 -> dropout -> output.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from microexp import models
from microexp.models import dropout
from microexp.models import layers
from microexp.models import lowering

Dtype = Any


class OffApexNet(nn.Module):
  """`[B, H, W, 2 or 3]` flow (channel 0 = u, 1 = v; others ignored) -> logits `[B, num_classes]`.

  Attributes:
    num_classes: number of emotion classes.
    conv_features: filters of the two 5x5 convs of each stream.
    dense_features: widths of the fully connected layers.
    dropout: dropout rate before the output layer.
    conv_impl: how convs and pools are computed (`lowering.IMPLS`; same parameters for all).
    dtype: compute dtype; parameters stay float32.
  """

  num_classes: int
  conv_features: Sequence[int] = (6, 16)
  dense_features: Sequence[int] = (1024, 1024)
  dropout: float = 0.5
  conv_impl: str = "auto"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    del mask  # images carry no time axis
    layers.check_image_inputs("offapexnet", x, min_channels=2)
    streams = []
    for name, channel in (("u", 0), ("v", 1)):
      s = x[..., channel:channel + 1]
      for i, f in enumerate(self.conv_features):
        conv_name = f"{name}_conv{i}"
        if lowering.uses_kernel(self.conv_impl, s.shape, (5, 5, s.shape[-1], f), (2, 2), "SAME",
                                self.dtype):  # the CPU kernel: nn.Conv's parameters, one call
          kernel, bias = lowering.ConvParams(f, (5, 5), name=conv_name)(s.shape[-1])
          s = lowering.conv_relu_max_pool(s, kernel, bias, (2, 2), "SAME").max
          continue
        s = nn.relu(lowering.Conv(f, (5, 5), padding="SAME", dtype=self.dtype,
                                  impl=self.conv_impl, name=conv_name)(s))
        s = lowering.max_pool(s, (2, 2), (2, 2), "SAME", impl=self.conv_impl)
      streams.append(s.reshape((s.shape[0], -1)))
    y = jnp.concatenate(streams, axis=-1)
    for i, f in enumerate(self.dense_features):
      y = nn.relu(nn.Dense(f, dtype=self.dtype, name=f"fc{i}")(y))
    y = dropout.Dropout(self.dropout, deterministic=not train)(y)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="out")(y).astype(jnp.float32)


@models.register("offapexnet")
def offapexnet(num_classes: int, dtype: Dtype = jnp.float32, **kwargs) -> OffApexNet:
  """Off-ApexNet on `[B, 28, 28, 2 or 3]` flow; kwargs: see `OffApexNet`."""
  return OffApexNet(num_classes=num_classes, dtype=dtype, **kwargs)
