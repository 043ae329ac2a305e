"""On-device augmentation, traced inside the jitted train step.

Inputs are images `[B, H, W, C]` or clips `[B, T, H, W, C]`; one clip gets one transform for all
its frames. For optical flow (`is_flow`: channels u, v, then magnitude/strain), geometry moves the
vectors too: a horizontal flip negates u, a vertical flip negates v, a rotation rotates (u, v).
Magnitude and strain are invariant under all of these.

`augment_config` (a mapping, static, read at trace time): flip_h, flip_v (bool), crop (int: pad by
`crop` pixels and take a random crop back to the input size, the thesis's random crop/shift),
rotation (float, max degrees), mixup (float: Beta(alpha, alpha); 0 = off), flow_aware (bool,
default True; False flips flow as a plain image, u and v keep their sign: Keras' `RandomFlip`, as
the thesis augmented its flow images).

Sequences (`[T, H, W, C]` per clip) get one draw per clip: a flip mirrors the whole image sequence
(every frame alike, the thesis's "flipping the whole image sequence"), a crop shifts every frame by
the same offset.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from microexp.kernels import augment as augment_kernel


def _flip(x, axis: int, flip, sign_channel: int | None):
  flipped = jnp.flip(x, axis=axis)
  if sign_channel is not None:
    flipped = flipped * jnp.where(jnp.arange(x.shape[-1]) == sign_channel, -1.0, 1.0)
  return jnp.where(flip, flipped, x)


def _crop(shift, x, pad: int, is_flow: bool):
  """The crop of the input size at offset `shift` [2] (dy, dx in 0 .. 2 * pad) out of a
  `pad`-padded copy (flow pads with 0 = no motion)."""
  h_axis = x.ndim - 3
  widths = [(0, 0)] * x.ndim
  widths[h_axis] = widths[h_axis + 1] = (pad, pad)
  padded = jnp.pad(x, widths, mode="constant" if is_flow else "edge")
  dy, dx = shift[0], shift[1]
  start = [0] * x.ndim
  start[h_axis], start[h_axis + 1] = dy, dx
  return jax.lax.dynamic_slice(padded, start, x.shape)


def _source_coords(angle, h: int, w: int):
  """(src_y, src_x) [H, W]: where output pixel (row, column) samples the input when the map is
  rotated by `angle` (radians) about its centre: R^-1 p (x = column, y = row)."""
  c, s = jnp.cos(angle), jnp.sin(angle)
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  gx = jnp.arange(w, dtype=jnp.float32) - cx
  gy = jnp.arange(h, dtype=jnp.float32) - cy
  # Row and column terms [H, 1] + [1, W]: per pixel one add, not the products and sin / cos.
  src_x = (c * gx)[None, :] + (s * gy)[:, None] + cx
  src_y = (-s * gx)[None, :] + (c * gy)[:, None] + cy
  return src_y, src_x


def _rotation_sampler(angle, h: int, w: int):
  """Bilinear rotation by `angle` (radians) about the centre of an h x w map, zeros outside, as
  (starts [H*W, 2] int32: the top-left corner of each output pixel's 2x2 source patch in the map
  zero-padded by 2 pixels, weights [4, H*W] of its corners in row-major order). Equals
  `map_coordinates(order=1, mode='constant')`: a patch reaching outside the map reads the zero
  border."""
  src_y, src_x = (a.reshape(-1) for a in _source_coords(angle, h, w))
  y0, x0 = jnp.floor(src_y), jnp.floor(src_x)
  fy, fx = src_y - y0, src_x - x0
  # Padded coordinates: rows -2, -1 and h, h + 1 (columns alike) are the zero border; a patch
  # farther out is clipped onto it, where both its rows (columns) are zeros.
  starts = jnp.stack([jnp.clip(y0 + 2, 0, h + 2), jnp.clip(x0 + 2, 0, w + 2)], -1)
  wts = jnp.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx])
  return starts.astype(jnp.int32), wts


# The shifted-sum rotation (`_shifted_sum_resample`) costs (2 * reach + 1)^2 multiply-adds per
# element; on CPU it beats the gather up to reach 3 (49 shifts: 28x28 maps rotated by <= 8 deg,
# 0.47 against 0.65-0.72 ms per batch of 32 x 28x28x3 with 68 folds stacked, equal for one fold;
# docs/training.md, "Fourth pass"). Farther reaches, and every other backend, gather.
SHIFTED_SUM_MAX_REACH = 3


def rotation_reach(h: int, w: int, max_degrees: float) -> int:
  """A whole number of pixels per axis past which no bilinear corner of a rotation by at most
  `max_degrees` about the centre of an h x w map lies: floor of the largest |source - output|
  offset, plus one (float32 coordinates then stay inside it)."""
  t = np.deg2rad(abs(float(max_degrees)))
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  if t <= np.pi / 2:  # per axis |(cos t - 1) g_y -+ sin t g_x|, both terms growing with t
    bound = max((1 - np.cos(t)) * cy + np.sin(t) * cx, (1 - np.cos(t)) * cx + np.sin(t) * cy)
  else:  # |R p - p| <= 2 |p|
    bound = 2.0 * np.hypot(cy, cx)
  return int(np.floor(bound)) + 1


def _gather_resample(angle, planes):
  """planes [H, W, P] resampled bilinearly at `_source_coords`, zeros outside: one gather of
  2x2 patches of P-vectors, their corners weighted elementwise."""
  h, w = planes.shape[0], planes.shape[1]
  padded = jnp.pad(planes, ((2, 2), (2, 2), (0, 0)))
  starts, wts = _rotation_sampler(angle, h, w)
  dims = jax.lax.GatherDimensionNumbers(offset_dims=(1, 2, 3), collapsed_slice_dims=(),
                                        start_index_map=(0, 1))
  patches = jax.lax.gather(padded, starts, dims, (2, 2, padded.shape[-1]),
                           mode="promise_in_bounds")  # [H*W, 2, 2, P]
  wts = wts[..., None]
  out = (wts[0] * patches[:, 0, 0] + wts[1] * patches[:, 0, 1] + wts[2] * patches[:, 1, 0]
         + wts[3] * patches[:, 1, 1])
  return out.reshape(planes.shape)


def _shifted_sum_resample(angle, planes, reach: int):
  """`_gather_resample` without a gather, for rotations that move no pixel farther than `reach`:
  the sum over integer offsets (dy, dx) in [-reach, reach]^2 of the map shifted by them, weighted
  per pixel by the bilinear (tent) weights max(0, 1 - |src - p - d|) per axis, which are zero but
  for the (up to) 4 corners of each pixel's source patch. Elementwise work XLA fuses."""
  h, w = planes.shape[0], planes.shape[1]
  src_y, src_x = _source_coords(angle, h, w)
  off_y = src_y - jnp.arange(h, dtype=jnp.float32)[:, None]  # [H, W]
  off_x = src_x - jnp.arange(w, dtype=jnp.float32)[None, :]
  tent = lambda off, d: jnp.maximum(1.0 - jnp.abs(off - d), 0.0)[..., None]
  r = reach
  padded = jnp.pad(planes, ((r, r), (r, r), (0, 0)))
  wx = [tent(off_x, dx) for dx in range(-r, r + 1)]
  out = jnp.zeros_like(planes)
  for dy in range(-r, r + 1):
    row = sum(wx[dx + r] * padded[r + dy:r + dy + h, r + dx:r + dx + w]
              for dx in range(-r, r + 1))
    out = out + tent(off_y, dy) * row
  return out


def _rotate(angle, x, is_flow: bool, max_degrees: float | None = None):
  """x [H, W, C] or [T, H, W, C] rotated by `angle` (radians) about the centre, bilinear, zeros
  outside; flow vectors (u, v) are rotated with it. `max_degrees` (static), a bound on |angle|,
  lets small rotations on CPU run as a shifted sum (`SHIFTED_SUM_MAX_REACH`) instead of a gather.
  Both equal `map_coordinates(order=1, mode='constant')`. (A batch on CPU runs as the augmentation
  kernel instead: `augment`.)"""
  h, w, ch = x.shape[-3], x.shape[-2], x.shape[-1]
  if is_flow and ch >= 2:
    # The vectors turn with the map. Resampling is linear and the same for every channel, so
    # they are turned first, on the input: the resampled map is then the result (an update of
    # two channels after it would keep XLA from fusing the shifted sum).
    c, s = jnp.cos(angle), jnp.sin(angle)
    u, v = x[..., :1], x[..., 1:2]
    x = jnp.concatenate([c * u - s * v, s * u + c * v, x[..., 2:]], axis=-1)
  planes = jnp.moveaxis(x, 0, 2).reshape(h, w, -1) if x.ndim == 4 else x  # [H, W, T*C]
  reach = None if max_degrees is None else rotation_reach(h, w, max_degrees)
  if reach is not None and reach <= SHIFTED_SUM_MAX_REACH and jax.default_backend() == "cpu":
    # Materialised once: fused into its consumers (the crop, mixup, a conv's patches) the
    # shifted sum would be recomputed by each of them.
    out = jax.lax.optimization_barrier(_shifted_sum_resample(angle, planes, reach))
  else:
    out = _gather_resample(angle, planes)
  if x.ndim == 4:
    out = jnp.moveaxis(out.reshape(h, w, x.shape[0], ch), 2, 0)
  return out


# Columns of the per-sample uniform draw (`draw`).
_U_FLIP_H, _U_FLIP_V, _U_ANGLE, _U_DY, _U_DX = range(5)


def draw(key, batch: int, augment_config) -> dict:
  """The random transform of each of `batch` samples, from ONE uniform draw [batch, 5]:
  flip_h, flip_v [B] bool (p = 1/2), angle [B] radians (uniform in +-rotation degrees), shift
  [B, 2] int32 (uniform in 0 .. 2 * crop: the crop's offset into the padded copy)."""
  u = jax.random.uniform(key, (batch, 5))
  max_deg = float(augment_config.get("rotation", 0.0) or 0.0)
  pad = int(augment_config.get("crop", 0) or 0)
  shift = jnp.minimum(jnp.floor(u[:, _U_DY:_U_DX + 1] * (2 * pad + 1)), 2 * pad)
  return {"flip_h": u[:, _U_FLIP_H] < 0.5, "flip_v": u[:, _U_FLIP_V] < 0.5,
          "angle": jnp.deg2rad((2.0 * u[:, _U_ANGLE] - 1.0) * max_deg),
          "shift": shift.astype(jnp.int32)}


def apply_one(params, x, augment_config, *, is_flow: bool):
  """x: [H, W, C] or [T, H, W, C] -> same shape, transformed by one sample's `draw` params."""
  h_axis = x.ndim - 3
  signed = is_flow and augment_config.get("flow_aware", True)
  if augment_config.get("flip_h", False):
    x = _flip(x, h_axis + 1, params["flip_h"], 0 if signed else None)
  if augment_config.get("flip_v", False):
    x = _flip(x, h_axis, params["flip_v"], 1 if signed else None)
  if augment_config.get("rotation", 0.0):
    x = _rotate(params["angle"], x, is_flow, max_degrees=float(augment_config["rotation"]))
  if augment_config.get("crop", 0):
    x = _crop(params["shift"], x, int(augment_config["crop"]), is_flow)
  return x


def augment(key, x, augment_config, *, is_flow: bool):
  """x: [B, ...] -> [B, ...], an independent transform per sample. On CPU one kernel transforms
  the batch (kernels/augment.py) where it built; else each sample's `apply_one`, vmapped."""
  params = draw(key, x.shape[0], augment_config)
  options = _kernel_options(x, augment_config, is_flow)
  if options is not None:
    return _kernel_augment(options, params, x)
  return _apply_each(params, x, augment_config, is_flow=is_flow)


def _apply_each(params, x, augment_config, *, is_flow: bool):
  return jax.vmap(lambda p, xi: apply_one(p, xi, augment_config, is_flow=is_flow))(params, x)


def _kernel_options(x, augment_config, is_flow: bool):
  """The kernel's static options for this batch and config (hashable), or None where the
  kernel does not apply: nothing to transform, another dtype or rank, frames under 2 x 2, or no
  kernel here."""
  c = {k: augment_config.get(k) for k in ("flip_h", "flip_v", "rotation", "crop")}
  c["flow_aware"] = bool(augment_config.get("flow_aware", True))
  if not (c["flip_h"] or c["flip_v"] or c["rotation"] or c["crop"]):
    return None
  if (x.dtype != jnp.float32 or x.ndim not in (4, 5) or min(x.shape[-3:-1]) < 2
      or not augment_kernel.available()):
    return None
  return (is_flow, tuple(sorted(c.items())))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _kernel_augment(options, params, x):
  """`_apply_each` as the CPU kernel; its gradient is the pure-JAX transforms'."""
  is_flow, config = options
  config = dict(config)
  angle = params["angle"]
  off = jnp.zeros_like(angle)
  rows = jnp.stack([
      params["flip_h"].astype(jnp.float32) if config["flip_h"] else off,
      params["flip_v"].astype(jnp.float32) if config["flip_v"] else off,
      jnp.cos(angle), jnp.sin(angle),
      params["shift"][:, 0].astype(jnp.float32), params["shift"][:, 1].astype(jnp.float32)], -1)
  frames = x.reshape(x.shape[0], -1, *x.shape[-3:])  # [B, T, H, W, C] (T = 1 for images)
  out = augment_kernel.augment(
      frames, rows, crop=int(config["crop"] or 0), flow=is_flow,
      signed_flips=is_flow and config["flow_aware"],
      rotate=bool(config["rotation"]))
  return out.reshape(x.shape)


def _kernel_augment_fwd(options, params, x):
  return _kernel_augment(options, params, x), (params, x)


def _kernel_augment_bwd(options, residuals, g):
  is_flow, config = options
  return jax.vjp(lambda p, xi: _apply_each(p, xi, dict(config), is_flow=is_flow),
                 *residuals)[1](g)


_kernel_augment.defvjp(_kernel_augment_fwd, _kernel_augment_bwd)


def mixup(key, x, targets, mask, alpha: float):
  """Mixes each sample with a random partner: x [B, ...], targets [B, K] soft, mask [B, T]|None.

  Clip masks are OR-ed so that every real frame of either partner stays visible.
  """
  k_lam, k_perm = jax.random.split(key)
  lam = jax.random.beta(k_lam, alpha, alpha)
  perm = jax.random.permutation(k_perm, x.shape[0])
  x = lam * x + (1.0 - lam) * x[perm]
  targets = lam * targets + (1.0 - lam) * targets[perm]
  if mask is not None:
    mask = jnp.logical_or(mask, mask[perm])
  return x, targets, mask
