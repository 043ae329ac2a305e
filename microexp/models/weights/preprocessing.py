"""Input conventions of the ImageNet checkpoints, and the mapping of optical flow onto them.

ImageNet weights only help when the input looks like what they were trained on: 0..255 images,
normalised the checkpoint's way. Flow (u, v, magnitude) is first mapped to 0..255 by
`flow_to_image`, then normalised by `preprocess` exactly like an RGB photo (the thesis fed flow
images to ResNet50 as 3-channel images).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Keras `imagenet_utils.preprocess_input(mode='caffe')`: BGR channel means, no scaling.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# torchvision `ResNet50_Weights.IMAGENET1K_V1.transforms()`: RGB in [0, 1], then mean/std.
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STD_RGB = (0.229, 0.224, 0.225)
CONVENTIONS = ("caffe", "torch", "none")


def preprocess(x: jax.Array, convention: str) -> jax.Array:
  """Normalises RGB images x: [..., 3] in 0..255 the way a checkpoint expects.

  Args:
    x: float [..., 3], RGB, values in 0..255.
    convention: 'caffe' (Keras ResNet50: RGB->BGR, minus the ImageNet BGR mean, no scaling),
      'torch' (torchvision: x / 255, minus mean, divided by std, RGB) or 'none' (unchanged).

  Returns:
    float32 [..., 3].
  """
  x = jnp.asarray(x, jnp.float32)
  if convention == "none":
    return x
  if x.shape[-1] != 3:
    raise ValueError(f"preprocess({convention!r}) needs 3 channels (RGB), got shape {x.shape}.")
  if convention == "caffe":
    return x[..., ::-1] - jnp.asarray(CAFFE_MEAN_BGR, jnp.float32)
  if convention == "torch":
    mean = jnp.asarray(TORCH_MEAN_RGB, jnp.float32)
    return (x / 255.0 - mean) / jnp.asarray(TORCH_STD_RGB, jnp.float32)
  raise ValueError(f"Unknown input convention {convention!r}; expected one of {CONVENTIONS}.")


def flow_to_image(flow: jax.Array, bound: float | None = None) -> jax.Array:
  """Maps flow channels (u, v, magnitude or strain) to the 0..255 range of an image.

  Args:
    flow: float [..., H, W, 3]: u and v (pixels, signed) and a non-negative third channel.
    bound: None: each channel of each sample is min-max scaled to 0..255 over H, W (the usual
      "flow image": contrast is per sample, absolute speed is lost). A float b: fixed scaling that
      keeps absolute speed comparable across samples: u, v in [-b, b] -> [0, 255] (0 -> 127.5),
      third channel in [0, b] -> [0, 255]; values beyond are clipped.

  Returns:
    float32 [..., H, W, 3] in 0..255, channel order unchanged (u->R, v->G, third->B before
    `preprocess`).
  """
  flow = jnp.asarray(flow, jnp.float32)
  if bound is None:
    lo = jnp.min(flow, axis=(-3, -2), keepdims=True)
    hi = jnp.max(flow, axis=(-3, -2), keepdims=True)
    return 255.0 * (flow - lo) / jnp.maximum(hi - lo, 1e-6)
  if bound <= 0:
    raise ValueError(f"flow_to_image: bound must be positive, got {bound}.")
  uv = 127.5 * (1.0 + jnp.clip(flow[..., :2] / bound, -1.0, 1.0))
  third = 255.0 * jnp.clip(flow[..., 2:] / bound, 0.0, 1.0)
  return jnp.concatenate([uv, third], axis=-1)
