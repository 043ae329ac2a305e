"""Small networks: shapes and dtypes, padding invariance, fold-stacked vmap, learning."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from microexp import models

NUM_CLASSES = 3

# Tiny versions of every small network and an input of the kind it reads.
TINY = {
    "ststnet": (dict(), (4, 28, 28, 3)),
    "offapexnet": (dict(dense_features=(32, 32)), (4, 28, 28, 2)),
    "flow_cnn": (dict(features=(4, 8), dense_features=8), (4, 48, 48, 3)),
    "cnn_lstm": (dict(frame_features=(4, 8), lstm_features=(8,), dense_features=(8,)),
                 (4, 4, 16, 16, 1)),
    "convlstm": (dict(stem_features=(4,), lstm_features=(4, 4), dense_features=(8,)),
                 (4, 4, 16, 16, 1)),
}
SEQUENCE_MODELS = ("cnn_lstm", "convlstm")
# Cheaper still, where a test is about the recurrence alone.
SMALLER = {"cnn_lstm": dict(frame_features=(4,)), "convlstm": dict(stem_features=())}


def _model(name, dtype=jnp.float32, **overrides):
  kwargs, _ = TINY[name]
  return models.get(name, num_classes=NUM_CLASSES, dtype=dtype, **{**kwargs, **overrides})


def _normal(seed, shape, scale=1.0):
  return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _key(seed):
  # rbg keys: XLA CPU compiles threefry random bits slowly (seconds per shape on a 2-core machine).
  return jax.random.key(seed, impl="rbg")


def _apply(model, **kwargs):
  """`model.apply(variables, x, mask=mask, **kwargs)` compiled (op by op, a recurrent model
  dispatches hundreds of small programs)."""
  return jax.jit(lambda variables, x, mask: model.apply(variables, x, mask=mask, **kwargs))


def _inputs(name, key=0):
  shape = TINY[name][1]
  x = _normal(key, shape)
  mask = jnp.ones(shape[:2], bool) if name in SEQUENCE_MODELS else None
  return x, mask


def _init(model, x, mask, key=0):
  """Variables with the structure, shapes and dtypes of `model.init`, drawn with numpy.

  Running the initialisers compiles one truncated-normal sampler per parameter shape (~3 s each
  on the test machine); tracing `init` for its shapes is free, and fan-in-scaled normals serve the
  tests equally well.
  """
  shapes = jax.eval_shape(
      lambda: model.init({"params": jax.random.key(0)}, x, train=False, mask=mask))
  rng = np.random.default_rng(key)

  def draw(path, leaf):
    name, shape = path[-1].key, leaf.shape
    if name == "var":
      value = rng.uniform(0.5, 1.5, shape)
    elif name == "scale":
      value = 1 + 0.1 * rng.standard_normal(shape)
    elif name in ("bias", "mean"):
      value = 0.1 * rng.standard_normal(shape)
    else:  # kernels [..., fan_in, fan_out]
      value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))
    return jnp.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("name", sorted(TINY))
def test_logits_shape_and_dtypes(name, dtype):
  model = _model(name, dtype)
  x, mask = _inputs(name)
  variables = jax.eval_shape(functools.partial(_init, model), x, mask)
  assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  logits, updates = jax.eval_shape(
      lambda v: model.apply(v, x, train=True, mask=mask, rngs={"dropout": _key(1)},
                            mutable=["batch_stats"]), variables)
  assert logits.shape == (x.shape[0], NUM_CLASSES)
  assert logits.dtype == jnp.float32
  assert set(updates) == ({"batch_stats"} if "batch_stats" in variables else set())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ststnet", "cnn_lstm"])
def test_bfloat16_forward_is_finite_and_close_to_float32(name):
  x, mask = _inputs(name)
  variables = _init(_model(name, **SMALLER.get(name, {})), x, mask)
  f32 = _apply(_model(name, **SMALLER.get(name, {})), train=False)(variables, x, mask)
  bf16 = _apply(_model(name, jnp.bfloat16, **SMALLER.get(name, {})), train=False)(variables, x,
                                                                                  mask)
  assert np.all(np.isfinite(bf16))
  np.testing.assert_allclose(bf16, f32, atol=0.1, rtol=0.1)


def _pad_with_garbage(x, mask, extra):
  """Appends `extra` garbage frames (mask False), NaN and huge values included."""
  garbage = _normal(7, (x.shape[0], extra) + x.shape[2:], scale=1e6)
  garbage = garbage.at[:, 0, 0, 0, 0].set(jnp.nan)
  return (jnp.concatenate([x, garbage], axis=1),
          jnp.concatenate([mask, jnp.zeros((x.shape[0], extra), bool)], axis=1))


@pytest.mark.slow
@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_padding_never_changes_output(name):
  model = _model(name)
  x, mask = _inputs(name)
  # Variable length inside the batch: clip 0 has 2 real frames, clip 1 has 3, the others 4.
  mask = mask.at[0, 2:].set(False).at[1, 3:].set(False)
  x = jnp.where(mask[..., None, None, None], x, 3.0)
  padded_x, padded_mask = _pad_with_garbage(x, mask, extra=2)
  variables = _init(model, x, mask)

  for train in (True, False):  # train: dropout on, BatchNorm batch statistics
    apply = functools.partial(_apply(model, train=train, rngs={"dropout": _key(3)},
                                     mutable=["batch_stats"]), variables)
    ref, out = apply(x, mask), apply(padded_x, padded_mask)
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-5), out, ref)
    assert np.all(np.isfinite(out[0]))
  # Without any padding in the batch, the short clip gets the logits it gets in the padded batch.
  alone, _ = apply(x[:1, :2], mask[:1, :2])  # eval mode
  np.testing.assert_allclose(alone, out[0][:1], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_scan_and_python_loop_agree(name):
  x, mask = _inputs(name)
  mask = mask.at[0, 3:].set(False)
  loop = _model(name, time_loop="loop", **SMALLER[name])
  variables = _init(loop, x, mask)
  scan = _model(name, time_loop="scan", unroll=2, **SMALLER[name])
  assert (jax.tree.structure(_init(scan, x, mask)) == jax.tree.structure(variables))
  np.testing.assert_allclose(_apply(scan, train=False)(variables, x, mask),
                             _apply(loop, train=False)(variables, x, mask), rtol=1e-5, atol=1e-6)


# STSTNet in the fast suite; the others compile for seconds under vmap: slow.
@pytest.mark.parametrize("name", [n if n == "ststnet" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in sorted(TINY)])
def test_jit_vmap_over_stacked_folds(name):
  model = _model(name)
  x, mask = _inputs(name)
  folds = [_init(model, x, mask, key=k) for k in (0, 1)]

  @jax.jit
  @jax.vmap
  def forward(variables, x):
    return model.apply(variables, x, train=True, mask=mask, rngs={"dropout": _key(0)},
                       mutable=["batch_stats"])

  def stack(trees):
    return jax.tree.map(lambda *v: jnp.stack(v), *trees)

  xs = [x, 2 * x]
  logits, updates = forward(stack(folds), stack(xs))
  assert logits.shape == (2, x.shape[0], NUM_CLASSES)
  assert jax.tree.structure(updates) == jax.tree.structure(
      stack([{k: v for k, v in f.items() if k != "params"} for f in folds]))
  assert not np.allclose(logits[0], logits[1])
  # Each fold sees only its own parameters, data and batch statistics: swapping the folds swaps
  # every output.
  swapped_logits, swapped_updates = forward(stack(folds[::-1]), stack(xs[::-1]))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a[::-1], b, rtol=1e-5, atol=1e-6),
               (logits, updates), (swapped_logits, swapped_updates))


def _fit(model, x, mask, labels, steps, learning_rate):
  """Trains on one fixed batch; returns the losses and the final train-mode predictions."""
  variables = _init(model, x, mask)
  params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
  tx = optax.adam(learning_rate)
  opt_state = tx.init(params)

  def loss_fn(params, state, key):
    logits, new_state = model.apply({"params": params, **state}, x, train=True, mask=mask,
                                    rngs={"dropout": key}, mutable=list(state))
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, (new_state, logits)

  @jax.jit
  def step(params, state, opt_state, key):
    (loss, (state, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, key)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), state, opt_state, loss, logits

  losses = []
  for i in range(steps):
    params, state, opt_state, loss, logits = step(params, state, opt_state, _key(i))
    losses.append(float(loss))
  return np.array(losses), np.asarray(jnp.argmax(logits, -1))


@pytest.mark.slow
@pytest.mark.parametrize("name, overrides, lr", [
    ("ststnet", {}, 3e-2),
    ("cnn_lstm", dict(dropout=0.0), 1e-2),
])
def test_tiny_model_memorises_a_handful_of_examples(name, overrides, lr):
  n = 12
  shape = (n,) + TINY[name][1][1:]
  x = _normal(0, shape)
  mask = None
  if name in SEQUENCE_MODELS:
    lengths = jnp.array([1, 2, 3, 4] * 3)
    mask = jnp.arange(shape[1])[None] < lengths[:, None]
  labels = jnp.arange(n) % NUM_CLASSES  # arbitrary labels: only memorising can fit them
  model = _model(name, **SMALLER.get(name, {}), **overrides)
  losses, preds = _fit(model, x, mask, labels, steps=80, learning_rate=lr)
  assert losses[0] > 0.8  # about log(3) at the start
  assert losses[-5:].mean() < 0.25 * losses[0], losses
  assert np.mean(preds == np.asarray(labels)) >= 0.9


@pytest.mark.slow
def test_cnn_lstm_resnet50_frames():
  model = models.get("cnn_lstm", num_classes=NUM_CLASSES, frame_cnn="resnet50",
                     backbone_kwargs=dict(width=4, stage_sizes=(1, 1)), lstm_features=(8,),
                     dense_features=())
  x = _normal(0, (2, 3, 32, 32, 3))
  mask = jnp.array([[True, True, False], [True, True, True]])
  variables = _init(model, x, mask)
  assert "backbone" in variables["params"]["frame_cnn"]
  apply = _apply(model, train=False)
  logits = apply(variables, x, mask)
  assert logits.shape == (2, NUM_CLASSES)
  padded = apply(variables, x.at[0, 2].set(1e3), mask)
  np.testing.assert_allclose(padded, logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, x_shape, kwargs, match", [
    ("ststnet", (2, 5, 28, 28, 3), {}, "expects images"),
    ("offapexnet", (2, 28, 28, 1), {}, "at least 2 channels"),
    ("cnn_lstm", (2, 28, 28, 3), {}, r"expects frames \[B, T, H, W, C\]"),
    ("convlstm", (2, 3, 8, 8, 1), dict(mask=np.ones((2, 4), bool)), "mask must be"),
    ("cnn_lstm", (2, 3, 8, 8, 1), dict(frame_cnn="vgg"), "frame_cnn must be"),
    ("convlstm", (2, 3, 8, 8, 1), dict(time_loop="while"), "time_loop must be"),
    ("cnn_lstm", (2, 3, 8, 8, 1), dict(lstm_features=()), "at least one recurrent layer"),
])
def test_bad_inputs_raise_clear_errors(name, x_shape, kwargs, match):
  kwargs = dict(kwargs)
  mask = kwargs.pop("mask", None)
  model = models.get(name, num_classes=NUM_CLASSES, **kwargs)
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x_shape), train=False,
                                      mask=mask))
