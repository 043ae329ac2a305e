"""Proof of the ImageNet ports: flax ResNet50 reproduces Keras' and a torch reference's outputs.

References are built with random weights (BN statistics included), saved in the formats of the
official files, ported, and compared on the same images with each checkpoint's input convention.

Legacy HDF5 layout (what `resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5` holds, Keras 2's
`save_weights_to_hdf5_group`): root attrs `layer_names` (every layer, weightless ones included),
`backend`, `keras_version`; one group per layer with attr `weight_names` ('conv1_conv/kernel:0',
... trainable then non-trainable) and datasets at those (nested) paths. `write_legacy_h5` writes
that with h5py; the test checks that Keras' own legacy loader (the one `ResNet50(weights=
'imagenet')` uses on the official file) reads it back exactly, and that the port also reads Keras
3's own legacy writer and the 2016 layer names ('res2a_branch2a').
"""

from __future__ import annotations

import os
import pathlib
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import h5py  # pylint: disable=g-import-not-at-top
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microexp.models import builder
from microexp.models import resnet
from microexp.models import weights
from microexp.models.weights import keras_h5
from microexp.models.weights import preprocessing

SIZE = 64  # Input side: small for speed, large enough that every stage keeps a spatial extent.
TOL = 1e-4


def _images(seed: int) -> np.ndarray:
  """RGB images [2, SIZE, SIZE, 3] in 0..255, float32."""
  return np.random.default_rng(seed).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)


def write_legacy_h5(model, path, rename=lambda name: name) -> pathlib.Path:
  """Writes Keras `model`'s weights in the legacy Keras 2 HDF5 layout of the official file."""
  with h5py.File(path, "w") as f:
    # Keras 2 stored attributes through numpy: fixed-length bytes ('S'), an empty float array for
    # weightless layers.
    f.attrs["layer_names"] = np.asarray([rename(l.name).encode("utf8") for l in model.layers])
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = b"2.2.4"
    for layer in model.layers:
      name = rename(layer.name)
      group = f.create_group(name)
      variables = layer.trainable_weights + layer.non_trainable_weights
      weight_names = [f"{name}/{v.name}:0" for v in variables]
      group.attrs["weight_names"] = np.asarray([w.encode("utf8") for w in weight_names])
      for weight_name, v in zip(weight_names, variables):
        group.create_dataset(weight_name, data=np.asarray(v.numpy()))
  return pathlib.Path(path)


def _old_keras_name(name: str) -> str:
  """'conv3_block2_1_conv' -> 'res3b_branch2a' (fchollet/deep-learning-models 2016 names)."""
  if name in ("conv1_conv", "conv1_bn"):
    return {"conv1_conv": "conv1", "conv1_bn": "bn_conv1"}[name]
  parts = name.split("_")
  if len(parts) != 4 or not parts[1].startswith("block") or parts[3] not in ("conv", "bn"):
    return name
  stage, block, index, kind = parts[0][4:], int(parts[1][5:]), parts[2], parts[3]
  branch = {"0": "1", "1": "2a", "2": "2b", "3": "2c"}[index]
  return f"{'res' if kind == 'conv' else 'bn'}{stage}{'abcdef'[block - 1]}_branch{branch}"


@pytest.fixture(scope="module")
def keras_reference(tmp_path_factory):
  """(legacy .h5 path, Keras model, images, Keras features [2, 2, 2, 2048]) with random weights."""
  keras = pytest.importorskip("keras")
  keras.utils.set_random_seed(0)
  model = keras.applications.ResNet50(weights=None, include_top=False,
                                      input_shape=(SIZE, SIZE, 3))
  rng = np.random.default_rng(0)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      n = layer.gamma.shape[0]
      layer.set_weights([rng.uniform(0.5, 1.0, n), rng.normal(0, 0.1, n),
                         rng.normal(0, 0.2, n), rng.uniform(0.5, 1.5, n)])
    elif isinstance(layer, keras.layers.Conv2D):
      kernel, bias = layer.get_weights()
      layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape)])
  x = _images(1)
  features = np.asarray(model(keras.applications.resnet50.preprocess_input(x.copy()),
                              training=False))
  path = write_legacy_h5(model, tmp_path_factory.mktemp("keras") / "resnet50_notop.h5")
  return path, model, x, features


@pytest.fixture(scope="module")
def torch_reference(tmp_path_factory):
  """(.pth path, .safetensors path, images, torch features NHWC [2, 2, 2, 2048])."""
  torch = pytest.importorskip("torch")
  from safetensors.torch import save_file  # pylint: disable=g-import-not-at-top
  from . import torch_resnet_reference  # pylint: disable=g-import-not-at-top

  model = torch_resnet_reference.randomize_(torch_resnet_reference.ResNet50(), seed=0)
  x = _images(2)
  mean = np.asarray(preprocessing.TORCH_MEAN_RGB, np.float32)
  std = np.asarray(preprocessing.TORCH_STD_RGB, np.float32)
  nchw = torch.from_numpy(((x / 255.0 - mean) / std).transpose(0, 3, 1, 2).copy())
  with torch.no_grad():
    features = model.features(nchw).numpy().transpose(0, 2, 3, 1)
  folder = tmp_path_factory.mktemp("torch")
  state = model.state_dict()
  torch.save(state, folder / "resnet50.pth")
  save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "resnet50.safetensors"))
  return folder / "resnet50.pth", folder / "resnet50.safetensors", x, features


def _flax_features(variables, x, variant: str, convention: str) -> np.ndarray:
  backbone = resnet.ResNetBackbone(variant=variant)
  apply = jax.jit(lambda v, x: backbone.apply(v, x, train=False))  # eager ResNet50: slow
  return np.asarray(apply(variables, preprocessing.preprocess(x, convention)))


def _assert_close(ours, reference):
  assert ours.shape == reference.shape
  assert np.abs(reference).max() > 0.1  # The comparison is not vacuous.
  np.testing.assert_allclose(ours, reference, rtol=0, atol=TOL)


@pytest.mark.slow
def test_keras_port_matches_keras(keras_reference):
  path, _, x, reference = keras_reference
  variables = resnet.load_backbone(path, variant="keras", use_cache=False)
  _assert_close(_flax_features(variables, x, "keras", "caffe"), reference)


@pytest.mark.slow
def test_written_layout_is_what_keras_reads(keras_reference):
  """Keras' legacy loader (used on the official file) restores every weight from our file."""
  import keras  # pylint: disable=g-import-not-at-top
  path, model, _, _ = keras_reference
  fresh = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
  fresh.load_weights(str(path))
  for a, b in zip(model.weights, fresh.weights, strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
  with h5py.File(path, "r") as f:
    assert len(f.attrs["layer_names"]) == len(model.layers)
    assert f.attrs["layer_names"].dtype.kind == "S" and f["conv1_pad"].attrs["weight_names"].size == 0
    assert list(f["conv1_bn"].attrs["weight_names"]) == [
        b"conv1_bn/gamma:0", b"conv1_bn/beta:0", b"conv1_bn/moving_mean:0",
        b"conv1_bn/moving_variance:0"]
    assert f["conv1_conv/conv1_conv/kernel:0"].shape == (7, 7, 3, 64)


@pytest.mark.slow
def test_keras_own_legacy_writer_and_2016_names_port_identically(keras_reference, tmp_path):
  from keras.src.legacy.saving import legacy_h5_format  # pylint: disable=g-import-not-at-top
  path, model, _, _ = keras_reference
  ours = resnet.load_backbone(path, use_cache=False)
  with h5py.File(tmp_path / "keras_writer.h5", "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, model)
  old = write_legacy_h5(model, tmp_path / "old_names.h5", rename=_old_keras_name)
  with h5py.File(old, "r") as f:
    assert "res3b_branch2a" in f and "bn5c_branch2c" in f and "res2a_branch1" in f
  flat = jax.tree.leaves_with_path(ours)
  for other in (tmp_path / "keras_writer.h5", old):
    ported = resnet.load_backbone(other, use_cache=False)
    for (key, a), b in zip(flat, jax.tree.leaves(ported), strict=True):
      np.testing.assert_array_equal(a, b, err_msg=f"{other.name} {key}")


@pytest.mark.parametrize("suffix", ["pth", "safetensors"])
@pytest.mark.slow
def test_torchvision_port_matches_torch(torch_reference, suffix):
  pth, safetensors, x, reference = torch_reference
  path = pth if suffix == "pth" else safetensors
  variables = resnet.load_backbone(path, variant="torchvision", use_cache=False)
  _assert_close(_flax_features(variables, x, "torchvision", "torch"), reference)


@pytest.mark.slow
def test_model_init_loads_backbone_and_keeps_random_head(torch_reference):
  _, safetensors, x, reference = torch_reference
  model = resnet.resnet50(num_classes=3, variant="torchvision", weights=str(safetensors))
  assert model.input_convention == "torch"
  # init is pure (random); the trainer puts the pretrained backbone in (models.builder).
  # Eager init of ResNet50 is slow; rbg keys: a threefry init compiles several times longer.
  init = jax.jit(model.init)(jax.random.key(0, impl="rbg"), x[:1])
  variables = builder.load_pretrained(model, init, builder.pretrained(model))
  np.testing.assert_array_equal(variables["params"]["classifier"]["kernel"],
                                init["params"]["classifier"]["kernel"])
  ported = resnet.load_backbone(safetensors, use_cache=False)
  np.testing.assert_array_equal(variables["params"]["backbone"]["conv_init"]["kernel"],
                                ported["params"]["conv_init"]["kernel"])
  np.testing.assert_array_equal(variables["batch_stats"]["backbone"]["stage4_block3"]["bn3"]["var"],
                                ported["batch_stats"]["stage4_block3"]["bn3"]["var"])
  # The model's own preprocessing path gives the reference features.
  _, state = jax.jit(lambda v, x: model.apply(v, x, train=False, capture_intermediates=True,
                                              mutable=["intermediates"]))(variables, x)
  features = np.asarray(state["intermediates"]["backbone"]["__call__"][0])
  _assert_close(features, reference)


@pytest.mark.slow
def test_cache_round_trip(torch_reference, tmp_path, monkeypatch):
  _, safetensors, _, _ = torch_reference
  source = shutil.copy(safetensors, tmp_path / "resnet50.safetensors")
  cache_dir = tmp_path / "cache"
  first = resnet.load_backbone(source, cache_dir=cache_dir)
  cached = list(cache_dir.glob("*.npz"))
  assert [p.name for p in cached] == ["resnet50.safetensors.microexp-torchvision.npz"]

  from microexp.models.weights import torchvision  # pylint: disable=g-import-not-at-top

  def fail(path, expected):
    raise AssertionError(f"converted {path} again instead of using the cache")

  monkeypatch.setattr(torchvision, "read_torchvision", fail)
  os.utime(source, ns=(1, 1))  # Touched: the hash still matches, the cache is used.
  again = resnet.load_backbone(source, cache_dir=cache_dir)
  for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again), strict=True):
    np.testing.assert_array_equal(a, b)

  # Changed content: the cache is stale and the source is converted again.
  monkeypatch.undo()
  from safetensors.numpy import load_file, save_file  # pylint: disable=g-import-not-at-top
  state = load_file(str(source))
  state["conv1.weight"] = state["conv1.weight"] + 1.0
  save_file(state, str(source))
  changed = resnet.load_backbone(source, cache_dir=cache_dir)
  assert any(not np.array_equal(a, b)
             for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(changed)))


# --- Bad files ------------------------------------------------------------------------------


def test_missing_file_says_where_to_download(tmp_path):
  with pytest.raises(weights.WeightFileError) as e:
    resnet.load_backbone(tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
  message = str(e.value)
  assert "not found" in message and "no network" in message
  assert "keras-applications/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
  assert "download.pytorch.org/models/resnet50" in message


def test_lfs_pointer(tmp_path):
  path = tmp_path / "resnet50_notop.h5"
  path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab12\nsize 94765736\n")
  with pytest.raises(weights.WeightFileError, match="Git LFS pointer") as e:
    resnet.load_backbone(path)
  assert str(path) in str(e.value)


@pytest.mark.parametrize("which", ["h5", "safetensors", "pth"])
@pytest.mark.slow
def test_truncated_file(keras_reference, torch_reference, tmp_path, which):
  source = {"h5": keras_reference[0], "pth": torch_reference[0],
            "safetensors": torch_reference[1]}[which]
  path = tmp_path / f"truncated.{which}"
  path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
  with pytest.raises(weights.WeightFileError, match="truncated or corrupt") as e:
    resnet.load_backbone(path, use_cache=False)
  assert str(path) in str(e.value)


@pytest.mark.slow
def test_keras_file_of_another_architecture_lists_every_layer(keras_reference, tmp_path):
  path = shutil.copy(keras_reference[0], tmp_path / "other.h5")
  with h5py.File(path, "r+") as f:
    names = [n for n in f.attrs["layer_names"] if n not in (b"conv5_block3_3_conv", b"conv4_block2_2_bn")]
    f.create_group("dense_7").attrs["weight_names"] = [b"dense_7/kernel:0"]
    f["dense_7"].create_dataset("dense_7/kernel:0", data=np.zeros((4, 2)))
    f.attrs["layer_names"] = names + [b"dense_7"]
  with pytest.raises(weights.WeightFileError, match="2 missing, 1 unmatched") as e:
    resnet.load_backbone(path, use_cache=False)
  message = str(e.value)
  assert "missing layer conv5_block3_3_conv" in message
  assert "missing layer conv4_block2_2_bn" in message
  assert "unmatched layer dense_7" in message


@pytest.mark.slow
def test_keras_shape_mismatch_names_the_tensor(keras_reference, tmp_path):
  path = shutil.copy(keras_reference[0], tmp_path / "shape.h5")
  with h5py.File(path, "r+") as f:
    del f["conv3_block1_2_conv/conv3_block1_2_conv/kernel:0"]
    f["conv3_block1_2_conv"].create_dataset("conv3_block1_2_conv/kernel:0",
                                            data=np.zeros((3, 3, 64, 128), np.float32))
  with pytest.raises(weights.WeightFileError, match="shapes do not match") as e:
    resnet.load_backbone(path, use_cache=False)
  assert ("conv3_block1_2_conv/conv3_block1_2_conv/kernel:0 (-> params/stage2_block1/conv2/kernel):"
          " expected shape (3, 3, 128, 128), found (3, 3, 64, 128)") in str(e.value)


@pytest.mark.slow
def test_torch_state_dict_of_another_architecture(torch_reference, tmp_path):
  from safetensors.numpy import load_file, save_file  # pylint: disable=g-import-not-at-top
  state = load_file(str(torch_reference[1]))
  state = {k: v for k, v in state.items() if not k.startswith("layer4.2.")}
  state["layer4.3.conv1.weight"] = np.zeros((512, 2048, 1, 1), np.float32)
  path = tmp_path / "resnet_other.safetensors"
  save_file(state, str(path))
  with pytest.raises(weights.WeightFileError, match=r"15 missing, 1 unmatched") as e:
    resnet.load_backbone(path, use_cache=False)
  message = str(e.value)
  assert "missing key layer4.2.bn3.running_var" in message
  assert "unmatched key layer4.3.conv1.weight (512, 2048, 1, 1)" in message


@pytest.mark.slow
def test_torch_shape_mismatch_and_variant_mismatch(torch_reference, tmp_path):
  from safetensors.numpy import load_file, save_file  # pylint: disable=g-import-not-at-top
  state = load_file(str(torch_reference[1]))
  state["layer3.0.conv2.weight"] = np.zeros((256, 128, 3, 3), np.float32)
  path = tmp_path / "shape.safetensors"
  save_file(state, str(path))
  with pytest.raises(weights.WeightFileError, match="expected shape") as e:
    resnet.load_backbone(path, use_cache=False)
  assert "layer3.0.conv2.weight (-> params/stage3_block1/conv2/kernel)" in str(e.value)
  with pytest.raises(weights.WeightFileError, match="variant='keras'"):
    resnet.load_backbone(torch_reference[1], variant="keras")


def test_keras3_weights_layout_is_refused(tmp_path):
  path = tmp_path / "model.weights.h5"
  with h5py.File(path, "w") as f:
    f.create_group("layers").create_group("conv2d").create_group("vars")
  with pytest.raises(weights.WeightFileError, match="Keras 3"):
    keras_h5.read_keras_h5(path, resnet.backbone_shapes("keras"))


@pytest.mark.slow
def test_preprocess_conventions_match_keras_and_torchvision():
  keras = pytest.importorskip("keras")
  x = _images(3)
  np.testing.assert_allclose(
      np.asarray(preprocessing.preprocess(x, "caffe")),
      keras.applications.resnet50.preprocess_input(x.copy()), atol=1e-4)
  torch_style = (x / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
  np.testing.assert_allclose(np.asarray(preprocessing.preprocess(x, "torch")), torch_style,
                             atol=1e-5)
  with pytest.raises(ValueError, match="Unknown input convention"):
    preprocessing.preprocess(x, "tf")


def test_flow_to_image_ranges():
  flow = np.random.default_rng(0).normal(0, 2, (2, 8, 8, 3)).astype(np.float32)
  flow[..., 2] = np.abs(flow[..., 2])
  image = np.asarray(preprocessing.flow_to_image(flow))
  np.testing.assert_allclose(image.min(axis=(1, 2)), 0, atol=1e-4)
  np.testing.assert_allclose(image.max(axis=(1, 2)), 255, atol=1e-3)
  fixed = np.asarray(preprocessing.flow_to_image(np.zeros((1, 2, 2, 3)), bound=4.0))
  np.testing.assert_allclose(fixed[0, 0, 0], [127.5, 127.5, 0.0])
  fixed = np.asarray(preprocessing.flow_to_image(np.full((1, 2, 2, 3), 2.0), bound=4.0))
  np.testing.assert_allclose(fixed[0, 0, 0], [191.25, 191.25, 127.5])
  assert jnp.asarray(fixed).dtype == jnp.float32
