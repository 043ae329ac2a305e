"""The geometric augmentation of a batch as one CPU kernel (augment.cc).

`augment(x, params, ...)`: x [..., B, T, H, W, C] float32, each example's T frames flipped, rotated
about their centre (bilinear, zeros outside; flow vectors turned with them) and cropped, by its
row of `params` [..., B, 6] (flip_h, flip_v, cos, sin, shift_y, shift_x). The values of
microexp/train/augment.py's pure-JAX `apply_one` in one pass over the batch, 4 multiply-adds per
element (XLA:CPU ran a flip, a gather or shifted sums, a pad and a slice). Forward only:
train/augment.py pairs it with the pure-JAX transforms' gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from microexp.kernels import build

_NAME = "augment"
_TARGET = "microexp_augment"
_TARGETS = ((_TARGET, "MicroexpAugment"),)
NUM_PARAMS = 6


def available() -> bool:
  """Whether the kernel runs here: the default backend is the CPU and the library built."""
  return build.available(_NAME, _TARGETS)


def augment(x: jax.Array, params: jax.Array, *, crop: int, flow: bool, signed_flips: bool,
            rotate: bool) -> jax.Array:
  """x [..., B, T, H, W, C] float32 transformed by params [..., B, 6] (see the module doc).

  crop: the crop's padding (0: none); flow: zero padding for the crop and (u, v) turned by the
  rotation (else edge padding, channels untouched); signed_flips: a flip negates u (horizontal) or
  v (vertical); rotate: False ignores the angle. Call where `available()`.
  """
  build.require(_NAME, _TARGETS)
  if x.ndim < 5 or params.shape[-1] != NUM_PARAMS or params.shape[:-1] != x.shape[:-4]:
    raise ValueError(f"augment: x {x.shape} must be [..., B, T, H, W, C] and params "
                     f"{params.shape} [..., B, {NUM_PARAMS}]")
  return jax.ffi.ffi_call(_TARGET, jax.ShapeDtypeStruct(x.shape, jnp.float32),
                          vmap_method="broadcast_all")(
      x, params.astype(jnp.float32), crop=np.int64(crop), flow=np.int64(flow),
      signed_flips=np.int64(signed_flips), rotate=np.int64(rotate))
