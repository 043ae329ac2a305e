"""The learned spotter: a shallow triple-stream flow CNN scoring one feature row per frame.

SoftNet (Liong et al., FG 2021) spots micro- and macro-expressions in long videos with a shallow
CNN on the optical flow between frames k apart, one output per row; this is that idea with the
STSTNet streams (3x3 convs of 3, 5, 8 filters, one per stream, on the same (u, v, strain) input),
one hidden dense layer, and one sigmoid logit per kind (micro, macro), so both are spotted by one
network and scored apart (microexp/train/spot_decode.py turns the rows' scores into intervals).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from microexp import models
from microexp.models import layers

Dtype = Any


class Spotter(nn.Module):
  """Flow rows `[B, S, S, 3]` -> logits `[B, num_classes]` (num_classes = 2: micro, macro).

  Attributes:
    num_classes: one logit per expression kind.
    stream_features: filters of the parallel 3x3 conv streams.
    hidden: width of the dense layer before the logits.
    dropout: dropout rate after the pooled streams and the hidden layer.
  """

  num_classes: int
  stream_features: Sequence[int] = (3, 5, 8)
  hidden: int = 64
  dropout: float = 0.2
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    del mask  # one row is one image
    layers.check_image_inputs("spotter", x)
    streams = []
    for i, f in enumerate(self.stream_features):
      s = nn.relu(nn.Conv(f, (3, 3), padding="SAME", dtype=self.dtype, name=f"conv{i}")(x))
      streams.append(nn.max_pool(s, (3, 3), strides=(3, 3), padding="SAME"))
    y = nn.max_pool(jnp.concatenate(streams, axis=-1), (2, 2), strides=(2, 2), padding="SAME")
    y = nn.Dropout(self.dropout, deterministic=not train)(y.reshape((y.shape[0], -1)))
    y = nn.Dropout(self.dropout, deterministic=not train)(
        nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="hidden")(y)))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(y).astype(jnp.float32)


@models.register("spotter")
def spotter(num_classes: int = 2, dtype: Dtype = jnp.float32, **kwargs) -> Spotter:
  """The learned spotter on flow rows `[B, S, S, 3]`; kwargs: see `Spotter`."""
  return Spotter(num_classes=num_classes, dtype=dtype, **kwargs)
