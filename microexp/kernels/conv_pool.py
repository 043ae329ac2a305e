"""conv (stride 1, 'same') -> ReLU -> max-pool (window == stride) as one CPU kernel, differentiable.

`conv_relu_max_pool(x, kernel, bias, window, padding)` returns, for s = relu(conv(x) + bias):
  max     nn.max_pool(s, window, window, padding)
  min     -nn.max_pool(-s, ...): the pool of -s, for a BatchNorm scale < 0 (models/ststnet.py)
  sum, sum_sq   per channel, s and s^2 summed over batch and pixels (BatchNorm's moments)
with the library's gradients (to each window's first max / min in row-major order, ReLU's
derivative 0 at 0). On XLA:CPU the layer's patches, full-resolution map, pool and their gradients
are many passes over memory (docs/training.md); the kernel (conv_relu_pool.cc) computes each
example one pool window at a time inside the cache, writing only the pooled maps, the sums and
the pre-activation the backward pass reads back. Inputs
float32, any leading (vmapped) dimensions. `reference` is the same function in pure JAX.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

from microexp.kernels import build

_NAME = "conv_relu_pool"
_TARGETS = (("microexp_conv_relu_pool_forward", "MicroexpConvReluPoolForward"),
            ("microexp_conv_relu_pool_param_grad", "MicroexpConvReluPoolParamGrad"),
            ("microexp_conv_relu_pool_input_grad", "MicroexpConvReluPoolInputGrad"))


class Pooled(NamedTuple):
  max: jax.Array     # [..., B, Ho, Wo, Co]
  min: jax.Array     # [..., B, Ho, Wo, Co]
  sum: jax.Array     # [..., Co]
  sum_sq: jax.Array  # [..., Co]


def available() -> bool:
  """Whether the kernel runs here: the default backend is the CPU and the library built."""
  return build.available(_NAME, _TARGETS)


def supports(x_shape, kernel_shape, window, dtype) -> bool:
  """Whether the kernel computes this layer (float32, odd kernel, a pool window of <= 127)."""
  kh, kw = kernel_shape[:2]
  return (dtype == jnp.float32 and len(x_shape) >= 4 and kh % 2 == 1 and kw % 2 == 1
          and window[0] * window[1] <= 127)


def _call(target: str, results, *args, **attrs):
  return jax.ffi.ffi_call(f"microexp_{_NAME}_{target}", results,
                          vmap_method="broadcast_all")(*args, **attrs)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _kernel(x, kernel, bias, pool: tuple[int, int, int, int, int, int], stats: bool):
  return _forward(x, kernel, bias, pool, stats)[0]


def _forward(x, kernel, bias, pool, stats):
  ph, pw, top, left, ho, wo = pool
  *lead, b, _, _, _ = x.shape
  co = kernel.shape[-1]
  cells = jax.ShapeDtypeStruct((*lead, b, ho, wo, co), jnp.float32)
  index = jax.ShapeDtypeStruct((*lead, b, ho, wo, co), jnp.int8)
  moments = jax.ShapeDtypeStruct((*lead, co), jnp.float32)
  pre_activation = jax.ShapeDtypeStruct((*x.shape[:-1], co), jnp.float32)
  pmax, pmin, amax, amin, total, total_sq, z = _call(
      "forward", (cells, cells, index, index, moments, moments, pre_activation), x, kernel,
      bias, pool_h=ph, pool_w=pw, pool_top=top, pool_left=left, stats=stats)
  # The backward reads z (the map before ReLU) rather than recomputing it.
  return Pooled(pmax, pmin, total, total_sq), (x, kernel, bias, amax, amin, z)


def _backward_rule(pool, stats, residuals, cotangents):
  del stats
  ph, pw, top, left, _, _ = pool
  x, kernel, bias, amax, amin, z = residuals
  args = (x, kernel, amax, amin, z, *(jnp.asarray(c, jnp.float32) for c in cotangents))
  attrs = dict(pool_h=ph, pool_w=pw, pool_top=top, pool_left=left)
  dkernel, dbias = _call("param_grad", (jax.ShapeDtypeStruct(kernel.shape, jnp.float32),
                                        jax.ShapeDtypeStruct(bias.shape, jnp.float32)),
                         *args, **attrs)
  # A call of its own: XLA drops it where x needs no gradient (a network's input).
  dx = _call("input_grad", jax.ShapeDtypeStruct(x.shape, jnp.float32), *args, **attrs)
  return dx, dkernel, dbias


_kernel.defvjp(_forward, _backward_rule)


def conv_relu_max_pool(x: jax.Array, kernel: jax.Array, bias: jax.Array | None,
                       window: Sequence[int], pads, *, stats: bool = True) -> Pooled:
  """The CPU kernel (see the module doc). x [..., B, H, W, Ci] float32, kernel [KH, KW, Ci, Co]
  (odd sizes; the conv is 'same', stride 1), bias [Co] or None; `pads` ((top, bottom), (left,
  right)) make the pool a tiling (`lowering`'s reshape pools; negative: cropped). `stats=False`
  leaves sum and sum_sq zero. Raises RuntimeError where the kernel could not be built."""
  build.require(_NAME, _TARGETS)
  window = tuple(window)
  h, w = x.shape[-3:-1]
  (top, bottom), (left, right) = pads
  ho, wo = (h + top + bottom) // window[0], (w + left + right) // window[1]
  if bias is None:
    bias = jnp.zeros(kernel.shape[-1], jnp.float32)
  pool = (window[0], window[1], top, left, ho, wo)
  return Pooled(*_kernel(x, kernel, bias, pool, bool(stats)))


def reference(x, kernel, bias, window, padding="VALID", *, stats: bool = True) -> Pooled:
  """`conv_relu_max_pool` in pure JAX (flax's convolution and pools)."""
  window = tuple(window)
  s = lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
  s = nn.relu(s if bias is None else s + bias)
  axes = tuple(range(s.ndim - 1))
  zeros = jnp.zeros(s.shape[-1], s.dtype)
  return Pooled(nn.max_pool(s, window, window, padding), -nn.max_pool(-s, window, window, padding),
                jnp.sum(s, axes) if stats else zeros, jnp.sum(s * s, axes) if stats else zeros)
