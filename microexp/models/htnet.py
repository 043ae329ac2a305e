"""HTNet (Wang et al., Neurocomputing 2024): a hierarchical transformer over facial regions.

As released (wangzhifengharrison/HTNet, `Model.py`, trained by `HTNet_for_three_datasets_*.py`):
the input is a 28x28 mosaic of four 14x14 flow regions (eyes, mouth corners;
`microexp.vision.face_regions`). It is cut into `patch_size` patches, each embedded linearly
(`dim` channels) into a token map; then `num_hierarchies` levels, from fine to coarse. Level `l`
splits the token map into `2**(L-1-l)` x `2**(L-1-l)` blocks (at the finest level the blocks are
the regions' own tokens), runs `block_repeats[l]` pre-norm transformer blocks inside each block
(multi-head self-attention, then an MLP with GELU; a learned position embedding shared by all
channels), and *aggregates* between levels: 3x3 conv to twice the width, LayerNorm, 3x3 max-pool
stride 2 (halves the map, so the next level's blocks span neighbouring regions). The head:
LayerNorm, mean over the map, one dense layer. Widths and heads double at every level
(`dim * 2**l`, `heads * 2**l`); each head has `width // heads` channels (85 at the release's
256 / 3), so attention's inner width is `heads * (width // heads)`.

The release's configuration (`release_kwargs()`): image 28, patch 7, dim 256, heads 3, 3
hierarchies, block repeats (2, 2, 8): 114,429,446 parameters for 3 classes. With 28/7 = 4x4
tokens every block holds a single token, so attention reduces to its value/output projections
and the hierarchy does the spatial mixing.

`regions`: None (default) reads the input as given — the loader's per-clip region mosaic
(`config.dataset.regions='mosaic'`); or four fixed (row, col) centres (e.g.
`face_regions.MEAN_FACE_CENTRES`) to crop the mosaic out of whole-face flow inside the model,
so that HTNet shares the whole-face inputs of STSTNet / Off-ApexNet (ensembles).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from microexp import models
from microexp.vision import face_regions
from microexp.models import layers
from microexp.models import lowering

Dtype = Any

LN_EPS = 1e-5  # torch's LayerNorm default, as released


def release_kwargs() -> dict:
  """The released configuration (28x28 input, 114.4M parameters for 3 classes)."""
  return dict(patch_size=7, dim=256, heads=3, num_hierarchies=3, block_repeats=(2, 2, 8),
              mlp_mult=4, dropout=0.0)


class Attention(nn.Module):
  """Multi-head self-attention over the tokens of each block: [N, S, D] -> [N, S, D]."""

  heads: int
  dropout: float
  dtype: Dtype

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    n, s, d = x.shape
    head_dim = d // self.heads
    qkv = nn.Dense(3 * self.heads * head_dim, use_bias=False, dtype=self.dtype, name="qkv")(x)
    q, k, v = jnp.split(qkv.reshape(n, s, 3, self.heads, head_dim), 3, axis=2)
    logits = jnp.einsum("nqhd,nkhd->nhqk", q[:, :, 0], k[:, :, 0]) * head_dim**-0.5
    attn = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(self.dtype)
    attn = nn.Dropout(self.dropout, deterministic=not train)(attn)
    out = jnp.einsum("nhqk,nkhd->nqhd", attn, v[:, :, 0]).reshape(n, s, self.heads * head_dim)
    out = nn.Dense(d, dtype=self.dtype, name="out")(out)
    return nn.Dropout(self.dropout, deterministic=not train)(out)


class FeedForward(nn.Module):
  """[..., D] -> Dense(mlp_mult * D) -> GELU -> Dense(D), dropout after each."""

  mlp_mult: int
  dropout: float
  dtype: Dtype

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    d = x.shape[-1]
    y = nn.gelu(nn.Dense(d * self.mlp_mult, dtype=self.dtype, name="fc1")(x), approximate=False)
    y = nn.Dropout(self.dropout, deterministic=not train)(y)
    y = nn.Dense(d, dtype=self.dtype, name="fc2")(y)
    return nn.Dropout(self.dropout, deterministic=not train)(y)


class Transformer(nn.Module):
  """Pre-norm blocks inside each spatial block: [N, h, w, D] -> same shape.

  `seq_len` position embeddings (one scalar per position, shared by all channels, as released).
  """

  seq_len: int
  depth: int
  heads: int
  mlp_mult: int
  dropout: float
  dtype: Dtype

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    n, h, w, d = x.shape
    pos = self.param("pos_emb", nn.initializers.normal(1.0), (self.seq_len,))
    x = x + pos[:h * w].reshape(1, h, w, 1).astype(self.dtype)
    x = x.reshape(n, h * w, d)
    for i in range(self.depth):
      y = nn.LayerNorm(LN_EPS, dtype=self.dtype, name=f"attn_norm{i}")(x)
      x = x + Attention(self.heads, self.dropout, self.dtype, name=f"attn{i}")(y, train=train)
      y = nn.LayerNorm(LN_EPS, dtype=self.dtype, name=f"mlp_norm{i}")(x)
      x = x + FeedForward(self.mlp_mult, self.dropout, self.dtype, name=f"mlp{i}")(y, train=train)
    return x.reshape(n, h, w, d)


def to_blocks(x: jax.Array, blocks: int) -> jax.Array:
  """[B, H, W, D] -> [B * blocks**2, H / blocks, W / blocks, D] (block-major within a sample)."""
  b, h, w, d = x.shape
  x = x.reshape(b, blocks, h // blocks, blocks, w // blocks, d)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b * blocks * blocks, h // blocks, w // blocks, d)


def from_blocks(x: jax.Array, blocks: int) -> jax.Array:
  """Inverse of `to_blocks`."""
  n, h, w, d = x.shape
  x = x.reshape(n // (blocks * blocks), blocks, blocks, h, w, d)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(n // (blocks * blocks), blocks * h, blocks * w, d)


class HTNet(nn.Module):
  """`[B, 28, 28, C]` flow (region mosaic, or whole face with `regions`) -> logits `[B, K]`.

  Attributes:
    num_classes: number of classes.
    patch_size: side of the embedded patches (the input side must be a multiple).
    dim: token width at the finest level (doubles at every level).
    heads: attention heads at the finest level (doubles at every level).
    num_hierarchies: levels; the finest splits the token map into 2**(L-1) x 2**(L-1) blocks.
    block_repeats: transformer blocks per level, finest first (an int: the same for all).
    mlp_mult: MLP expansion factor.
    dropout: dropout in attention and MLP (0 as released).
    regions: None (input is the mosaic) or four (row, col) centres to crop it from the input.
    region_size: side of each cropped region.
    conv_impl: how the patch embedding, aggregation convs and pools are computed
      (`lowering.IMPLS`; same parameters for all).
    dtype: compute dtype; parameters stay float32.
  """

  num_classes: int
  patch_size: int = 7
  dim: int = 256
  heads: int = 3
  num_hierarchies: int = 3
  block_repeats: int | Sequence[int] = (2, 2, 8)
  mlp_mult: int = 4
  dropout: float = 0.0
  regions: Sequence[Sequence[int]] | None = None
  region_size: int = face_regions.REGION_SIZE
  conv_impl: str = "auto"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    del mask  # images carry no time axis
    layers.check_image_inputs("htnet", x)
    if self.regions is not None:
      crops = [x[:, r0:r1, c0:c1] for r0, r1, c0, c1 in
               face_regions.region_boxes(self.regions, x.shape[1:3], self.region_size)]
      x = jnp.concatenate([jnp.concatenate(crops[:2], 2), jnp.concatenate(crops[2:], 2)], 1)
    repeats = self.block_repeats
    repeats = (repeats,) * self.num_hierarchies if isinstance(repeats, int) else tuple(repeats)
    blocks = 2**(self.num_hierarchies - 1)
    side = x.shape[1] // self.patch_size
    if (x.shape[1] != x.shape[2] or x.shape[1] % self.patch_size or side % blocks
        or len(repeats) != self.num_hierarchies):
      raise ValueError(
          f"htnet: input {x.shape[1]}x{x.shape[2]} must be square, a multiple of patch_size "
          f"{self.patch_size}, with {side} patches a side divisible by 2**(num_hierarchies-1) = "
          f"{blocks}; block_repeats {repeats} needs {self.num_hierarchies} entries.")
    seq_len = (side // blocks)**2  # tokens per block, the same at every level
    x = lowering.Conv(self.dim, (self.patch_size,) * 2, strides=(self.patch_size,) * 2,
                      padding="VALID", dtype=self.dtype, impl=self.conv_impl,
                      name="patch_embed")(x.astype(self.dtype))
    for level in range(self.num_hierarchies):
      blocks = 2**(self.num_hierarchies - 1 - level)
      width = x.shape[-1]
      y = Transformer(seq_len, repeats[level], self.heads * 2**level, self.mlp_mult, self.dropout,
                      self.dtype, name=f"level{level}")(to_blocks(x, blocks), train=train)
      x = from_blocks(y, blocks)
      if level < self.num_hierarchies - 1:  # aggregate: conv, norm, 3x3 max-pool stride 2
        x = lowering.Conv(2 * width, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                          impl=self.conv_impl, name=f"aggregate{level}")(x)
        x = nn.LayerNorm(LN_EPS, dtype=self.dtype, name=f"aggregate_norm{level}")(x)
        x = lowering.max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)), impl=self.conv_impl)
    x = nn.LayerNorm(LN_EPS, dtype=self.dtype, name="head_norm")(x).mean(axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


@models.register("htnet")
def htnet(num_classes: int, dtype: Dtype = jnp.float32, **kwargs) -> HTNet:
  """HTNet on `[B, 28, 28, 3]` flow (defaults: the release's configuration); kwargs: see `HTNet`."""
  if kwargs.get("regions") is not None:
    kwargs["regions"] = tuple(tuple(int(v) for v in c) for c in kwargs["regions"])
  if isinstance(kwargs.get("block_repeats"), list):
    kwargs["block_repeats"] = tuple(kwargs["block_repeats"])
  return HTNet(num_classes=num_classes, dtype=dtype, **kwargs)
