"""Convolutions and pools lowered to what the backend runs fast, with nn.Conv's parameters.

XLA:CPU runs small convolutions far below the machine's matmul rate, and a convolution vmapped over
stacked folds (a grouped convolution) slower still. Written as patches + one matmul (the kh*kw
shifted, strided slices of the padded input concatenated on channels, times the kernel reshaped to
[kh*kw*cin, cout]) the same layer is a GEMM, and vmapped a batched GEMM. Pools whose window equals
their stride are a reshape and a max / mean.

`conv_general_dilated(impl)` is a drop-in for `lax.conv_general_dilated`, handed to `nn.Conv`
through its `conv_general_dilated` field: the module, its name, its parameters ('kernel'
[kh, kw, cin, cout], 'bias') and their initialisers are nn.Conv's own, so checkpoints and ported
ImageNet weights load unchanged whatever the implementation. `Conv` is that nn.Conv.

Implementations (`impl`):
  'xla'    the library convolution / `nn.max_pool`, `nn.avg_pool`.
  'matmul' patches + matmul; reshape pools where the window equals the stride (else the library).
  'native' conv -> ReLU -> max-pool blocks (`conv_relu_max_pool`) as one hand-written CPU kernel
           (microexp/kernels/conv_pool.py: no patches, one pass per example); every other
           layer as 'matmul'. CPU only.
  'auto'   on CPU: the kernel for conv -> ReLU -> max-pool blocks where it built and supports the
           layer, 'matmul' for convolutions (unless their patches outgrow memory) and max pools,
           the library's average pool (thresholds below); 'xla' on
           every other backend (not measured there: the library until it is).
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

from microexp.kernels import conv_pool

IMPLS = ("auto", "xla", "matmul", "native")

# 'auto' on CPU lowers a convolution to patches + matmul unless its patch matrix (batch x Ho x Wo x
# kh*kw*cin values, in the compute dtype) would exceed this many bytes: the cap bounds memory, not
# speed. Measured (2-core EPYC, docs/training.md "Seventh pass" and "Eighth pass"): one jitted layer
# alone, the library was faster on large maps (matmul 0.55-0.94x at patches >= 339k per example),
# but inside the engine's epoch (a scan over steps in a map over folds) XLA:CPU's library
# convolutions are 6-30x slower than there: the flow CNN at 112 took 13.8 s per train step with them
# against 0.41 s as matmuls, ResNet50 at 224 (batch 16) 24.0 s against 3.9-4.0 s. Vmapped over
# folds the library's convolution becomes a grouped one (1.2-74x slower than matmuls for the zoo's
# small layers). 1x1 kernels gather no copies and are always matmuls.
AUTO_MAX_PATCH_BYTES = 1 << 30
# Layers with at most this many input channels build their patches in two concatenations (column
# shifts, then row shifts): XLA:CPU copies a concatenation's pieces cin floats at a time, and the
# patches of cin 3 / 16 alone came 1.7x / 1.5x faster, cin 32 no faster (docs/training.md,
# "Twelfth pass"). The same values, and the same input gradient (`_two_stage_patches`).
TWO_STAGE_MAX_CIN = 16
# Average pools stay the library's: its 2x2 reduce-window beat the reshape + mean (0.4-0.75x).
AUTO_RESHAPE_AVG_POOL = False

_FLAX_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def check_impl(impl: str) -> str:
  if impl not in IMPLS:
    raise ValueError(f"conv_impl must be one of {IMPLS}; got {impl!r}.")
  return impl


def _spatial_pads(in_spatial, window, strides, dilation, padding) -> list[tuple[int, int]]:
  """`padding` ('SAME', 'VALID' or (low, high) pairs) as explicit pairs per spatial dimension."""
  if isinstance(padding, str):
    dilated = [(k - 1) * d + 1 for k, d in zip(window, dilation)]
    return [tuple(p) for p in lax.padtype_to_pads(in_spatial, dilated, strides, padding)]
  return [tuple(p) for p in padding]


def _is_flax_layout(dimension_numbers) -> bool:
  if dimension_numbers is None:
    return False
  if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
    return tuple(dimension_numbers) == ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
  return tuple(dimension_numbers) == _FLAX_DIMENSION_NUMBERS


def matmul_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                precision=None, preferred_element_type=None):
  """`lax.conv_general_dilated` for `lhs: [N, H, W, cin]`, `rhs: [kh, kw, cin, cout]` (flax's
  NHWC / HWIO, 2-D) as patches + one matmul; other layouts, groups or input dilation go to lax.

  Supports any strides, padding ('SAME', 'VALID', explicit pairs) and kernel dilation.
  """
  spatial = lhs.ndim - 2
  lhs_dilation = tuple(lhs_dilation or (1,) * spatial)
  rhs_dilation = tuple(rhs_dilation or (1,) * spatial)
  if (spatial != 2 or not _is_flax_layout(dimension_numbers) or feature_group_count != 1
      or batch_group_count != 1 or any(d != 1 for d in lhs_dilation)):
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type)
  kh, kw, cin, cout = rhs.shape
  strides = tuple(window_strides)
  pads = _spatial_pads(lhs.shape[1:3], (kh, kw), strides, rhs_dilation, padding)
  x = lax.pad(lhs, jnp.zeros((), lhs.dtype), [(0, 0, 0), *[(lo, hi, 0) for lo, hi in pads],
                                               (0, 0, 0)])
  n, hp, wp, _ = x.shape
  (sh, sw), (dh, dw) = strides, rhs_dilation
  ho, wo = (hp - (kh - 1) * dh - 1) // sh + 1, (wp - (kw - 1) * dw - 1) // sw + 1
  if ho <= 0 or wo <= 0:
    raise ValueError(f"matmul_conv: kernel {kh}x{kw} (dilation {rhs_dilation}) does not fit the "
                     f"padded input {hp}x{wp}.")
  window = ((kh, kw), (ho, wo), (sh, sw), (dh, dw))
  if cin <= TWO_STAGE_MAX_CIN and kh > 1 and kw > 1:
    patches = _two_stage_patches(x, window)
  else:
    patches = _patches(x, window)
  return lax.dot_general(patches, rhs.reshape(kh * kw * cin, cout), (((3,), (0,)), ((), ())),
                         precision=precision, preferred_element_type=preferred_element_type)


def _patches(x, window):
  """The patches [N, Ho, Wo, kh * kw * cin] of the padded input x [N, Hp, Wp, cin]: one
  concatenation of its kh * kw shifted, strided slices (channel (i * kw + j) * cin + c, matching
  the kernel reshaped to [kh * kw * cin, cout]). `window`: ((kh, kw), (ho, wo), strides,
  kernel dilation)."""
  (kh, kw), (ho, wo), (sh, sw), (dh, dw) = window
  n, cin = x.shape[0], x.shape[-1]
  slices = [lax.slice(x, (0, i * dh, j * dw, 0),
                      (n, i * dh + (ho - 1) * sh + 1, j * dw + (wo - 1) * sw + 1, cin),
                      (1, sh, sw, 1))
            for i in range(kh) for j in range(kw)]
  return slices[0] if len(slices) == 1 else jnp.concatenate(slices, axis=-1)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _two_stage_patches(x, window):
  """`_patches`' values in two concatenations: the kw column shifts of every row, then the kh row
  shifts of those (each copy moves kw * cin floats instead of cin; see TWO_STAGE_MAX_CIN). Its
  derivative is `_patches` of the tangent, so the gradient is `_patches`' own transpose and
  training runs the same sums as before, bit for bit."""
  (kh, kw), (ho, wo), (sh, sw), (dh, dw) = window
  n, hp, _, cin = x.shape
  cols = jnp.concatenate([lax.slice(x, (0, 0, j * dw, 0),
                                    (n, hp, j * dw + (wo - 1) * sw + 1, cin), (1, 1, sw, 1))
                          for j in range(kw)], axis=-1)
  return jnp.concatenate([lax.slice(cols, (0, i * dh, 0, 0),
                                    (n, i * dh + (ho - 1) * sh + 1, wo, kw * cin), (1, sh, 1, 1))
                          for i in range(kh)], axis=-1)


@_two_stage_patches.defjvp
def _two_stage_patches_jvp(window, primals, tangents):
  return _two_stage_patches(primals[0], window), _patches(tangents[0], window)


def _auto_prefers_matmul(lhs_shape, rhs_shape, window_strides, padding, rhs_dilation,
                         itemsize: int = 4) -> bool:
  """The 'auto' rule for one layer (shapes only; see AUTO_MAX_PATCH_BYTES)."""
  if jax.default_backend() != "cpu":
    return False
  kh, kw, cin, _ = rhs_shape
  dilation = tuple(rhs_dilation or (1, 1))
  pads = _spatial_pads(lhs_shape[1:3], (kh, kw), window_strides, dilation, padding)
  ho, wo = [(size + lo + hi - (k - 1) * d - 1) // s + 1 for size, (lo, hi), k, d, s in
            zip(lhs_shape[1:3], pads, (kh, kw), dilation, window_strides)]
  return kh * kw == 1 or lhs_shape[0] * ho * wo * kh * kw * cin * itemsize <= AUTO_MAX_PATCH_BYTES


def auto_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
              dimension_numbers=None, **kwargs):
  """`matmul_conv` where the 'auto' rule prefers it for this layer and backend, else lax."""
  use_matmul = (_is_flax_layout(dimension_numbers) and lhs.ndim == 4
                and _auto_prefers_matmul(lhs.shape, rhs.shape, tuple(window_strides), padding,
                                         rhs_dilation, jnp.dtype(lhs.dtype).itemsize))
  fn = matmul_conv if use_matmul else lax.conv_general_dilated
  return fn(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers, **kwargs)


_CONV_FNS = {"xla": lax.conv_general_dilated, "matmul": matmul_conv, "auto": auto_conv,
             "native": matmul_conv}


def conv_general_dilated(impl: str) -> Callable:
  """The `lax.conv_general_dilated` stand-in for `impl` (a module-level function: hashable)."""
  return _CONV_FNS[check_impl(impl)]


def Conv(*args, impl: str = "auto", **kwargs) -> nn.Conv:  # pylint: disable=invalid-name
  """`nn.Conv(*args, **kwargs)` computed by `impl`: the same module, name and parameters.

  Called inside a compact method it is auto-named `Conv_<i>` like nn.Conv.
  """
  return nn.Conv(*args, conv_general_dilated=conv_general_dilated(impl), **kwargs)


def _tiles(x_shape, window, strides, padding) -> list[tuple[int, int]] | None:
  """Per spatial dim the (pad_low, pad_high) making a window == stride pool a reshape, or None.

  A negative pad_high crops the remainder a VALID pool drops.
  """
  if tuple(window) != tuple(strides):
    return None
  spatial = x_shape[-1 - len(window):-1]
  pads = _spatial_pads(spatial, window, strides, (1,) * len(window), padding)
  out = []
  for size, k, (lo, hi) in zip(spatial, window, pads):
    n_out = (size + lo + hi - k) // k + 1
    out.append((lo, n_out * k - size - lo))
  return out


def _pool_argmax(x, window, pads):
  """(max, index of its first occurrence in row-major window order) of each window == stride
  tile of `x` padded by `pads` with -inf. Both are reductions: XLA:CPU keeps them small arrays
  (an elementwise index would be fused into, and recomputed for, every gradient element)."""
  x = _pool_tiles(x, window, pads, -jnp.inf)
  kh, kw = window
  best = jnp.max(x, axis=(-4, -2))
  index_dtype = jnp.int8 if kh * kw < 128 else jnp.int32
  k = _pool_window_index(x.ndim, window, index_dtype)
  index = jnp.min(jnp.where(x == jnp.expand_dims(best, (-4, -2)), k, kh * kw), axis=(-4, -2))
  return best, index


def _pool_tiles(x, window, pads, pad_value):
  """`x [..., H, W, C]` padded by `pads` as [..., H / kh, kh, W / kw, kw, C]."""
  x = lax.pad(x, jnp.asarray(pad_value, x.dtype),
              [(0, 0, 0)] * (x.ndim - 3) + [(lo, hi, 0) for lo, hi in pads] + [(0, 0, 0)])
  *batch, h, w, c = x.shape
  kh, kw = window
  return x.reshape(*batch, h // kh, kh, w // kw, kw, c)


def _pool_window_index(ndim: int, window, dtype):
  """The row-major window position k = i * kw + j, shaped to broadcast against `_pool_tiles`."""
  shape = (1,) * (ndim - 5) + (1, window[0], 1, window[1], 1)
  return (lax.broadcasted_iota(dtype, shape, ndim - 4) * window[1]
          + lax.broadcasted_iota(dtype, shape, ndim - 2))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _reshape_max_pool(x, window, pads):
  """The max of each window == stride tile. Its derivative is the tangent at the window's first
  max (the library's select_and_scatter rule; jnp.max's would share it among ties), kept as an
  index from the forward pass: the gradient is one select, not jnp.max's equality mask and tie
  count (the costliest op of STSTNet's step on CPU)."""
  return jnp.max(_pool_tiles(x, window, pads, -jnp.inf), axis=(-4, -2))


@_reshape_max_pool.defjvp
def _reshape_max_pool_jvp(window, pads, primals, tangents):
  (x,), (t,) = primals, tangents
  best, index = _pool_argmax(x, window, pads)
  t = _pool_tiles(t, window, pads, 0)
  k = _pool_window_index(t.ndim, window, index.dtype)
  picked = jnp.where(jnp.expand_dims(index, (-4, -2)) == k, t, jnp.zeros((), t.dtype))
  return best, jnp.sum(picked, axis=(-4, -2))


def _use_reshape(impl: str, auto: bool = True) -> bool:
  impl = check_impl(impl)
  return impl in ("matmul", "native") or (impl == "auto" and auto
                                           and jax.default_backend() == "cpu")


def max_pool(x: jax.Array, window: Sequence[int], strides: Sequence[int] | None = None,
             padding="VALID", *, impl: str = "auto") -> jax.Array:
  """`nn.max_pool(x, window, strides, padding)` for `x: [..., H, W, C]`; a reshape + max where
  the window equals the stride ('matmul', and 'auto' on CPU), its gradient the library's (to the
  first max of each window)."""
  window, strides = tuple(window), tuple(strides or (1,) * len(window))
  pads = _tiles(x.shape, window, strides, padding) if len(window) == 2 else None
  if pads is None or not _use_reshape(impl):
    return nn.max_pool(x, window, strides, padding)
  return _reshape_max_pool(x, window, tuple(pads))


def avg_pool(x: jax.Array, window: Sequence[int], strides: Sequence[int] | None = None,
             padding="VALID", *, impl: str = "auto") -> jax.Array:
  """`nn.avg_pool(x, window, strides, padding)` (padded zeros counted, flax's default) for
  `x: [..., H, W, C]`; a reshape + mean where the window equals the stride ('matmul'; 'auto' on
  CPU only if AUTO_RESHAPE_AVG_POOL)."""
  window, strides = tuple(window), tuple(strides or (1,) * len(window))
  pads = _tiles(x.shape, window, strides, padding) if len(window) == 2 else None
  if pads is None or not _use_reshape(impl, AUTO_RESHAPE_AVG_POOL):
    return nn.avg_pool(x, window, strides, padding)
  return jnp.mean(_pool_tiles(x, window, pads, 0), axis=(-4, -2))



class ConvParams(nn.Module):
  """The parameters of `nn.Conv(features, kernel_size, use_bias)` on `in_features` channels, and
  nothing else: 'kernel' [kh, kw, in_features, features] and 'bias' [features], with nn.Conv's
  names, shapes, initialisers and so its init draws. `fused_conv` computes several of them as one.
  """

  features: int
  kernel_size: tuple[int, int]
  use_bias: bool = True

  @nn.compact
  def __call__(self, in_features: int):
    kernel = self.param("kernel", nn.linear.default_kernel_init,
                        tuple(self.kernel_size) + (in_features, self.features), jnp.float32)
    bias = (self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
            if self.use_bias else None)
    return kernel, bias


def fused_params(convs: Sequence[ConvParams], in_features: int):
  """(kernel, bias) of the `convs` (same kernel size) concatenated on output channels (bias None
  without biases): the parameters of one convolution computing all of them."""
  kernels, biases = zip(*(conv(in_features) for conv in convs))
  return (jnp.concatenate(kernels, axis=-1),
          None if biases[0] is None else jnp.concatenate(biases))


def fused_conv(x: jax.Array, convs: Sequence[ConvParams], padding="SAME", *, impl: str = "auto",
               dtype=jnp.float32) -> jax.Array:
  """The stride-1 outputs of the `convs` (same kernel size) on `x`, concatenated on channels, as
  ONE convolution with their kernels concatenated: one set of patches and one matmul where there
  were one per conv. Equals `concatenate([nn.Conv(...)(x) for each], -1)` with those parameters."""
  kernel, bias = fused_params(convs, x.shape[-1])
  x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=dtype)
  y = conv_general_dilated(impl)(
      x, kernel, (1, 1), padding, lhs_dilation=(1, 1), rhs_dilation=(1, 1),
      dimension_numbers=lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2)))
  return y if bias is None else y + bias


def uses_kernel(impl: str, x_shape, kernel_shape, window, padding, dtype=jnp.float32) -> bool:
  """Whether `conv_relu_max_pool` runs this block as the CPU kernel under `impl`: 'native' (an
  error where it cannot), or 'auto' on CPU where the kernel built and supports the layer."""
  impl = check_impl(impl)
  if impl not in ("native", "auto"):
    return False
  window = tuple(window)
  fits = (_tiles(tuple(x_shape[:-1]) + (kernel_shape[-1],), window, window, padding) is not None
          and conv_pool.supports(x_shape, kernel_shape, window, jnp.dtype(dtype)))
  if impl == "auto":
    return fits and conv_pool.available()
  if not fits or jax.default_backend() != "cpu":
    raise ValueError(f"conv_impl='native': the CPU kernel does not run a {kernel_shape[0]}x"
                     f"{kernel_shape[1]} conv with a {window} pool ({padding}) in {dtype} on "
                     f"{jax.default_backend()}; use 'auto'.")
  return True


def conv_relu_max_pool(x: jax.Array, kernel: jax.Array, bias: jax.Array | None,
                       window: Sequence[int], padding="VALID", *, stats: bool = False):
  """`conv_pool.Pooled` of relu(conv(x) 'SAME', stride 1) max-pooled by `window` (== stride,
  `padding`) as the CPU kernel: call where `uses_kernel` says so. stats: the channel sums of the
  map and of its square (BatchNorm's moments) too."""
  window = tuple(window)
  pads = _tiles(tuple(x.shape[:-1]) + (kernel.shape[-1],), window, window, padding)
  return conv_pool.conv_relu_max_pool(x, kernel, bias, window, pads, stats=stats)
