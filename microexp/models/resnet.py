"""ResNet50 v1 (Keras layout) and v1.5 (torchvision layout) with the thesis's classification head.

The two variants differ exactly where their ImageNet checkpoints differ, so that ported weights
reproduce the original networks:

| variant       | downsampling stride on | conv bias | BN epsilon | BN momentum |
|---------------|------------------------|-----------|------------|-------------|
| 'keras'       | first 1x1 conv         | yes       | 1.001e-5   | 0.99        |
| 'torchvision' | 3x3 conv               | no        | 1e-5       | 0.9         |

Both pad explicitly (stem: 3 before the 7x7/2 conv, 1 before the 3x3/2 max-pool), never 'SAME'.
Parameter names (flax): `conv_init`, `bn_init`, `stage{1..4}_block{1..}/{conv,bn}{1,2,3}` and
`proj_conv`/`proj_bn` for the projection shortcut; `microexp.models.weights` maps them to the
Keras layer names and the torchvision state-dict keys.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

from flax import traverse_util
import flax.linen as nn
import jax
import jax.numpy as jnp

from microexp.models import lowering
from microexp.models import register
from microexp.models import weights as weights_lib
from microexp.models.weights import preprocessing

VARIANTS = ("keras", "torchvision")
RESNET50_STAGES = (3, 4, 6, 3)

_BN_EPSILON = {"keras": 1.001e-5, "torchvision": 1e-5}
_BN_MOMENTUM = {"keras": 0.99, "torchvision": 0.9}
# The input convention each variant's ImageNet weights were trained with.
CONVENTION = {"keras": "caffe", "torchvision": "torch"}


def _check_variant(variant: str) -> None:
  if variant not in VARIANTS:
    raise ValueError(f"Unknown ResNet variant {variant!r}; expected one of {VARIANTS}.")


class Bottleneck(nn.Module):
  """1x1 -> 3x3 -> 1x1 bottleneck with a projection shortcut on the first block of a stage."""

  filters: int
  strides: int
  project: bool
  variant: str
  conv_impl: str = "auto"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    keras = self.variant == "keras"
    conv = functools.partial(lowering.Conv, use_bias=keras, dtype=self.dtype, impl=self.conv_impl)
    norm = functools.partial(
        nn.BatchNorm, use_running_average=not train, momentum=_BN_MOMENTUM[self.variant],
        epsilon=_BN_EPSILON[self.variant], dtype=self.dtype)
    s = (self.strides, self.strides)
    # v1 (Keras) strides the first 1x1 conv; v1.5 (torchvision) strides the 3x3 conv.
    s1, s2 = (s, (1, 1)) if keras else ((1, 1), s)

    y = conv(self.filters, (1, 1), s1, padding="VALID", name="conv1")(x)
    y = nn.relu(norm(name="bn1")(y))
    y = conv(self.filters, (3, 3), s2, padding=((1, 1), (1, 1)), name="conv2")(y)
    y = nn.relu(norm(name="bn2")(y))
    y = conv(4 * self.filters, (1, 1), padding="VALID", name="conv3")(y)
    y = norm(name="bn3")(y)
    if self.project:
      x = conv(4 * self.filters, (1, 1), s, padding="VALID", name="proj_conv")(x)
      x = norm(name="proj_bn")(x)
    return nn.relu(x + y)


class ResNetBackbone(nn.Module):
  """ResNet v1 feature extractor without pooling or classifier.

  Attributes:
    variant: 'keras' (ResNet50 v1 as `keras.applications.ResNet50`) or 'torchvision' (v1.5).
    stage_sizes: bottleneck blocks per stage; (3, 4, 6, 3) is ResNet50.
    width: channels of the stem and of the first stage's bottleneck (64 in ResNet50); the output
      has `32 * width` channels (2048).
    conv_impl: how convs and pools are computed (`lowering.IMPLS`; same parameters for all, so
      ImageNet weights load whatever it is).
    dtype: compute dtype; parameters stay float32.
  """

  variant: str = "keras"
  stage_sizes: Sequence[int] = RESNET50_STAGES
  width: int = 64
  conv_impl: str = "auto"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Maps x: [B, H, W, C] (already preprocessed) to features [B, h, w, 32 * width].

    h = ceil(H / 32) for sizes that are multiples of 32 (e.g. 64 -> 2, 112 -> 4, 224 -> 7).
    """
    _check_variant(self.variant)
    x = jnp.asarray(x, self.dtype)
    x = lowering.Conv(self.width, (7, 7), (2, 2), padding=((3, 3), (3, 3)),
                      use_bias=self.variant == "keras", dtype=self.dtype, impl=self.conv_impl,
                      name="conv_init")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=_BN_MOMENTUM[self.variant],
                     epsilon=_BN_EPSILON[self.variant], dtype=self.dtype, name="bn_init")(x)
    x = nn.relu(x)
    # -inf padding equals Keras' zero padding here because the input is post-ReLU (>= 0).
    x = lowering.max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)), impl=self.conv_impl)
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        x = Bottleneck(
            filters=self.width * 2**i, strides=2 if (i > 0 and j == 0) else 1, project=j == 0,
            variant=self.variant, conv_impl=self.conv_impl, dtype=self.dtype,
            name=f"stage{i + 1}_block{j + 1}")(x, train)
    return x


class ResNet50(nn.Module):
  """The thesis's ResNet50 classifier: backbone -> 2x2 max-pool -> GAP -> 128 -> 64 -> classes.

  Attributes:
    num_classes: number of logits.
    variant: see `ResNetBackbone`.
    dtype: compute dtype (float32 or bfloat16); logits are float32, parameters float32.
    dropout_rate: dropout after each hidden dense layer.
    freeze_backbone: if True the backbone runs in inference mode (BN uses, and never updates, its
      running statistics) and its features pass through `stop_gradient`. Pair it with
      `config.train.freeze=['backbone']` so that weight decay leaves the frozen weights alone.
    weights: path of an ImageNet checkpoint (Keras notop .h5, torchvision .pth/.safetensors):
      `pretrained()` reads it and `load` puts it in the backbone (the engine does both, once, on
      the host); `init` stays pure and random. None: no pretrained weights.
    preprocess: 'caffe' | 'torch' | 'none' | 'auto' (the variant's convention when `weights` is set,
      otherwise 'none'); see `microexp.models.weights.preprocessing.preprocess`.
    flow_input: map u, v, magnitude flow to 0..255 first (`preprocessing.flow_to_image`).
    flow_bound: `flow_to_image`'s bound (None: per-sample min-max).
    stage_sizes, width: backbone size (tiny values for tests).
    conv_impl: see `ResNetBackbone`.
  """

  num_classes: int
  variant: str = "keras"
  dtype: Any = jnp.float32
  dropout_rate: float = 0.5
  freeze_backbone: bool = False
  weights: str | None = None
  preprocess: str = "auto"
  flow_input: bool = False
  flow_bound: float | None = None
  stage_sizes: Sequence[int] = RESNET50_STAGES
  width: int = 64
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, mask: jax.Array | None = None) -> jax.Array:
    """Maps x: [B, H, W, 3] to logits [B, num_classes] float32. `mask` is unused (images)."""
    del mask
    x = jnp.asarray(x, jnp.float32)
    if self.flow_input:
      x = preprocessing.flow_to_image(x, bound=self.flow_bound)
    x = preprocessing.preprocess(x, self.input_convention)
    backbone = ResNetBackbone(variant=self.variant, stage_sizes=self.stage_sizes,
                              width=self.width, conv_impl=self.conv_impl, dtype=self.dtype,
                              name="backbone")
    features = backbone(x, train=train and not self.freeze_backbone)
    if self.freeze_backbone:
      features = jax.lax.stop_gradient(features)
    # 2x2 max-pool as in the thesis; a 1-pixel side (tiny inputs) is kept rather than pooled away.
    window = (min(2, features.shape[1]), min(2, features.shape[2]))
    features = lowering.max_pool(features, window, window, "VALID", impl=self.conv_impl)
    features = jnp.mean(features, axis=(1, 2))
    dense = functools.partial(nn.Dense, dtype=self.dtype)
    h = nn.relu(dense(128, name="fc1")(features))
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    h = nn.relu(dense(64, name="fc2")(h))
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    return dense(self.num_classes, name="classifier")(h).astype(jnp.float32)

  @property
  def input_convention(self) -> str:
    if self.preprocess != "auto":
      return self.preprocess
    return CONVENTION[self.variant] if self.weights else "none"

  @nn.nowrap
  def _check_pretrainable(self):
    if self.weights is not None and (tuple(self.stage_sizes) != RESNET50_STAGES or self.width != 64):
      raise ValueError("ImageNet weights need the full ResNet50 (stage_sizes=(3, 4, 6, 3), "
                       f"width=64), got stage_sizes={self.stage_sizes}, width={self.width}.")

  @nn.nowrap
  def pretrained(self) -> dict | None:
    """The ImageNet backbone of `self.weights`, read on the host (None without weights).

    Returns {'params': ..., 'batch_stats': ...} of `ResNetBackbone(self.variant)` (numpy), for
    `load`. `init` itself stays pure: the trainer calls this once and `load`s the result.
    """
    if self.weights is None:
      return None
    self._check_pretrainable()
    return load_backbone(self.weights, variant=self.variant)

  @nn.nowrap
  def load(self, variables, pretrained):
    """`variables` with the backbone replaced by `pretrained` (see `pretrained`); pure, jittable."""
    return weights_lib.merge_backbone(variables, pretrained, scope=("backbone",))


@functools.lru_cache(maxsize=4)
def backbone_shapes(variant: str) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Flat {(collection, *module_path, leaf): shape} of the full ResNet50 backbone of `variant`."""
  _check_variant(variant)
  shapes = jax.eval_shape(ResNetBackbone(variant=variant).init, jax.random.key(0),
                          jnp.zeros((1, 64, 64, 3)))
  return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(shapes).items()}


def load_backbone(path, variant: str | None = None, **kwargs) -> dict:
  """`weights.load_imagenet_weights` with this module's backbone shapes (kwargs: cache options)."""
  return weights_lib.load_imagenet_weights(path, variant, expected=backbone_shapes, **kwargs)


def load(init_variables, path, variant: str = "keras"):
  """big_vision style: a ResNet50's initial variables with the ImageNet backbone of `path`."""
  return weights_lib.merge_backbone(init_variables, load_backbone(path, variant=variant),
                                    scope=("backbone",))


@register("resnet50")
def resnet50(num_classes: int, dtype: Any = jnp.float32, **kwargs) -> ResNet50:
  """ResNet50 classifier; kwargs are `ResNet50`'s attributes (variant, weights, freeze_backbone...)."""
  return ResNet50(num_classes=num_classes, dtype=jnp.dtype(dtype), **kwargs)
