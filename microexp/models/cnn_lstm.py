"""CNN-LSTM: a per-frame CNN shared over time feeding an LSTM, then a dense head.

The per-frame CNN sees every frame of every clip as one batch (TimeDistributed: T folded into B);
the LSTM reads the frame features in order and the head classifies its state at the last real frame.

Transfer learning on sequences (the thesis's future work): `frame_cnn='resnet50'` runs a ResNet50
backbone (`microexp.models.resnet.ResNetBackbone`, params under `frame_cnn/backbone`) on every
frame; `load(variables, path)` puts the ImageNet weights there, host side, after a pure `init`
(configs/cnn_lstm_resnet.py).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp

from microexp import models
from microexp.models import layers

Dtype = Any


class SmallFrameCNN(nn.Module):
  """`[N, H, W, C]` -> `[N, F]`: conv-BN-ReLU-pool blocks, then global pooling over space.

  pool: 'mean' (F = features[-1]), 'max', or 'mean_max' (both concatenated, F = 2 features[-1]):
  a movement in a small part of the face is diluted by the mean over the whole frame; the max
  keeps it.
  """

  features: Sequence[int] = (32, 64, 128)
  pool: str = "mean"
  conv_impl: str = "auto"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    for f in self.features:
      x = layers.ConvBlock(f, conv_impl=self.conv_impl, dtype=self.dtype)(x, train=train, mask=mask)
    return layers.global_pool(x, self.pool)


class CNNLSTM(nn.Module):
  """Per-frame CNN -> LSTM (tanh) -> dense head.

  Attributes:
    num_classes: number of emotion classes.
    frame_cnn: 'small' (`SmallFrameCNN(frame_features)`) or 'resnet50'
      (`microexp.models.resnet.ResNetBackbone(**backbone_kwargs)`, imported only then).
    frame_features: conv widths of the small frame CNN.
    frame_pool: the small frame CNN's global pooling ('mean', 'max', 'mean_max').
    backbone_kwargs: keyword arguments of the ResNet backbone (variant; a small `width` for tests).
    weights: ImageNet ResNet50 file for the 'resnet50' frame CNN (Keras notop .h5 / torchvision
      .pth / .safetensors, of `backbone_kwargs['variant']`), read by `pretrained()` on the host
      and put under `frame_cnn/backbone` by `load` (init stays pure); None = from scratch.
    preprocess: the ResNet frame CNN's input convention ('none', or 'caffe' / 'torch' for ImageNet
      weights of the Keras / torchvision variant): frames in [0, 1] are scaled to 0..255 and
      normalised as the checkpoint expects (`weights.preprocessing.preprocess`).
    lstm_features: hidden sizes of stacked LSTM layers.
    dense_features: hidden sizes of the head before the output layer.
    dropout: dropout rate before each head layer (not inside the frame CNN: a dropout mask drawn
      over [B*T, ...] would change with the padded length).
    time_loop, unroll: how the LSTM runs over time (see `layers.MaskedRNN`).
    conv_impl: how the frame CNN's convs and pools are computed (`microexp.models.lowering.IMPLS`;
      same parameters for all); `backbone_kwargs['conv_impl']`, if given, wins for the ResNet.
    dtype: compute dtype; parameters stay float32.

  Padded frames (mask False) are zeroed before the frame CNN, excluded from its BatchNorm batch
  statistics (the ResNet backbone's too: every BatchNorm inside it gets the frame mask), and leave
  the LSTM state unchanged, so they never change the logits.
  """

  num_classes: int
  frame_cnn: str = "small"
  frame_features: Sequence[int] = (32, 64, 128)
  frame_pool: str = "mean"
  backbone_kwargs: Any = None
  weights: str | None = None
  preprocess: str = "none"
  lstm_features: Sequence[int] = (128,)
  dense_features: Sequence[int] = (64,)
  dropout: float = 0.5
  time_loop: str = "loop"
  unroll: int = 1
  conv_impl: str = "auto"
  dtype: Dtype = jnp.float32

  @nn.nowrap
  def pretrained(self) -> dict | None:
    """The ImageNet backbone of `self.weights`, read on the host (None without weights); the
    engine calls it once and `load`s the result (`microexp.models.builder`)."""
    if self.weights is None:
      return None
    if self.frame_cnn != "resnet50":
      raise ValueError(f"cnn_lstm: weights={self.weights!r} need frame_cnn='resnet50' (it is "
                       f"{self.frame_cnn!r}).")
    from microexp.models import resnet  # pylint: disable=g-import-not-at-top

    variant = (self.backbone_kwargs or {}).get("variant", "keras")
    return resnet.load_backbone(self.weights, variant=variant)

  @nn.nowrap
  def load(self, variables, pretrained):
    """`variables` with `frame_cnn/backbone` replaced by `pretrained`; pure, jittable."""
    return map_backbone(variables, pretrained)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    """`x: [B, T, H, W, C]`, `mask: [B, T] bool` (True = real frame) -> logits `[B, num_classes]`."""
    mask = layers.check_sequence_inputs("cnn_lstm", x, mask)
    if not self.lstm_features:
      raise ValueError("cnn_lstm: lstm_features must name at least one recurrent layer.")
    b, t = x.shape[:2]
    frames, frame_mask = layers.frames_in_batch(x, mask)
    feats = self._frame_cnn()(frames, train=train, mask=frame_mask)
    h = feats.reshape((b, t, -1))
    for i, f in enumerate(self.lstm_features):
      cell = functools.partial(nn.LSTMCell, features=f, dtype=self.dtype)
      (_, last), h = layers.MaskedRNN(cell, self.time_loop, self.unroll, name=f"lstm{i}")(h, mask)
    y = last
    for f in self.dense_features:
      y = nn.Dropout(self.dropout, deterministic=not train)(y)
      y = nn.relu(nn.Dense(f, dtype=self.dtype)(y))
    y = nn.Dropout(self.dropout, deterministic=not train)(y)
    return nn.Dense(self.num_classes, dtype=self.dtype)(y).astype(jnp.float32)

  def _frame_cnn(self) -> nn.Module:
    if self.frame_cnn == "small":
      return SmallFrameCNN(tuple(self.frame_features), self.frame_pool, self.conv_impl,
                           dtype=self.dtype, name="frame_cnn")
    if self.frame_cnn == "resnet50":
      return _ResNetFrames({"conv_impl": self.conv_impl, **(self.backbone_kwargs or {})},
                           self.preprocess, dtype=self.dtype, name="frame_cnn")
    raise ValueError(f"cnn_lstm: frame_cnn must be 'small' or 'resnet50'; got {self.frame_cnn!r}.")


class _ResNetFrames(nn.Module):
  """Adapts `ResNetBackbone` to the frame-CNN call: `x [N, H, W, C]`, `mask [N]` -> `[N, F]`.

  The backbone's BatchNorm layers take no mask argument; `nn.intercept_methods` hands each of them
  the frame mask, so their batch statistics (and the running averages they update) are computed
  over real frames only.
  """

  backbone_kwargs: Any
  preprocess: str = "none"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    from microexp.models import resnet  # pylint: disable=g-import-not-at-top
    from microexp.models.weights import preprocessing  # pylint: disable=g-import-not-at-top

    if self.preprocess != "none":
      x = preprocessing.preprocess(x * 255.0, self.preprocess)
    backbone = resnet.ResNetBackbone(**self.backbone_kwargs, dtype=self.dtype, name="backbone")
    if mask is None:
      feats = backbone(x, train=train)
    else:
      with nn.intercept_methods(_masked_batch_norm(mask)):
        feats = backbone(x, train=train)
    # A backbone that returns a feature map is pooled here; one that pools already is left alone.
    return jnp.mean(feats, axis=(1, 2)) if feats.ndim == 4 else feats


def _masked_batch_norm(mask: jax.Array):
  """An interceptor giving every `nn.BatchNorm` call the row mask `[N]` (True = real frame)."""

  def interceptor(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.BatchNorm) and context.method_name == "__call__":
      x = args[0]
      kwargs = dict(kwargs, mask=mask.reshape(mask.shape + (1,) * (x.ndim - 1)))
    return next_fun(*args, **kwargs)

  return interceptor


# Where the ResNet50 frame CNN's variables live in a CNN-LSTM (frame_cnn='resnet50').
FRAME_BACKBONE_SCOPE = ("frame_cnn", "backbone")


def map_backbone(variables: dict, backbone: dict) -> dict:
  """Puts ResNet50 backbone variables into a CNN-LSTM's `frame_cnn/backbone` subtree.

  Args:
    variables: the CNN-LSTM's initialised variables {'params': ..., 'batch_stats': ...}
      (`frame_cnn='resnet50'`, the full ResNet50: default `backbone_kwargs` but the variant).
    backbone: `ResNetBackbone` variables {'params', 'batch_stats'}, e.g.
      `microexp.models.resnet.load_backbone(path, variant)` or a loaded ResNet50's
      `variables[c]['backbone']` for each collection c.

  Returns:
    New variables; every backbone leaf replaced (shapes checked, every missing or extra leaf
    listed in the error), the LSTM and head as initialised.
  """
  from microexp.models import weights as weights_lib  # pylint: disable=g-import-not-at-top

  return weights_lib.merge_backbone(variables, backbone, scope=FRAME_BACKBONE_SCOPE)


def load(variables: dict, path: str | pathlib.Path, *, variant: str = "keras") -> dict:
  """Host side, after `init`: the ImageNet ResNet50 file at `path` (Keras notop .h5 for
  variant='keras', torchvision .pth/.safetensors for 'torchvision') into `frame_cnn/backbone`."""
  from microexp.models import resnet  # pylint: disable=g-import-not-at-top

  return map_backbone(variables, resnet.load_backbone(path, variant=variant))


@models.register("cnn_lstm")
def cnn_lstm(num_classes: int, dtype: Dtype = jnp.float32, **kwargs) -> CNNLSTM:
  """CNN-LSTM on `[B, T, H, W, C]` frame sequences; kwargs: see `CNNLSTM`."""
  return CNNLSTM(num_classes=num_classes, dtype=dtype, **kwargs)
