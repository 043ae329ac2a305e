"""Pieces shared by the small networks: a conv block and a masked recurrence over time.

Padded time steps (mask False) must never change a sequence model's output. Two things make that hold:
the recurrent carry is held (not advanced) on padded steps, and batch statistics of per-frame
BatchNorm are computed over real frames only (`ConvBlock(..., mask=...)`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from microexp.kernels import fusion_barrier
from microexp.models import batch_norm
from microexp.models import lowering

Dtype = Any

# Keras / torch equivalent (torch momentum 0.1). Flax's 0.99 lags badly on CASME II-sized data:
# ~15 steps per epoch leave the running statistics far from the batch statistics for many epochs.
BN_MOMENTUM = 0.9


class ConvBlock(nn.Module):
  """Conv -> BatchNorm (optional) -> ReLU -> max-pool (optional).

  `x: [N, H, W, C]` -> `[N, ceil(H / pool), ceil(W / pool), features]`.
  `mask: [N] bool` (optional) restricts the BatchNorm batch statistics to the rows where it is True
  (used for padded frames folded into the batch). `conv_impl`: how the conv and pool are computed
  (`lowering.IMPLS`; the parameters are nn.Conv's whatever it is).
  """

  features: int
  kernel_size: int = 3
  pool: int = 2
  batch_norm: bool = True
  conv_impl: str = "auto"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    k = self.kernel_size
    x = lowering.Conv(self.features, (k, k), padding="SAME", use_bias=not self.batch_norm,
                      dtype=self.dtype, impl=self.conv_impl)(x)
    if self.batch_norm:
      # BatchNorm's backward computed once, not inside the kernel gradient's transposing copy.
      x = fusion_barrier.cotangent_barrier(x)
      bn_mask = None if mask is None else mask.reshape(mask.shape + (1,) * (x.ndim - 1))
      x = batch_norm.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                               dtype=self.dtype)(x, mask=bn_mask)
    x = nn.relu(x)
    if self.pool > 1:
      x = lowering.max_pool(x, (self.pool, self.pool), (self.pool, self.pool), "SAME",
                            impl=self.conv_impl)
    return x


class ConvLSTMCell(nn.ConvLSTMCell):
  """`nn.ConvLSTMCell` whose two convolutions ('ih', 'hh') are computed by `conv_impl`.

  The same parameters and the same update as flax's cell (whose `__call__` this restates, with
  `lowering.Conv` in place of `nn.Conv`).
  """

  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, carry, inputs):
    c, h = carry
    conv = functools.partial(
        lowering.Conv, features=4 * self.features, kernel_size=self.kernel_size,
        strides=self.strides, padding=self.padding, use_bias=self.use_bias, dtype=self.dtype,
        param_dtype=self.param_dtype, impl=self.conv_impl)
    gates = conv(name="ih")(inputs) + conv(name="hh")(h)
    i, g, f, o = jnp.split(gates, indices_or_sections=4, axis=-1)
    new_c = nn.sigmoid(f + 1) * c + nn.sigmoid(i) * jnp.tanh(g)
    new_h = nn.sigmoid(o) * jnp.tanh(new_c)
    return (new_c, new_h), new_h


def _hold(mask: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
  """`new` where `mask` [B] is True, else `old`; the result keeps `old`'s dtype (the carry's)."""
  m = mask.reshape(mask.shape + (1,) * (old.ndim - 1))
  return jnp.where(m, new.astype(old.dtype), old)


class _MaskedStep(nn.Module):
  """One time step: advances the cell's carry where `mask` is True and holds it elsewhere."""

  cell_fn: Callable[..., nn.Module]

  @nn.compact
  def __call__(self, carry, inputs):
    x, mask = inputs
    new_carry, _ = self.cell_fn(name="cell")(carry, x)
    # The carry's gradient through a barrier: unrolled ('loop'), XLA:CPU otherwise recomputes
    # every later step's carry gradient inside each step's fusion (`fusion_barrier`).
    carry = jax.tree.map(lambda n, o: fusion_barrier.cotangent_barrier(_hold(mask, n, o)),
                         new_carry, carry)
    return carry, carry[1]


class MaskedRNN(nn.Module):
  """Runs an LSTM-style cell over time; padded steps leave the carry unchanged.

  Attributes:
    cell_fn: builds the cell, e.g. `functools.partial(nn.LSTMCell, features=128)`; the cell maps
      `(carry, x) -> (carry, y)` with `carry = (c, h)` (nn.LSTMCell, nn.OptimizedLSTMCell,
      nn.ConvLSTMCell).
    time_loop: 'loop' (a Python loop: T copies of the step in the graph; fastest on XLA CPU for
      short sequences, compile time grows with T) or 'scan' (`nn.scan`, one copy; compile time
      constant, ~37x slower training steps on XLA CPU unless `unroll` is large).
    unroll: `nn.scan` unroll factor (time_loop='scan' only).

  Both loops give the same parameter tree (`step/cell/...`), so checkpoints move between them.
  """

  cell_fn: Callable[..., nn.Module]
  time_loop: str = "loop"
  unroll: int = 1

  @nn.compact
  def __call__(self, xs: jax.Array, mask: jax.Array):
    """`xs: [B, T, ...]`, `mask: [B, T] bool` -> `(carry, hs)`.

    `carry = (c, h)` is the state after the last real step (zeros for a sequence with no real
    step); `hs: [B, T, ...features]` the hidden state after each step (held on padded steps).
    """
    # The carry initialiser of the supported cells is zeros: the key is not consumed in practice.
    carry = self.cell_fn().initialize_carry(jax.random.key(0), xs[:, 0].shape)
    if self.time_loop == "loop":
      step = _MaskedStep(self.cell_fn, name="step")
      hs = []
      for t in range(xs.shape[1]):
        carry, h = step(carry, (xs[:, t], mask[:, t]))
        hs.append(h)
      return carry, jnp.stack(hs, axis=1)
    if self.time_loop == "scan":
      scan = nn.scan(_MaskedStep, variable_broadcast="params", split_rngs={"params": False},
                     in_axes=1, out_axes=1, unroll=self.unroll)
      return scan(self.cell_fn, name="step")(carry, (xs, mask))
    raise ValueError(f"MaskedRNN: time_loop must be 'loop' or 'scan', got {self.time_loop!r}.")


def check_sequence_inputs(model: str, x: jax.Array, mask: jax.Array | None) -> jax.Array:
  """Validates `x: [B, T, H, W, C]` and returns `mask: [B, T] bool` (all True when None)."""
  if x.ndim != 5:
    raise ValueError(f"{model} expects frames [B, T, H, W, C]; got shape {tuple(x.shape)}.")
  if mask is None:
    return jnp.ones(x.shape[:2], bool)
  if tuple(mask.shape) != tuple(x.shape[:2]):
    raise ValueError(f"{model}: mask must be [B, T] = {tuple(x.shape[:2])}; "
                     f"got shape {tuple(mask.shape)}.")
  return mask.astype(bool)


def frames_in_batch(x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`x: [B, T, H, W, C]`, `mask: [B, T]` -> (frames `[B*T, H, W, C]`, frame_mask `[B*T]`).

  Padded frames are zeroed, which keeps non-finite garbage in them out of the forward and
  backward passes of a per-frame network shared over time.
  """
  b, t = x.shape[:2]
  frame_mask = mask.reshape(b * t)
  frames = x.reshape((b * t,) + x.shape[2:])
  return jnp.where(frame_mask[:, None, None, None], frames, 0), frame_mask


def check_image_inputs(model: str, x: jax.Array, min_channels: int = 1) -> None:
  """Validates `x: [B, H, W, C]` with at least `min_channels` channels."""
  if x.ndim != 4:
    raise ValueError(f"{model} expects images [B, H, W, C]; got shape {tuple(x.shape)}. "
                     "Sequence inputs need a sequence model (cnn_lstm, convlstm).")
  if x.shape[-1] < min_channels:
    raise ValueError(f"{model} needs at least {min_channels} channels; got shape {tuple(x.shape)}.")


POOLS = ("mean", "max", "mean_max")


def global_pool(x: jax.Array, how: str) -> jax.Array:
  """`[N, H, W, C]` -> `[N, C]` ('mean', 'max') or `[N, 2C]` ('mean_max': both, concatenated)."""
  if how == "mean":
    return jnp.mean(x, axis=(1, 2))
  if how == "max":
    return jnp.max(x, axis=(1, 2))
  if how == "mean_max":
    return jnp.concatenate([jnp.mean(x, axis=(1, 2)), jnp.max(x, axis=(1, 2))], axis=-1)
  raise ValueError(f"global pooling must be one of {POOLS}; got {how!r}.")
