"""Custom flow CNN (thesis method 5): a plain CNN on the onset->apex flow (u, v, magnitude).

Conv-BN-ReLU-pool blocks, global average pooling (so any input from 48x48 to 224x224 gives the same
parameter shapes), one hidden dense layer with dropout, and the output layer.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from microexp import models
from microexp.models import dropout
from microexp.models import layers

Dtype = Any


class FlowCNN(nn.Module):
  """`[B, H, W, C]` flow images -> logits `[B, num_classes]`.

  Attributes:
    num_classes: number of emotion classes.
    features: conv widths, one conv-BN-ReLU-maxpool(2) block each.
    dense_features: width of the hidden dense layer (0: none).
    dropout: dropout rate before the hidden and output dense layers.
    conv_impl: how convs and pools are computed (`lowering.IMPLS`; same parameters for all).
    dtype: compute dtype; parameters stay float32.
  """

  num_classes: int
  features: Sequence[int] = (32, 64, 128)
  dense_features: int = 128
  dropout: float = 0.5
  conv_impl: str = "auto"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    del mask  # images carry no time axis
    layers.check_image_inputs("flow_cnn", x)
    for f in self.features:
      x = layers.ConvBlock(f, conv_impl=self.conv_impl, dtype=self.dtype)(x, train=train)
    y = jnp.mean(x, axis=(1, 2))
    if self.dense_features:
      y = dropout.Dropout(self.dropout, deterministic=not train)(y)
      y = nn.relu(nn.Dense(self.dense_features, dtype=self.dtype)(y))
    y = dropout.Dropout(self.dropout, deterministic=not train)(y)
    return nn.Dense(self.num_classes, dtype=self.dtype)(y).astype(jnp.float32)


@models.register("flow_cnn")
def flow_cnn(num_classes: int, dtype: Dtype = jnp.float32, **kwargs) -> FlowCNN:
  """Custom flow CNN on `[B, H, W, C]` apex flow; kwargs: see `FlowCNN`."""
  return FlowCNN(num_classes=num_classes, dtype=dtype, **kwargs)
