"""ImageNet weights for ResNet50: Keras legacy HDF5 and torchvision state dicts, ported to flax.

    backbone = load_imagenet_weights(path, expected=resnet.backbone_shapes('keras'))
    variables = merge_backbone(model.init(key, x), backbone, scope=('backbone',))

(`microexp.models.resnet.load(variables, path)` does both.) The expected layout is passed in by
the model, so this package never imports the network it fills.

The file's format decides the variant: `.h5`/`.hdf5` is Keras ResNet50 v1 ('keras'), `.pth`/`.pt`/
`.safetensors` is torchvision ResNet50 v1.5 ('torchvision'). Inputs must then be normalised the
same way (`preprocess(x, 'caffe' | 'torch')`).
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any, Callable, Sequence

from flax import traverse_util
import jax.numpy as jnp

from microexp.models.weights import cache
from microexp.models.weights import source
from microexp.models.weights.preprocessing import flow_to_image
from microexp.models.weights.preprocessing import preprocess
from microexp.models.weights.source import WeightFileError

__all__ = ["WeightFileError", "flow_to_image", "load_imagenet_weights", "merge_backbone",
           "preprocess", "variant_of"]

_FORMATS = {".h5": "keras", ".hdf5": "keras", ".pth": "torchvision", ".pt": "torchvision",
            ".safetensors": "torchvision"}


def variant_of(path: str | pathlib.Path) -> str:
  """'keras' or 'torchvision', from the file's extension."""
  suffix = pathlib.Path(path).suffix.lower()
  if suffix not in _FORMATS:
    raise WeightFileError(path, f"unknown weight format {suffix!r}; expected one of {sorted(_FORMATS)}.")
  return _FORMATS[suffix]


def _reader(variant: str):
  # Imported on use: the HDF5 and torch readers are only needed by the matching format.
  if variant == "keras":
    from microexp.models.weights.keras_h5 import read_keras_h5  # pylint: disable=g-import-not-at-top
    return read_keras_h5
  from microexp.models.weights.torchvision import read_torchvision  # pylint: disable=g-import-not-at-top
  return read_torchvision


def load_imagenet_weights(path: str | pathlib.Path, variant: str | None = None, *,
                          expected: Callable[[str], source.ExpectedShapes],
                          cache_dir: str | pathlib.Path | None = None,
                          use_cache: bool = True) -> dict[str, Any]:
  """Ports an ImageNet ResNet50 checkpoint to `ResNetBackbone(variant)` variables.

  Args:
    path: Keras `resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5` (or the with-top file), or a
      torchvision ResNet50 `.pth` / `.safetensors` state dict.
    variant: the model's variant; an error if the file holds the other one. None: the file's.
    expected: variant -> flat backbone shapes {(collection, *module, leaf): shape}
      (`resnet.backbone_shapes`).
    cache_dir: where the one-time `.npz` conversion goes when not beside the file.
    use_cache: False converts from the source every time (and writes no cache).

  Returns:
    {'params': ..., 'batch_stats': ...} nested dicts of float32 numpy arrays, shaped like
    `ResNetBackbone(variant).init(...)`.
  """
  path = source.check_readable(path)
  file_variant = variant_of(path)
  if variant is not None and variant != file_variant:
    raise WeightFileError(path, (
        f"this file holds the {file_variant!r} ResNet50 but the model is variant={variant!r} "
        f"(the two differ in strides and conv biases); set the model's variant={file_variant!r}."))
  shapes = expected(file_variant)
  read = functools.partial(_reader(file_variant), expected=shapes)
  if use_cache:
    flat = cache.cached_conversion(path, file_variant, read, cache_dir=cache_dir)
  else:
    flat = read(path)
  if set(flat) != set(shapes) or any(flat[k].shape != s for k, s in shapes.items()):
    flat = read(path)  # A cache of another layout (older microexp): convert again.
  return traverse_util.unflatten_dict(flat)


def merge_backbone(variables: dict[str, Any], backbone: dict[str, Any],
                   scope: Sequence[str] = ("backbone",)) -> dict[str, Any]:
  """Returns `variables` with the sub-tree at `scope` replaced by `backbone`, checked leaf by leaf.

  Args:
    variables: a model's initialised variables {'params': ..., 'batch_stats': ...}.
    backbone: `load_imagenet_weights(...)` output.
    scope: module path of the backbone inside the model, e.g. ('backbone',) for ResNet50.

  Returns:
    New variables (the input is not modified); ported leaves are cast to the target's dtype,
    everything outside `scope` (the head) is kept as initialised.
  """
  merged = traverse_util.flatten_dict(variables)
  problems = []
  for collection, tree in backbone.items():
    for key, value in traverse_util.flatten_dict(tree).items():
      target = (collection, *scope, *key)
      if target not in merged:
        problems.append(f"model has no variable {'/'.join(target)}")
      elif merged[target].shape != value.shape:
        problems.append(f"{'/'.join(target)}: model {merged[target].shape}, weights {value.shape}")
      else:
        merged[target] = jnp.asarray(value, merged[target].dtype)
  prefix_len = len(scope) + 1
  ported = {(c, *k) for c, t in backbone.items() for k in traverse_util.flatten_dict(t)}
  for key in merged:
    if key[1:prefix_len] == tuple(scope) and (key[0], *key[prefix_len:]) not in ported:
      problems.append(f"model variable {'/'.join(key)} has no ported weight")
  if problems:
    raise ValueError("ImageNet weights do not fit the model (different variant, width or stage "
                     "sizes?):\n  - " + "\n  - ".join(problems))
  return traverse_util.unflatten_dict(merged)
