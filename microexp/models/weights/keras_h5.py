"""Reads the Keras ResNet50 ImageNet file (legacy HDF5) into the 'keras' backbone's variables.

The official `resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5` is a Keras 2 *legacy* weights
file: the root attribute `layer_names` lists every layer, and each layer's group carries the
attribute `weight_names` ('conv1_conv/kernel:0', ...) naming its datasets in Keras' own order
(trainable then non-trainable: kernel, bias; gamma, beta, moving_mean, moving_variance). Keras
itself loads it by that order; we map every tensor explicitly by layer name and check the names.

Two layer namings exist under the same file name: tf.keras / Keras >= 2.2.5 ('conv2_block1_1_conv')
and the 2016 release of fchollet/deep-learning-models ('res2a_branch2a', 'bn2a_branch2a'); both are
read. Kernels are HWIO already, as in flax.
"""

from __future__ import annotations

import re
import string

import h5py
import numpy as np

from microexp.models.weights import source

WeightFileError = source.WeightFileError

# Layers of the with-top file that the backbone does not use.
_IGNORED_LAYERS = ("predictions", "fc1000", "probs")
_CONV_LEAVES = ("kernel", "bias")
_BN_LEAVES = ("gamma", "beta", "moving_mean", "moving_variance")
_BN_FLAX = {"gamma": ("params", "scale"), "beta": ("params", "bias"),
            "moving_mean": ("batch_stats", "mean"), "moving_variance": ("batch_stats", "var")}
# Weight names of older Keras releases, by the leaf they hold.
_ALIASES = {"w": "kernel", "b": "bias", "running_mean": "moving_mean",
            "running_std": "moving_variance"}


def keras_layer_name(module: tuple[str, ...]) -> str:
  """('stage1_block1', 'conv1') -> 'conv2_block1_1_conv'; ('bn_init',) -> 'conv1_bn'."""
  if module == ("conv_init",):
    return "conv1_conv"
  if module == ("bn_init",):
    return "conv1_bn"
  stage, block = re.fullmatch(r"stage(\d+)_block(\d+)", module[0]).groups()
  kind, index = re.fullmatch(r"(conv|bn|proj_conv|proj_bn)(\d*)", module[1]).groups()
  index = "0" if kind.startswith("proj") else index
  return f"conv{int(stage) + 1}_block{block}_{index}_{kind.removeprefix('proj_')}"


def _modern_name(name: str) -> str:
  """Translates the 2016 naming ('res3b_branch2a', 'bn_conv1') to the tf.keras one."""
  if name == "conv1":
    return "conv1_conv"
  if name == "bn_conv1":
    return "conv1_bn"
  m = re.fullmatch(r"(res|bn)(\d)([a-z])_branch(1|2a|2b|2c)", name)
  if not m:
    return name
  kind, stage, block, branch = m.groups()
  index = {"1": "0", "2a": "1", "2b": "2", "2c": "3"}[branch]
  suffix = "conv" if kind == "res" else "bn"
  return f"conv{stage}_block{string.ascii_lowercase.index(block) + 1}_{index}_{suffix}"


def _leaf_name(weight_name: str) -> str:
  """'conv1_conv/kernel:0' -> 'kernel'; 'bn_conv1_running_std' -> 'moving_variance'."""
  leaf = weight_name.split("/")[-1].split(":")[0].lower()
  for alias, canonical in _ALIASES.items():
    if leaf == alias or leaf.endswith("_" + alias):
      return canonical
  return leaf


def _read_layers(path, f: h5py.File) -> dict[str, tuple[list[str], list[np.ndarray]]]:
  """{layer name: (weight names, arrays)} for every layer with weights, in file order."""
  root = f["model_weights"] if "model_weights" in f and "layer_names" not in f.attrs else f
  if "layer_names" not in root.attrs:
    layout = ("the Keras 3 `.weights.h5` layout" if "layers" in root or "vars" in root
              else "no `layer_names` attribute")
    raise WeightFileError(path, (
        f"not a legacy Keras weights file ({layout}). Use the official "
        f"resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 ({source.KERAS_NOTOP_URL})."))
  layers = {}
  try:
    for name in root.attrs["layer_names"]:
      name = name.decode("utf8") if isinstance(name, bytes) else str(name)
      group = root[name]
      weight_names = [w.decode("utf8") if isinstance(w, bytes) else str(w)
                      for w in group.attrs.get("weight_names", [])]
      if weight_names:
        layers[name] = (weight_names, [np.asarray(group[w]) for w in weight_names])
  except (KeyError, OSError, RuntimeError) as e:
    raise WeightFileError(path, f"unreadable HDF5 content (truncated or corrupt download?): {e}")
  return layers


def read_keras_h5(path, expected: source.ExpectedShapes) -> dict[source.FlatKey, np.ndarray]:
  """Reads a legacy Keras ResNet50 weights file.

  expected: flat shapes of `ResNetBackbone(variant='keras')` (`resnet.backbone_shapes`).

  Returns:
    flat {(collection, *module, leaf): float32 array} for `ResNetBackbone(variant='keras')`.

  Raises:
    WeightFileError: unreadable/truncated HDF5, another layout, another architecture (every
      missing and unmatched layer listed) or shapes that differ from ResNet50.
  """
  path = source.check_readable(path)
  try:
    f = h5py.File(path, "r")
  except OSError as e:
    raise WeightFileError(path, (
        f"not a readable HDF5 file (truncated or corrupt download? {e}). "
        f"Download it again from {source.KERAS_NOTOP_URL}.")) from None
  with f:
    layers = {_modern_name(k): v for k, v in _read_layers(path, f).items()}

  modules = {keras_layer_name(m): m for m in source.modules_of(expected)}
  missing = [f"missing layer {n} (-> {'/'.join(m)})" for n, m in modules.items() if n not in layers]
  unmatched = [f"unmatched layer {n} in the file ({', '.join(w)})" for n, (w, _) in layers.items()
               if n not in modules and n not in _IGNORED_LAYERS]
  if missing or unmatched:
    raise WeightFileError(path, (
        "this file does not hold the Keras ResNet50 backbone (another architecture?): "
        f"{len(missing)} missing, {len(unmatched)} unmatched layers."), missing + unmatched)

  found, names, problems = {}, {}, []
  for layer, module in modules.items():
    weight_names, arrays = layers[layer]
    is_bn = module[-1].startswith(("bn", "proj_bn"))
    leaves = _BN_LEAVES if is_bn else _CONV_LEAVES
    if len(arrays) != len(leaves):
      problems.append(f"layer {layer}: expected {len(leaves)} weights {leaves}, found "
                      f"{len(arrays)} {weight_names}")
      continue
    for leaf, weight_name, array in zip(leaves, weight_names, arrays):
      # Unknown names are taken by position, as Keras does; known ones must sit in their place.
      named = _leaf_name(weight_name)
      if named in _CONV_LEAVES + _BN_LEAVES and named != leaf:
        problems.append(f"layer {layer}: weight {weight_name!r} is where Keras keeps {leaf!r}")
      collection, flax_leaf = _BN_FLAX[leaf] if is_bn else ("params", leaf)
      key = (collection, *module, flax_leaf)
      found[key], names[key] = array, f"{layer}/{weight_name}"
  if problems:
    raise WeightFileError(path, "unexpected weights inside ResNet50 layers.", problems)
  return source.check_shapes(path, found, expected, names.__getitem__)
