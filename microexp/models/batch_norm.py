"""BatchNorm as one affine map per channel: nn.BatchNorm's variables and outputs, a faster gradient.

flax normalises as `(x - mean) * (scale / sqrt(var + eps)) + bias`; the gradient of that centred
form re-reads `x - mean` in several reductions, which XLA:CPU fuses poorly on small maps. Written
as `x * a + (bias - mean * a)` with `a = scale / sqrt(var + eps)` (the same one-pass moments
E[x^2] - E[x]^2 flax uses), the backward pass is reductions of `g` and `g * x` straight from the
inputs. Measured by benchmarks/batch_norm.py: fwd+bwd 1.1-1.7x at the STSTNet / flow CNN sizes,
up to 3x on 56x56x32 maps (2-core CPU).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen import dtypes


class BatchNorm(nn.BatchNorm):
  """`nn.BatchNorm` (same fields, `params` {scale, bias}, `batch_stats` {mean, var}, statistics,
  running-average update and outputs to float32 rounding) computed as one affine map.

  Supports what the zoo uses: any `axis`, `mask`, `use_scale`, `use_bias`, `dtype`; not
  `axis_name` / `axis_index_groups` (cross-device statistics), `use_fast_variance=False` or
  `force_float32_reductions=False` (ValueError: use nn.BatchNorm). An `nn.BatchNorm` subclass, so
  interceptors that match nn.BatchNorm (cnn_lstm's frame masks) see it.
  """

  @nn.compact
  def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
    if (self.axis_name is not None or self.axis_index_groups is not None
        or not self.use_fast_variance or not self.force_float32_reductions):
      raise ValueError("models/batch_norm.py: BatchNorm supports neither axis_name / "
                       "axis_index_groups nor use_fast_variance=False / "
                       "force_float32_reductions=False; use flax's nn.BatchNorm for those.")
    use_running_average = nn.merge_param("use_running_average", self.use_running_average,
                                         use_running_average)
    axes = (self.axis,) if isinstance(self.axis, int) else tuple(self.axis)
    feature_axes = tuple(sorted(a % x.ndim for a in axes))
    reduction_axes = tuple(i for i in range(x.ndim) if i not in feature_axes)
    feature_shape = tuple(x.shape[a] for a in feature_axes)
    ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32),
                            feature_shape)
    ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32),
                           feature_shape)
    if use_running_average:
      mean, var = ra_mean.value, ra_var.value
    else:
      mean, var = moments(x, reduction_axes, mask)
      if not self.is_initializing():
        ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
        ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    scale = (self.param("scale", self.scale_init, feature_shape, self.param_dtype)
             if self.use_scale else None)
    bias = (self.param("bias", self.bias_init, feature_shape, self.param_dtype)
            if self.use_bias else None)
    return normalize(x, mean, var, scale, bias, feature_axes, self.epsilon, self.dtype)


def normalize(x, mean, var, scale, bias, feature_axes, epsilon: float, dtype=None):
  """`(x - mean) / sqrt(var + epsilon) * scale + bias` (scale, bias optional: None), as the one
  affine map `x * a + (bias - mean * a)` per feature."""
  a = jax.lax.rsqrt(var + epsilon)
  args = [x]
  if scale is not None:
    a = a * scale
    args.append(scale)
  shift = -mean * a
  if bias is not None:
    shift = shift + bias
    args.append(bias)
  broadcast = [x.shape[i] if i in feature_axes else 1 for i in range(x.ndim)]
  y = x.astype(jnp.float32) * a.reshape(broadcast) + shift.reshape(broadcast)
  return jnp.asarray(y, dtypes.canonicalize_dtype(*args, dtype=dtype))


class BatchNormVariables(nn.Module):
  """The variables of `nn.BatchNorm()` on `features` channels (last axis) and nothing else:
  params {scale, bias}, batch_stats {mean, var}. `fused_batch_norm` normalises several at once."""

  features: int

  def setup(self):
    shape = (self.features,)
    self.mean = self.variable("batch_stats", "mean", lambda: jnp.zeros(shape, jnp.float32))
    self.var = self.variable("batch_stats", "var", lambda: jnp.ones(shape, jnp.float32))
    self.scale = self.param("scale", nn.initializers.ones, shape, jnp.float32)
    self.bias = self.param("bias", nn.initializers.zeros, shape, jnp.float32)

  def __call__(self):
    return self.scale, self.bias, self.mean.value, self.var.value

  def update(self, mean, var, momentum: float):
    """The running-average update nn.BatchNorm makes in train mode (none while initialising)."""
    if not self.is_initializing():
      self.mean.value = momentum * self.mean.value + (1 - momentum) * mean
      self.var.value = momentum * self.var.value + (1 - momentum) * var


def fused_batch_norm(x, norms, *, train: bool, momentum: float, epsilon: float = 1e-5,
                     dtype=None):
  """`concatenate([nn.BatchNorm(momentum)(x_i) for each], -1)` where `x_i` are consecutive
  channel blocks of `x` sized by the `norms` (BatchNormVariables, their variables updated as
  each nn.BatchNorm's): ONE normalisation over all channels, no slices and no concatenation."""
  scale, bias, mean, var = _fused_statistics(x, norms, train=train, momentum=momentum)
  return normalize(x, mean, var, scale, bias, (x.ndim - 1,), epsilon, dtype)


def fused_affine(x, norms, *, train: bool, momentum: float, epsilon: float = 1e-5,
                 batch_moments=None):
  """(a, shift) float32 [C] with `fused_batch_norm(x, norms, ...) == x * a + shift` (statistics
  from `x`, variables updated alike), for applying the map to something else: STSTNet applies it
  after its max-pool, which commutes with it channel by channel (see models/ststnet.py).
  batch_moments: (mean, var) of `x` computed elsewhere (then `x` may be None)."""
  scale, bias, mean, var = _fused_statistics(x, norms, train=train, momentum=momentum,
                                             batch_moments=batch_moments)
  a = jax.lax.rsqrt(var + epsilon) * scale
  return a, bias - mean * a


def moments_from_sums(total, total_sq, count: int):
  """`moments` (flax's one-pass mean and variance) from the sums of x and x^2 over `count` items."""
  mean = total / count
  return mean, jnp.maximum(0.0, total_sq / count - mean * mean)


def _fused_statistics(x, norms, *, train: bool, momentum: float, batch_moments=None):
  """(scale, bias, mean, var) [C] of the `norms` over `x`'s channels: batch moments of `x` (or
  `batch_moments`) in train mode (each norm's running averages updated with its block), else the
  running ones."""
  scale, bias, ra_mean, ra_var = (jnp.concatenate(v) for v in zip(*(n() for n in norms)))
  if not train:
    return scale, bias, ra_mean, ra_var
  mean, var = batch_moments or moments(x, tuple(range(x.ndim - 1)))
  bounds = np.cumsum([0] + [n.features for n in norms])
  for n, lo, hi in zip(norms, bounds[:-1], bounds[1:]):
    n.update(mean[lo:hi], var[lo:hi], momentum)
  return scale, bias, mean, var


def moments(x, reduction_axes, mask=None):
  """(mean, var) over `reduction_axes` in float32, one pass (E[x^2] - E[x]^2, clipped at 0, as
  flax's `use_fast_variance`); `mask` (broadcastable to x) restricts them to where it is True."""
  x = x.astype(jnp.float32)
  if mask is None:
    mean = jnp.mean(x, reduction_axes)
    mean_sq = jnp.mean(x * x, reduction_axes)
  else:
    where = jnp.asarray(mask, bool)
    count = _masked_count(where, x.shape, reduction_axes)
    mean = jnp.sum(x, reduction_axes, where=where) / count
    mean_sq = jnp.sum(x * x, reduction_axes, where=where) / count
  return mean, jnp.maximum(0.0, mean_sq - mean * mean)


def _masked_count(mask, shape, reduction_axes):
  """How many of `shape`'s elements `mask` (broadcastable to it) selects along `reduction_axes`,
  float32, shaped as a reduction over them: `jnp.mean(where=mask)`'s count, from the mask alone
  (it summed the mask broadcast to every element, a pass as large as x). Exact below 2^24."""
  mask = jnp.reshape(mask, (1,) * (len(shape) - mask.ndim) + mask.shape)
  repeats = np.prod([shape[a] for a in reduction_axes if mask.shape[a] == 1], dtype=np.int64)
  count = jnp.sum(mask, reduction_axes, dtype=jnp.float32) * np.float32(repeats)
  return jnp.broadcast_to(count, tuple(n for a, n in enumerate(shape)
                                       if a not in reduction_axes))
