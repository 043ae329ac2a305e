"""The rotation augmentation's resampling as one CPU kernel (rotate.cc).

`rotate(maps, cos_sin)`: maps [..., H, W, P] float32 resampled bilinearly at their rotation by the
angle of `cos_sin` [..., 2] about the map's centre, zeros outside: the values of
`map_coordinates(order=1, mode='constant')` at microexp/train/augment.py's source coordinates, 4
multiply-adds per element (XLA:CPU's gather, or its shifted sums for small angles, make one or
many passes over the maps). Forward only: train/augment.py pairs it with the gather's gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from microexp.kernels import build

_NAME = "rotate"
_TARGET = "microexp_rotate"
_TARGETS = ((_TARGET, "MicroexpRotate"),)


def available() -> bool:
  """Whether the kernel runs here: the default backend is the CPU and the library built."""
  return build.available(_NAME, _TARGETS)


def rotate(maps: jax.Array, cos_sin: jax.Array) -> jax.Array:
  """maps [..., H, W, P] float32 rotated by (cos, sin) [..., 2] (see the module doc). Call where
  `available()`; any leading (vmapped) dimensions, one angle per map."""
  build.require(_NAME, _TARGETS)
  return jax.ffi.ffi_call(_TARGET, jax.ShapeDtypeStruct(maps.shape, jnp.float32),
                          vmap_method="broadcast_all")(maps, cos_sin.astype(jnp.float32))
