"""BatchNorm's affine map of max-pooled maps -> dropout -> average pool, as one CPU kernel
(pooled_head.cc), differentiable: STSTNet's layers between its conv kernel and its dense layer
in train mode (models/ststnet.py).

`affine_dropout_avg_pool(pmax, pmin, a, shift, words, ...)`, for pmax, pmin [..., B, H, W, C]
(the max pools of s and of -s: `conv_pool.Pooled`), a, shift [..., C] and the dropout's packed
random words [..., N] uint32 (`models.dropout.packed_words`), is

    avg_pool(select(kept, v / keep, 0)),  v = where(a < 0, -pmin, pmax) * |a| + shift

with the average pool's window equal to its stride (VALID). XLA:CPU ran these as ~10 passes over
the maps; the kernel makes one per direction. `reference` is the same function in pure JAX.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from microexp.kernels import build

_NAME = "pooled_head"
_TARGETS = (("microexp_pooled_head_forward", "MicroexpPooledHeadForward"),
            ("microexp_pooled_head_backward", "MicroexpPooledHeadBackward"))


def available() -> bool:
  """Whether the kernel runs here: the default backend is the CPU and the library built."""
  return build.available(_NAME, _TARGETS)


def supports(shape, window) -> bool:
  """Whether the kernel computes maps of `shape` [..., B, H, W, C]: C a multiple of 16, and the
  average pool's window fits in the maps."""
  return (len(shape) >= 4 and shape[-1] % 16 == 0 and 1 <= window[0] <= shape[-3]
          and 1 <= window[1] <= shape[-2])


def _attrs(window, bits, threshold, keep):
  return dict(pool_h=np.int64(window[0]), pool_w=np.int64(window[1]), bits=np.int64(bits),
              threshold=np.int64(threshold), keep=np.float32(keep))


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8))
def _head(pmax, pmin, a, shift, words, window, bits, threshold, keep):
  *lead, b, h, w, c = pmax.shape
  out = jax.ShapeDtypeStruct((*lead, b, h // window[0], w // window[1], c), jnp.float32)
  return jax.ffi.ffi_call("microexp_pooled_head_forward", out, vmap_method="broadcast_all")(
      pmax, pmin, a, shift, words, **_attrs(window, bits, threshold, keep))


def _head_fwd(pmax, pmin, a, shift, words, window, bits, threshold, keep):
  return _head(pmax, pmin, a, shift, words, window, bits, threshold, keep), (pmax, pmin, a, words)


def _head_bwd(window, bits, threshold, keep, residuals, gy):
  pmax, pmin, a, words = residuals
  maps = jax.ShapeDtypeStruct(pmax.shape, jnp.float32)
  channels = jax.ShapeDtypeStruct(a.shape, jnp.float32)
  gmax, gmin, ga, gshift = jax.ffi.ffi_call(
      "microexp_pooled_head_backward", (maps, maps, channels, channels),
      vmap_method="broadcast_all")(pmax, pmin, a, words, jnp.asarray(gy, jnp.float32),
                                   **_attrs(window, bits, threshold, keep))
  return gmax, gmin, ga, gshift, np.zeros(words.shape, jax.dtypes.float0)


_head.defvjp(_head_fwd, _head_bwd)


def affine_dropout_avg_pool(pmax, pmin, a, shift, words, *, window, bits: int, threshold: int,
                            keep: float):
  """The kernel (see the module doc). words: `bits`-bit fields per element, kept where a field
  is < `threshold`, then scaled by 1 / `keep`; bits = 0: no dropout (words ignored). Raises
  RuntimeError where the kernel could not be built, ValueError for maps it does not support."""
  build.require(_NAME, _TARGETS)
  if not supports(pmax.shape, window):
    raise ValueError(f"pooled_head: maps {pmax.shape} need channels in multiples of 16 and room "
                     f"for a {tuple(window)} window")
  if words is None:
    words = jnp.zeros((*pmax.shape[:-4], 1), jnp.uint32)
  return _head(pmax.astype(jnp.float32), pmin.astype(jnp.float32), a.astype(jnp.float32),
               shift.astype(jnp.float32), words, tuple(int(v) for v in window), int(bits),
               int(threshold), float(keep))


def reference(pmax, pmin, a, shift, mask, *, window, keep: float):
  """`affine_dropout_avg_pool` in pure JAX, `mask` [..., B, H, W, C] bool (None: no dropout)."""
  v = jnp.where(a < 0, -pmin, pmax) * jnp.abs(a) + shift
  if mask is not None:
    v = jax.lax.select(mask, v / keep, jnp.zeros_like(v))
  *lead, b, h, w, c = v.shape
  ho, wo = h // window[0], w // window[1]
  v = v[..., :ho * window[0], :wo * window[1], :]
  return jnp.mean(v.reshape(*lead, b, ho, window[0], wo, window[1], c), axis=(-4, -2))
