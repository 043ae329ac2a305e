"""ResNet50 model: shapes and dtypes of both variants, BN modes, freezing, the head, the registry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import microexp.models
from microexp.models import resnet
from microexp.train import state as state_lib

TINY = dict(stage_sizes=(1, 1, 1, 1), width=8)  # Same structure as ResNet50, 8x narrower, 1 block.


def _init(model, x):
  # 'rbg' keys: jitted init with threefry keys compiles ~3x slower on this CPU.
  return jax.jit(model.init)(jax.random.key(0, impl="rbg"), x)


@pytest.fixture(scope="module")
def tiny32():
  """(ResNet50(TINY) variables, inputs [4, 32, 32, 3]); shared because init compiles slowly."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 32, 32, 3)), jnp.float32)
  return _init(resnet.resnet50(num_classes=3, **TINY), x), x


def _train_apply(model):
  """Jitted training forward (eager dispatch would compile every op separately: slow)."""
  return jax.jit(lambda v, x, key: model.apply(v, x, train=True, rngs={"dropout": key},
                                               mutable=["batch_stats"]))


def _eval_apply(model):
  return jax.jit(lambda v, x: model.apply(v, x, train=False))


@pytest.mark.parametrize("variant", resnet.VARIANTS)
@pytest.mark.slow
def test_shapes_and_dtypes(variant):
  x = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)), jnp.float32)
  # Parameters are float32 whatever the compute dtype: one init serves both dtypes.
  variables = _init(resnet.resnet50(num_classes=5, variant=variant, **TINY), x)
  for dtype in (jnp.float32, jnp.bfloat16):
    _check_shapes_and_dtypes(resnet.resnet50(num_classes=5, dtype=dtype, variant=variant, **TINY),
                             variables, x)


def _check_shapes_and_dtypes(model, variables, x):
  variant, dtype = model.variant, model.dtype
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(variables))
  block = variables["params"]["backbone"]["stage2_block1"]
  assert ("bias" in block["conv1"]) == (variant == "keras")
  assert block["conv1"]["kernel"].shape == (1, 1, 32, 16)
  assert block["proj_conv"]["kernel"].shape == (1, 1, 32, 64)

  logits, state = _train_apply(model)(variables, x, jax.random.key(1))
  assert logits.shape == (2, 5) and logits.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(logits)))
  # Training updates the running statistics; evaluation leaves them alone.
  before = variables["batch_stats"]["backbone"]["bn_init"]["mean"]
  assert not np.allclose(state["batch_stats"]["backbone"]["bn_init"]["mean"], before)
  # Shapes and dtypes alone: traced, not compiled (a ResNet program compiles for seconds).
  if dtype == jnp.float32:
    eval_logits = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    assert eval_logits.shape == (2, 5) and eval_logits.dtype == jnp.float32
    return
  features = jax.eval_shape(resnet.ResNetBackbone(variant=variant, dtype=dtype, **TINY).apply,
                            {"params": variables["params"]["backbone"],
                             "batch_stats": variables["batch_stats"]["backbone"]}, x)
  assert features.shape == (2, 2, 2, 256) and features.dtype == dtype


@pytest.mark.parametrize("variant,strided", [("keras", "conv1"), ("torchvision", "conv2")])
def test_variant_puts_the_stride_where_its_checkpoint_does(variant, strided):
  block = resnet.Bottleneck(filters=4, strides=2, project=True, variant=variant)
  x = jnp.ones((1, 8, 8, 16))
  variables = jax.jit(lambda k: block.init(k, x, False))(jax.random.key(0, impl="rbg"))
  _, state = jax.jit(lambda v: block.apply(v, x, False, capture_intermediates=True,
                                           mutable=["intermediates"]))(variables)
  shapes = {name: v["__call__"][0].shape for name, v in state["intermediates"].items()
            if name.startswith("conv")}
  assert shapes[strided] == (1, 4, 4, 4)
  assert shapes["conv3"] == (1, 4, 4, 16)


@pytest.mark.slow
def test_head_guards_small_feature_maps(tiny32):
  """32x32 inputs leave a 1x1 final map: the 2x2 max-pool must not pool it away."""
  variables, x = tiny32
  model = resnet.resnet50(num_classes=3, **TINY)
  assert _eval_apply(model)(variables, x).shape == (4, 3)
  assert variables["params"]["classifier"]["kernel"].shape == (64, 3)
  assert variables["params"]["fc1"]["kernel"].shape == (256, 128)


@pytest.mark.slow
def test_dropout_uses_its_key(tiny32):
  variables, x = tiny32
  model = resnet.resnet50(num_classes=3, dropout_rate=0.5, **TINY)
  train, evaluate = _train_apply(model), _eval_apply(model)
  assert not np.allclose(train(variables, x, jax.random.key(0))[0],
                         train(variables, x, jax.random.key(1))[0])
  np.testing.assert_array_equal(evaluate(variables, x), evaluate(variables, x))


@pytest.mark.slow
def test_frozen_backbone_gets_no_gradient_and_keeps_its_statistics(tiny32):
  variables, x = tiny32
  model = resnet.resnet50(num_classes=3, freeze_backbone=True, **TINY)
  labels = jnp.array([0, 1, 2, 0])

  def loss_fn(params):
    logits, state = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                                train=True, rngs={"dropout": jax.random.key(0)},
                                mutable=["batch_stats"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), state

  grads, state = jax.jit(jax.grad(loss_fn, has_aux=True))(variables["params"])
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads["backbone"]))
  assert float(jnp.abs(grads["fc1"]["kernel"]).max()) > 0
  for a, b in zip(jax.tree.leaves(state["batch_stats"]), jax.tree.leaves(variables["batch_stats"])):
    np.testing.assert_array_equal(a, b)

  # With config.train.freeze=['backbone'] the engine's optimizer (state.create_optimizer)
  # leaves the frozen backbone untouched, AdamW's weight decay included.
  mask = state_lib.trainable_mask(variables["params"], ("backbone",))
  assert not any(jax.tree.leaves(mask["backbone"])) and all(jax.tree.leaves(mask["fc2"]))
  tx = state_lib.create_optimizer(state_lib.OptimizerSpec(
      name="adamw", learning_rate=1e-2, weight_decay=0.1, freeze=("backbone",)), 10)
  step = jax.jit(lambda g, p: optax.apply_updates(p, tx.update(g, tx.init(p), p)[0]))
  params = step(grads, variables["params"])
  for a, b in zip(jax.tree.leaves(params["backbone"]),
                  jax.tree.leaves(variables["params"]["backbone"])):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(params["fc1"]["kernel"], variables["params"]["fc1"]["kernel"])


def test_registry_and_unknown_variant():
  model = microexp.models.get("resnet50", num_classes=4, dtype=jnp.bfloat16, **TINY)
  assert isinstance(model, resnet.ResNet50) and model.dtype == jnp.bfloat16
  assert model.input_convention == "none"
  assert resnet.resnet50(num_classes=2, weights="/x.h5").input_convention == "caffe"
  with pytest.raises(ValueError, match="Unknown ResNet variant"):
    resnet.resnet50(num_classes=2, variant="v2", **TINY).init(jax.random.key(0), jnp.ones((1, 32, 32, 3)))


def test_imagenet_weights_need_the_full_network(tmp_path):
  model = resnet.resnet50(num_classes=2, weights=str(tmp_path / "w.h5"), **TINY)
  with pytest.raises(ValueError, match="need the full ResNet50"):
    model.pretrained()


def test_init_is_pure_even_with_a_weights_path(tmp_path):
  """init never reads the weights file (it does not even exist here): the trainer loads it."""
  model = resnet.resnet50(num_classes=2, weights=str(tmp_path / "absent.h5"), **TINY)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 32, 32, 3)))
  assert "backbone" in shapes["params"]
  with pytest.raises(ValueError, match="weight file not found"):
    resnet.resnet50(num_classes=2, weights=str(tmp_path / "absent.h5")).pretrained()
