"""The real-size `:thesis` configs build on a synthetic CASME II tree without training: the
loader's shapes (224x224, 3 channels), M1's last-frame padding to the longest clip found (computed
from the data), the class subsets, the 20/6 split, and each model's logits (jax.eval_shape)."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microexp import models
from microexp.loaders import casme2 as loading
from microexp import loaders as registry
from microexp.models import builder
from microexp.train import inputs
from microexp.train import folds

THESIS = ["cnn_lstm_padded", "cnn_lstm_apex", "cnn_lstm_ragged", "cnn_lstm_flow", "flow_cnn",
          "resnet_split", "resnet_loso"]
# 26 subjects (the 20/6 split needs sub21..sub26), one clip each, of the three classes every
# thesis class set holds (so no subject drops out): real sizes, little memory.
TREE = dict(num_subjects=26, clips_per_subject=1, image_size=(85, 70), num_frames=(8, 12), seed=3,
            quirks=False, emotions=("happiness", "surprise", "repression"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("thesis_data")


def _real_config_on_synthetic_tree(name, data_dir):
  config = importlib.import_module(f"configs.{name}").get_config("thesis")
  config.dataset.synthetic = True
  config.dataset.synthetic_kwargs = dict(TREE)
  config.dataset.data_dir = str(data_dir)
  return config


@pytest.mark.slow
@pytest.mark.parametrize("name", THESIS)
def test_real_size_thesis_config_builds(name, data_dir):
  config = _real_config_on_synthetic_tree(name, data_dir)
  arrays = registry.load(config.dataset)
  x = arrays["inputs"]
  assert x.shape[-3:] == (224, 224, 3), x.shape  # 224x224x3 frames or flow images
  if config.dataset.representation != "apex_flow":
    lengths = [int(n) for n in _num_frames(config, data_dir)]
    if name in ("cnn_lstm_padded", "cnn_lstm_ragged", "cnn_lstm_flow"):
      assert x.shape[1] == max(lengths)  # the longest clip found, not a fixed number
    if name == "cnn_lstm_padded":
      assert arrays["mask"].all()  # padding fed as frames
      for clip, n in zip(x, lengths):  # padded by repeating the clip's last frame
        np.testing.assert_array_equal(clip[n:], np.broadcast_to(clip[n - 1], clip[n:].shape))
    elif name == "cnn_lstm_apex":
      assert x.shape[1] == 6
    else:
      np.testing.assert_array_equal(arrays["mask"].sum(1), lengths)
  data, subset = inputs.prepare_data(arrays, config.dataset.classes)
  assert subset.class_names == {"3": ("happiness", "surprise", "repression")}.get(
      config.dataset.classes, subset.class_names)
  assert set(np.unique(data["labels"])) <= set(range(subset.num_classes))
  fold_list = folds.make_folds(np.unique(data["subject"]), config.train, seed=0)
  if config.train.protocol == "split":
    assert set(fold_list[0].test_subjects) == {f"sub{i}" for i in range(21, 27)}
    assert len(set(data["subject"]) - set(fold_list[0].test_subjects)) == 20
  kwargs = builder.hashable(config.model.kwargs.to_dict())
  kwargs.pop("weights", None)  # an initialiser only; the real file is not shipped
  model = models.get(config.model.name, num_classes=subset.num_classes, **kwargs)
  sample = jax.ShapeDtypeStruct((2,) + x.shape[1:], jnp.float32)
  mask = jax.ShapeDtypeStruct((2, x.shape[1]), jnp.bool_) if x.ndim == 5 else None
  rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
  variables = jax.eval_shape(lambda x, m: model.init(rngs, x, train=False, mask=m), sample, mask)
  logits = jax.eval_shape(lambda v, x, m: model.apply(v, x, train=False, mask=m), variables,
                          sample, mask)
  assert logits.shape == (2, subset.num_classes)


def _num_frames(config, data_dir):
  """Each clip's frame count (onset..offset) as the TFDS dataset records it, in loader order."""
  from tfds_casme2.casme2 import casme2_dataset_builder as cb  # pylint: disable=g-import-not-at-top

  ds = config.dataset
  root = loading.synthetic_root(data_dir, dict(ds.synthetic_kwargs))
  builder_config = cb.make_config(
      ds.representation, image_size=ds.image_size, flow_method=ds.flow_method,
      third_channel=ds.third_channel,
      grayscale=ds.sequence.grayscale if ds.representation == "sequences" else None)
  builder = loading.build_casme2(root, data_dir / "synthetic" / root.name.split("-")[-1],
                                 builder_config)
  return [e["num_frames"] for e in loading.read_examples(builder)]


def test_last_frame_padding_to_the_longest_clip():
  seqs = [np.arange(1, t + 1, dtype=np.float32)[:, None, None, None] for t in (3, 5)]
  x, mask = loading.pad_sequences(seqs, [1, 2], mode="pad", length=0, padding="last_frame")
  assert x.shape[1] == 5  # the longest clip found
  np.testing.assert_array_equal(x[0, :, 0, 0, 0], [1, 2, 3, 3, 3])  # the last frame repeated
  np.testing.assert_array_equal(mask[0], [True, True, True, False, False])
  np.testing.assert_array_equal(x[1, :, 0, 0, 0], [1, 2, 3, 4, 5])
