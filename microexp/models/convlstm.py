"""ConvLSTM: convolutional LSTM layers over a frame sequence, then a classifier head.

A per-frame conv stem shrinks the frames, stacked `nn.ConvLSTMCell` layers (2x2 max-pool between
them) read the sequence, and the head classifies the last layer's hidden state at the last real
frame (global average pooling, dense, dropout).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from microexp import models
from microexp.models import layers
from microexp.models import lowering

Dtype = Any


class ConvLSTM(nn.Module):
  """Conv stem -> ConvLSTM layers -> pooled dense head.

  Attributes:
    num_classes: number of emotion classes.
    stem_features: widths of per-frame conv-BN-ReLU-pool(2) blocks before the recurrence (each
      halves H and W; () feeds raw frames to the first ConvLSTM).
    lstm_features: widths of the stacked ConvLSTM layers (2x2 max-pool between layers).
    kernel_size: ConvLSTM kernel size.
    head_pool: how the head pools the last hidden state [B, h, w, C] over space: 'mean', 'max', or
      'mean_max' (both, concatenated). The hidden state is signed (o * tanh(c)), so a local
      movement can average away under 'mean'; 'max' keeps where it is strongest.
    dense_features: hidden sizes of the head before the output layer.
    dropout: dropout rate before each head layer.
    time_loop, unroll: how the recurrence runs over time (see `layers.MaskedRNN`); 'loop' is the
      fast choice for training on XLA CPU at CASME II sequence lengths.
    conv_impl: how the stem's convs, the ConvLSTM cells' convs and the pools are computed
      (`lowering.IMPLS`; same parameters for all).
    dtype: compute dtype; parameters stay float32.

  Padded frames (mask False) are zeroed, excluded from the stem's BatchNorm statistics, and hold
  every ConvLSTM state, so they never change the logits.
  """

  num_classes: int
  stem_features: Sequence[int] = (16,)
  lstm_features: Sequence[int] = (16, 32)
  kernel_size: int = 3
  head_pool: str = "mean"
  dense_features: Sequence[int] = (64,)
  dropout: float = 0.5
  time_loop: str = "loop"
  unroll: int = 1
  conv_impl: str = "auto"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    """`x: [B, T, H, W, C]`, `mask: [B, T] bool` (True = real frame) -> logits `[B, num_classes]`."""
    mask = layers.check_sequence_inputs("convlstm", x, mask)
    if not self.lstm_features:
      raise ValueError("convlstm: lstm_features must name at least one recurrent layer.")
    b, t = x.shape[:2]
    h, frame_mask = layers.frames_in_batch(x, mask)
    for i, f in enumerate(self.stem_features):
      h = layers.ConvBlock(f, conv_impl=self.conv_impl, dtype=self.dtype, name=f"stem{i}")(
          h, train=train, mask=frame_mask)
    h = h.reshape((b, t) + h.shape[1:])
    for i, f in enumerate(self.lstm_features):
      if i:
        h = lowering.max_pool(h.reshape((b * t,) + h.shape[2:]), (2, 2), (2, 2), "SAME",
                              impl=self.conv_impl)
        h = h.reshape((b, t) + h.shape[1:])
      cell = functools.partial(layers.ConvLSTMCell, features=f,
                               kernel_size=(self.kernel_size,) * 2, conv_impl=self.conv_impl,
                               dtype=self.dtype)
      (_, last), h = layers.MaskedRNN(cell, self.time_loop, self.unroll, name=f"convlstm{i}")(
          h, mask)
    y = layers.global_pool(last, self.head_pool)
    for f in self.dense_features:
      y = nn.Dropout(self.dropout, deterministic=not train)(y)
      y = nn.relu(nn.Dense(f, dtype=self.dtype)(y))
    y = nn.Dropout(self.dropout, deterministic=not train)(y)
    return nn.Dense(self.num_classes, dtype=self.dtype)(y).astype(jnp.float32)


@models.register("convlstm")
def convlstm(num_classes: int, dtype: Dtype = jnp.float32, **kwargs) -> ConvLSTM:
  """ConvLSTM on `[B, T, H, W, C]` frame sequences; kwargs: see `ConvLSTM`."""
  return ConvLSTM(num_classes=num_classes, dtype=dtype, **kwargs)
