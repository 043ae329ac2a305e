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

import jax
import jax.numpy as jnp


def _flip(x, axis: int, flip, sign_channel: int | None):
  flipped = jnp.flip(x, axis=axis)
  if sign_channel is not None:
    flipped = flipped * jnp.where(jnp.arange(x.shape[-1]) == sign_channel, -1.0, 1.0)
  return jnp.where(flip, flipped, x)


def _crop(key, x, pad: int, is_flow: bool):
  """Random crop of the input size out of a `pad`-padded copy (flow pads with 0 = no motion)."""
  h_axis = x.ndim - 3
  widths = [(0, 0)] * x.ndim
  widths[h_axis] = widths[h_axis + 1] = (pad, pad)
  padded = jnp.pad(x, widths, mode="constant" if is_flow else "edge")
  dy, dx = jax.random.randint(key, (2,), 0, 2 * pad + 1)
  start = [0] * x.ndim
  start[h_axis], start[h_axis + 1] = dy, dx
  return jax.lax.dynamic_slice(padded, start, x.shape)


def _rotate(key, x, max_degrees: float, is_flow: bool):
  """Rotation by an angle in [-max, max] about the centre, bilinear, zeros outside."""
  angle = jnp.deg2rad(jax.random.uniform(key, (), minval=-max_degrees, maxval=max_degrees))
  c, s = jnp.cos(angle), jnp.sin(angle)
  h, w = x.shape[-3], x.shape[-2]
  yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  # Output pixel p samples the input at R^-1 p (coordinates x = column, y = row).
  src_x = c * (xx - cx) + s * (yy - cy) + cx
  src_y = -s * (xx - cx) + c * (yy - cy) + cy

  def plane(p):  # [H, W] -> [H, W]
    return jax.scipy.ndimage.map_coordinates(p, [src_y, src_x], order=1, mode="constant")

  lead = x.shape[:-3]
  flat = jnp.moveaxis(x.reshape((-1,) + x.shape[-3:]), -1, 1)  # [L, C, H, W]
  out = jax.vmap(jax.vmap(plane))(flat)
  out = jnp.moveaxis(out, 1, -1).reshape(lead + x.shape[-3:])
  if is_flow and x.shape[-1] >= 2:
    u, v = out[..., 0], out[..., 1]
    out = out.at[..., 0].set(c * u - s * v).at[..., 1].set(s * u + c * v)
  return out


def augment_one(key, x, augment_config, *, is_flow: bool):
  """x: [H, W, C] or [T, H, W, C] -> same shape, randomly transformed."""
  k_fh, k_fv, k_crop, k_rot = jax.random.split(key, 4)
  h_axis = x.ndim - 3
  signed = is_flow and augment_config.get("flow_aware", True)
  if augment_config.get("flip_h", False):
    x = _flip(x, h_axis + 1, jax.random.bernoulli(k_fh), 0 if signed else None)
  if augment_config.get("flip_v", False):
    x = _flip(x, h_axis, jax.random.bernoulli(k_fv), 1 if signed else None)
  if augment_config.get("rotation", 0.0):
    x = _rotate(k_rot, x, float(augment_config["rotation"]), is_flow)
  if augment_config.get("crop", 0):
    x = _crop(k_crop, x, int(augment_config["crop"]), is_flow)
  return x


def augment(key, x, augment_config, *, is_flow: bool):
  """x: [B, ...] -> [B, ...], an independent transform per sample."""
  keys = jax.random.split(key, x.shape[0])
  return jax.vmap(lambda k, xi: augment_one(k, xi, augment_config, is_flow=is_flow))(keys, x)


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
