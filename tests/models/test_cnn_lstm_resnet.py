"""CNN-LSTM with a ResNet50 frame CNN: its BatchNorm never sees padded frames, and ResNet50
backbone weights map into `frame_cnn/backbone` (the host-side `load` after a pure `init`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microexp import models
from microexp.models import builder
from microexp.models import cnn_lstm
from microexp.models import resnet

TINY = dict(variant="torchvision", stage_sizes=(1, 1, 1, 1), width=4)


def _model(**backbone):
  return models.get("cnn_lstm", num_classes=3, frame_cnn="resnet50", backbone_kwargs=backbone,
                    lstm_features=(4,), dense_features=(), dropout=0.0)


def _train_apply(model):
  """Jitted (op by op, a ResNet per frame inside the LSTM loop dispatches thousands of small ops);
  one function per model, so that a call with shapes seen before reuses its executable."""
  return jax.jit(lambda v, x, m: model.apply(v, x, train=True, mask=m, mutable=["batch_stats"]))


@pytest.mark.slow
def test_batch_norm_never_sees_padded_frames():
  model = _model(**TINY)
  rng = np.random.default_rng(0)
  real = rng.uniform(size=(1, 2, 32, 32, 3)).astype(np.float32)
  garbage = rng.uniform(-50, 50, size=(1, 3, 32, 32, 3)).astype(np.float32)
  padded = np.concatenate([real, garbage], axis=1)  # 2 real frames, 3 padded
  mask = np.array([[True, True, False, False, False]])
  variables = jax.jit(lambda x, m: model.init(jax.random.key(0, impl="rbg"), x, train=False,
                                              mask=m))(
      jnp.asarray(padded), mask)
  train_apply = _train_apply(model)
  logits_padded, new_padded = train_apply(variables, padded, mask)
  logits_real, new_real = train_apply(variables, real, np.ones((1, 2), bool))
  # The same statistics and logits as the clip without its padding.
  # (float32 rounding of masked vs plain means over 2 frames: ~3e-5)
  np.testing.assert_allclose(logits_padded, logits_real, rtol=1e-3, atol=2e-4)
  gap = lambda a, b: max(float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(a),
                                                                          jax.tree.leaves(b)))
  assert gap(new_padded, new_real) < 1e-3
  # Fed as frames (mask all True), the padding moves the statistics far more.
  _, new_unmasked = train_apply(variables, padded, np.ones((1, 5), bool))
  assert gap(new_unmasked, new_real) > 0.1


def _concrete(tree, rng):
  return jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype), tree)


@pytest.mark.slow  # traces the full ResNet50 twice: ~2 s
def test_backbone_weights_map_into_frame_cnn():
  model = _model(variant="keras")  # the full ResNet50
  x = jax.ShapeDtypeStruct((1, 2, 64, 64, 3), jnp.float32)
  m = jax.ShapeDtypeStruct((1, 2), jnp.bool_)
  rng = np.random.default_rng(0)
  variables = _concrete(jax.eval_shape(lambda x, m: model.init(jax.random.PRNGKey(0), x,
                                                               train=False, mask=m), x, m), rng)
  backbone = _concrete(jax.eval_shape(
      lambda x: resnet.ResNetBackbone(variant="keras").init(jax.random.PRNGKey(1), x),
      jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)), rng)
  mapped = cnn_lstm.map_backbone(variables, backbone)
  for collection in ("params", "batch_stats"):
    got = mapped[collection]["frame_cnn"]["backbone"]
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(backbone[collection])):
      np.testing.assert_array_equal(a, b)
  for a, b in zip(jax.tree.leaves(mapped["params"]["lstm0"]),
                  jax.tree.leaves(variables["params"]["lstm0"])):
    np.testing.assert_array_equal(a, b)  # the LSTM and head stay as initialised


def _tiny_variables(model, rng, **backbone):
  """Random concrete variables of the tiny CNN-LSTM and of a ResNet backbone (shapes from
  eval_shape: nothing is run op by op)."""
  x = jax.ShapeDtypeStruct((1, 2, 32, 32, 3), jnp.float32)
  m = jax.ShapeDtypeStruct((1, 2), jnp.bool_)
  variables = _concrete(jax.eval_shape(lambda x, m: model.init(jax.random.PRNGKey(0), x,
                                                               train=False, mask=m), x, m), rng)
  other = _concrete(jax.eval_shape(
      lambda x: resnet.ResNetBackbone(**dict(TINY, **backbone)).init(jax.random.PRNGKey(1), x),
      jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)), rng)
  return variables, other


def test_backbone_of_another_size_is_refused_listing_the_leaves():
  variables, other = _tiny_variables(_model(**TINY), np.random.default_rng(0), width=8)
  with pytest.raises(ValueError, match="frame_cnn/backbone/conv_init/kernel"):
    cnn_lstm.map_backbone(variables, other)


def test_load_names_a_missing_file(tmp_path):
  with pytest.raises(Exception, match="missing.h5"):
    cnn_lstm.load({}, tmp_path / "missing.h5")


def test_engine_reads_the_frame_cnn_weights_through_the_builder(tmp_path):
  """`kwargs.weights` follows the ResNet50 protocol: `pretrained()` on the host, `load` pure."""
  assert builder.pretrained(_model(**TINY)) is None  # no file: from scratch
  missing = models.get("cnn_lstm", num_classes=3, frame_cnn="resnet50", backbone_kwargs=TINY,
                       weights=str(tmp_path / "missing.h5"))
  with pytest.raises(Exception, match="missing.h5"):
    builder.pretrained(missing)
  model = _model(**TINY)
  variables, backbone = _tiny_variables(model, np.random.default_rng(1))
  loaded = builder.load_pretrained(model, variables, backbone)
  jax.tree.map(np.testing.assert_array_equal, loaded, cnn_lstm.map_backbone(variables, backbone))
