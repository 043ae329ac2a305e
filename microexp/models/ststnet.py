"""STSTNet (Liong et al., FG 2019): a shallow triple-stream CNN on 28x28 (u, v, strain) flow.

Published network (Matlab, christy1206/STSTNet): three parallel streams on the same input, each a
3x3 conv (3, 5 and 8 filters, 'same') -> ReLU -> 3x3 max-pool, stride 3, 'same' (28 -> 10); the 16
maps are concatenated, average-pooled 2x2 stride 2 (10 -> 5), flattened (5*5*16 = 400) and fed to
one dense layer. The widely used PyTorch port (MEGC 2019 tooling) adds BatchNorm after each ReLU and
dropout 0.5 after each pool: `batch_norm=True, dropout=0.5` reproduce that variant.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from microexp import models
from microexp.kernels import pooled_head
from microexp.models import batch_norm
from microexp.models import dropout
from microexp.models import layers
from microexp.models import lowering

Dtype = Any


class STSTNet(nn.Module):
  """`[B, H, W, C]` (28x28x3: u, v, strain) -> logits `[B, num_classes]`.

  Attributes:
    num_classes: number of classes (3 in the MEGC 2019 protocol).
    stream_features: filters of the parallel 3x3 conv streams.
    batch_norm: BatchNorm after each stream's ReLU (PyTorch port; not in the published network).
    dropout: dropout rate after each stream's pool (0 in the published network).
    conv_impl: how convs and pools are computed (`lowering.IMPLS`; same parameters for all).
    dtype: compute dtype; parameters stay float32.
  """

  num_classes: int
  stream_features: Sequence[int] = (3, 5, 8)
  batch_norm: bool = False
  dropout: float = 0.0
  conv_impl: str = "auto"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    del mask  # images carry no time axis
    layers.check_image_inputs("ststnet", x)
    # The three streams are per-channel after their convs (BatchNorm, ReLU, pool and dropout act
    # on each channel alone), so they run as one 16-channel stream: one conv with the streams'
    # kernels concatenated (their parameters stay conv0..2, bn0..2), one pool, one dropout.
    convs = [lowering.ConvParams(f, (3, 3), name=f"conv{i}")
             for i, f in enumerate(self.stream_features)]
    norms = ([batch_norm.BatchNormVariables(f, name=f"bn{i}")
              for i, f in enumerate(self.stream_features)] if self.batch_norm else None)
    kernel_shape = (3, 3, x.shape[-1], sum(self.stream_features))
    drop = dropout.Dropout(self.dropout, deterministic=not train)
    if lowering.uses_kernel(self.conv_impl, x.shape, kernel_shape, (3, 3), "SAME", self.dtype):
      y = self._kernel_stream(x, convs, norms, train, drop)
    else:
      y = drop(self._stream(x, convs, norms, train))
      y = lowering.avg_pool(y, (2, 2), (2, 2), "VALID", impl=self.conv_impl)
    y = y.reshape((y.shape[0], -1))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(y).astype(jnp.float32)

  def _stream(self, x, convs, norms, train: bool):
    """conv -> ReLU -> (BatchNorm) -> 3x3/3 max-pool of the fused 16-channel stream."""
    s = nn.relu(lowering.fused_conv(x, convs, "SAME", impl=self.conv_impl, dtype=self.dtype))
    pool = lambda s: lowering.max_pool(s, (3, 3), (3, 3), "SAME", impl=self.conv_impl)
    if norms is None:
      return pool(s)
    # BatchNorm is `s * a + shift` per channel (statistics from the whole map), and
    # max_pool(s * a + shift) = |a| * max_pool(sign(a) * s) + shift: the map is applied after
    # the pool, to 9x fewer elements, with the same values and gradients (the pooled element is
    # the same; for a == 0 exactly, the gradient to `scale` goes to the first max of s rather
    # than to the first element of the window).
    a, shift = batch_norm.fused_affine(s, norms, train=train, momentum=layers.BN_MOMENTUM)
    sign = jnp.where(a < 0, -1.0, 1.0)
    s = pool(s * sign.astype(s.dtype))
    return (s.astype(jnp.float32) * (a * sign) + shift).astype(self.dtype)

  def _kernel_stream(self, x, convs, norms, train: bool, drop: dropout.Dropout):
    """`_stream`, dropout and the average pool with the CPU kernels: the conv block as
    lowering.conv_relu_max_pool (the pools of the map and of its negation, max_pool(-s) = -min,
    and its channel sums for BatchNorm's moments); in train mode with BatchNorm, the affine map,
    dropout and average pool as kernels/pooled_head.py."""
    kernel, bias = lowering.fused_params(convs, x.shape[-1])
    stats = norms is not None and train
    pooled = lowering.conv_relu_max_pool(x, kernel, bias, (3, 3), "SAME", stats=stats)
    if norms is None:
      return lowering.avg_pool(drop(pooled.max), (2, 2), (2, 2), "VALID", impl=self.conv_impl)
    count = int(np.prod(x.shape[:-1]))  # the map's pixels: the conv keeps the input's size
    batch_moments = (batch_norm.moments_from_sums(pooled.sum, pooled.sum_sq, count) if stats
                     else None)
    a, shift = batch_norm.fused_affine(None, norms, train=train, momentum=layers.BN_MOMENTUM,
                                       batch_moments=batch_moments)
    keep = 1.0 - self.dropout
    if (train and pooled_head.supports(pooled.max.shape, (2, 2)) and pooled_head.available()
        and (self.dropout == 0.0 or dropout.field_bits(keep) is not None)):
      words, bits, threshold = (drop.packed(pooled.max.shape) if self.dropout > 0.0
                                else (None, 0, 0))
      return pooled_head.affine_dropout_avg_pool(pooled.max, pooled.min, a, shift, words,
                                                 window=(2, 2), bits=bits, threshold=threshold,
                                                 keep=keep)
    s = drop(jnp.where(a < 0, -pooled.min, pooled.max) * jnp.abs(a) + shift)
    return lowering.avg_pool(s, (2, 2), (2, 2), "VALID", impl=self.conv_impl)


@models.register("ststnet")
def ststnet(num_classes: int, dtype: Dtype = jnp.float32, **kwargs) -> STSTNet:
  """STSTNet on `[B, 28, 28, 3]` (u, v, strain); kwargs: see `STSTNet`."""
  return STSTNet(num_classes=num_classes, dtype=dtype, **kwargs)
