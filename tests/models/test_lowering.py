"""Lowered convolutions and pools equal flax's: outputs, gradients, parameter trees, every model."""

from __future__ import annotations

import functools

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microexp import models
from microexp.models import lowering

# Whole networks: the float32 rounding of a summation order compounds through BatchNorm and
# LayerNorm (each layer alone holds 1e-5).
MODEL_RTOL = 1e-4
FOLDS = 3


def _normal(rng, shape):
  return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def _conv_cases(n, seed=0):
  """A seeded sweep of conv layers: sizes, kernels, strides, paddings, dilations, bias."""
  rng = np.random.default_rng(seed)
  cases = []
  while len(cases) < n:
    k = tuple(int(v) for v in rng.choice([1, 2, 3, 5], 2))
    stride = tuple(int(v) for v in rng.choice([1, 2, 3], 2))
    dilation = (1, 1) if rng.random() < 0.6 else tuple(int(v) for v in rng.choice([1, 2], 2))
    padding = ["SAME", "VALID", tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3)))
                                      for _ in range(2))][int(rng.integers(3))]
    size = tuple(int(v) for v in rng.integers(5, 13, 2))
    reach = [(kk - 1) * d + 1 for kk, d in zip(k, dilation)]
    if padding == "VALID" and any(s < r for s, r in zip(size, reach)):
      continue
    cases.append(dict(size=size, cin=int(rng.integers(1, 6)), features=int(rng.integers(1, 9)),
                      kernel_size=k, strides=stride, padding=padding, kernel_dilation=dilation,
                      use_bias=bool(rng.random() < 0.7)))
  return cases


def _value_and_grads(module, params, x):
  """Output and the gradients wrt params and input of a random projection of the output."""
  y = module.apply({"params": params}, x)
  w = jnp.cos(jnp.arange(y.size, dtype=jnp.float32).reshape(y.shape))
  grads = jax.grad(lambda p, x: jnp.sum(w * module.apply({"params": p}, x)), argnums=(0, 1))(
      params, x)
  return y, grads


def _assert_trees_close(a, b, rtol=1e-5, atol=1e-5):
  """Leaves equal to rtol, and to atol relative to the leaf's largest magnitude (at least 1)."""
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(lambda u, v: np.testing.assert_allclose(
      u, v, rtol=rtol, atol=atol * max(1.0, float(np.max(np.abs(v), initial=0.0)))), a, b)


def _random_params(shapes, rng):
  return jax.tree.map(lambda leaf: _normal(rng, leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1])),
                      shapes)


def _both_ways(fn):
  """fn(params, x) on one fold and vmapped over stacked folds, in one compiled function."""
  return jax.jit(lambda params, x: (fn(jax.tree.map(lambda v: v[0], params), x[0]),
                                    jax.vmap(fn)(params, x)))


def _fast_first(cases, n):
  """`cases` with all but the first `n` marked slow (each compiles its own programs, ~1 s)."""
  return [c if i < n else pytest.param(*(c if isinstance(c, tuple) else (c,)),
                                       marks=pytest.mark.slow)
          for i, c in enumerate(cases)]


@pytest.mark.parametrize("case", _fast_first(_conv_cases(6), 3), ids=lambda c: (
    f"{c['size']}-k{c['kernel_size']}-s{c['strides']}-d{c['kernel_dilation']}-{c['padding']}"))
def test_matmul_conv_equals_flax_conv_outputs_and_gradients_vmapped_and_not(case):
  case = dict(case)
  size, cin = case.pop("size"), case.pop("cin")
  rng = np.random.default_rng(sum(size) + cin)
  reference, lowered = nn.Conv(**case), lowering.Conv(**case, impl="matmul")
  x = _normal(rng, (FOLDS, 2, *size, cin))
  shapes = jax.eval_shape(lambda: jax.vmap(lambda _: reference.init(jax.random.key(0), x[0]))(
      jnp.arange(FOLDS)))["params"]
  assert jax.eval_shape(lambda: lowered.init(jax.random.key(0), x[0]))["params"] == jax.tree.map(
      lambda v: jax.ShapeDtypeStruct(v.shape[1:], v.dtype), shapes)
  params = _random_params(shapes, rng)
  _assert_trees_close(_both_ways(functools.partial(_value_and_grads, lowered))(params, x),
                      _both_ways(functools.partial(_value_and_grads, reference))(params, x))


@pytest.mark.parametrize("case", [c for c in _conv_cases(24, seed=1)
                                  if min(c["kernel_size"]) > 1][:8], ids=lambda c: (
    f"{c['size']}-k{c['kernel_size']}-s{c['strides']}-d{c['kernel_dilation']}"))
def test_two_stage_patches_are_the_one_stage_ones_bit_for_bit_with_their_gradient(case):
  """The small-cin patches (two concatenations) hold the same values as one concatenation, and
  their input gradient is that of one concatenation: the same bits, vmapped and not."""
  (kh, kw), (sh, sw), (dh, dw) = case["kernel_size"], case["strides"], case["kernel_dilation"]
  rng = np.random.default_rng(sum(case["size"]))
  hp, wp = case["size"][0] + 2 * dh * (kh - 1), case["size"][1] + 2 * dw * (kw - 1)
  ho, wo = (hp - (kh - 1) * dh - 1) // sh + 1, (wp - (kw - 1) * dw - 1) // sw + 1
  window = ((kh, kw), (ho, wo), (sh, sw), (dh, dw))
  x = _normal(rng, (FOLDS, 2, hp, wp, case["cin"]))
  w = _normal(rng, (FOLDS, 2, ho, wo, kh * kw * case["cin"]))
  one_stage = functools.partial(lowering._patches, window=window)
  two_stage = functools.partial(lowering._two_stage_patches, window=window)
  for build in (one_stage, two_stage):
    assert build(x[0]).shape == (2, ho, wo, kh * kw * case["cin"])
  def outputs(build):
    grad = jax.grad(lambda x, w: jnp.sum(w * build(x)))
    return jax.jit(lambda x, w: (build(x[0]), grad(x[0], w[0]), jax.vmap(build)(x),
                                 jax.vmap(grad)(x, w)))(x, w)
  for got, want in zip(outputs(two_stage), outputs(one_stage)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))

def test_lowered_conv_initialises_as_flax_conv():
  x = jnp.zeros((1, 8, 8, 3))
  key = jax.random.key(0, impl="rbg")
  _assert_trees_close(jax.jit(lowering.Conv(4, (3, 3), impl="matmul").init)(key, x),
                      jax.jit(nn.Conv(4, (3, 3)).init)(key, x))


POOL_CASES = [  # (size, window, strides, padding)
    ((28, 28), (3, 3), (3, 3), "SAME"),  # STSTNet: 28 -> 10, padded
    ((10, 10), (2, 2), (2, 2), "VALID"),
    ((7, 9), (2, 2), (2, 2), "VALID"),  # the remainder is dropped
    ((7, 9), (2, 2), (2, 2), "SAME"),
    ((8, 7), (2, 3), (2, 3), ((1, 1), (1, 1))),
    ((9, 9), (3, 3), (2, 2), ((1, 1), (1, 1))),  # window != stride: the library pool
]


# STSTNet's two pools in the fast suite, the other shapes slow.
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size,window,strides,padding", _fast_first(POOL_CASES, 2))
def test_reshape_pools_equal_flax_pools_outputs_and_gradients(kind, size, window, strides,
                                                              padding):
  reference = {"max": nn.max_pool, "avg": nn.avg_pool}[kind]
  lowered = functools.partial({"max": lowering.max_pool, "avg": lowering.avg_pool}[kind],
                              impl="matmul")
  x = _normal(np.random.default_rng(size[0]), (FOLDS, 2, *size, 3))  # no ties (continuous)

  def value_and_grad(pool, x):
    y = pool(x, window, strides, padding)
    w = jnp.cos(jnp.arange(y.size, dtype=jnp.float32).reshape(y.shape))
    return y, jax.grad(lambda x: jnp.sum(w * pool(x, window, strides, padding)))(x)

  _assert_trees_close(_both_ways(lambda _, x: value_and_grad(lowered, x))(jnp.zeros(FOLDS), x),
                      _both_ways(lambda _, x: value_and_grad(reference, x))(jnp.zeros(FOLDS), x))


@pytest.mark.parametrize("size,window,strides,padding", _fast_first(POOL_CASES[:5], 2))
def test_reshape_max_pool_gives_ties_the_library_gradient(size, window, strides, padding):
  """Ties (relu'd zeros, repeated integers): the gradient goes to each window's first max, as
  nn.max_pool's, vmapped and not; forward mode is its transpose (the library's own forward mode
  may pick another tied element in padded windows)."""
  rng = np.random.default_rng(sum(size))
  x = jnp.maximum(0.0, jnp.asarray(rng.integers(-3, 3, (FOLDS, 2, *size, 3)), jnp.float32))
  t = _normal(rng, x.shape)

  def derivatives(pool, x, t):
    f = lambda x: pool(x, window, strides, padding)
    y = f(x)
    w = jnp.cos(jnp.arange(y.size, dtype=jnp.float32).reshape(y.shape))
    grad = jax.grad(lambda x: jnp.sum(w * f(x)))(x)
    return y, grad, (jnp.sum(w * jax.jvp(f, (x,), (t,))[1]), jnp.sum(grad * t))

  lowered = functools.partial(lowering.max_pool, impl="matmul")
  ours = _both_ways(lambda t, x: derivatives(lowered, x, t))(t, x)
  reference = _both_ways(lambda t, x: derivatives(nn.max_pool, x, t))(t, x)
  for (y, grad, (jvp_w, t_grad)), (y_ref, grad_ref, _) in zip(ours, reference):
    np.testing.assert_array_equal(np.asarray(y), np.asarray(y_ref))
    np.testing.assert_array_equal(np.asarray(grad), np.asarray(grad_ref))
    np.testing.assert_allclose(np.asarray(jvp_w), np.asarray(t_grad), rtol=1e-5, atol=1e-5)


def test_reshape_max_pool_propagates_nan_and_infinities():
  x = np.zeros((1, 4, 4, 2), np.float32)
  x[0, 1, 1, 0], x[0, 3, 2, 0], x[0, 0, 3, 1], x[0, 2, 2, 1] = np.nan, -np.inf, np.inf, np.nan
  x[0, 2:, :2, 1] = -np.inf
  ours = lowering.max_pool(jnp.asarray(x), (2, 2), (2, 2), impl="matmul")
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(nn.max_pool(x, (2, 2), (2, 2))))


def test_auto_keeps_the_library_off_cpu_and_where_patches_outgrow_memory(monkeypatch):
  small = ((32, 28, 28, 3), (3, 3, 3, 16), (1, 1), "SAME", None)
  resnet_stage1 = ((16, 56, 56, 64), (3, 3, 64, 64), (1, 1), "SAME", None)  # 1.8M per example
  stem = ((16, 224, 224, 3), (7, 7, 3, 64), (2, 2), "SAME", None)
  pointwise = ((256, 56, 56, 256), (1, 1, 256, 64), (1, 1), "VALID", None)
  huge_batch = ((256, 56, 56, 64), (3, 3, 64, 64), (1, 1), "SAME", None)  # 1.85 GB of patches
  assert jax.default_backend() == "cpu"
  for layer in (small, resnet_stage1, stem, pointwise):
    assert lowering._auto_prefers_matmul(*layer), layer
  assert not lowering._auto_prefers_matmul(*huge_batch)
  # The cap counts bytes of the compute dtype: bfloat16 patches take half.
  assert lowering._auto_prefers_matmul(*huge_batch[:4], None, 2)
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert not lowering._auto_prefers_matmul(*small)


def test_unknown_impl_is_an_error():
  with pytest.raises(ValueError, match="conv_impl must be one of"):
    lowering.Conv(4, (3, 3), impl="im2col")


# Every registered model at a small size, with an input of the kind it reads.
MODELS = {
    "ststnet": (dict(batch_norm=True, dropout=0.5), (4, 28, 28, 3)),
    "spotter": (dict(hidden=8), (4, 28, 28, 3)),
    "offapexnet": (dict(dense_features=(32, 32)), (4, 28, 28, 2)),
    "flow_cnn": (dict(features=(4, 8), dense_features=8), (4, 48, 48, 3)),
    "htnet": (dict(dim=8, heads=2, block_repeats=(1, 1, 1)), (2, 28, 28, 3)),
    "resnet50": (dict(stage_sizes=(1, 1), width=4), (2, 32, 32, 3)),  # stem + 2 stages (2nd strided)
    "cnn_lstm": (dict(frame_features=(4, 8), lstm_features=(8,), dense_features=(8,)),
                 (2, 3, 16, 16, 1)),
    "convlstm": (dict(stem_features=(4,), lstm_features=(4, 4), dense_features=(8,)),
                 (2, 3, 16, 16, 1)),
}
# Larger members whose parameter tree (the ported-weights layout) is checked too, shapes only.
TREE_ONLY = {
    "resnet50_keras": ("resnet50", dict(), (1, 64, 64, 3)),
    "resnet50_torchvision": ("resnet50", dict(variant="torchvision"), (1, 64, 64, 3)),
    "htnet_release": ("htnet", dict(), (1, 28, 28, 3)),
    "cnn_lstm_resnet": ("cnn_lstm", dict(frame_cnn="resnet50", backbone_kwargs={
        "variant": "torchvision", "stage_sizes": (1, 1, 1, 1), "width": 4}), (1, 2, 32, 32, 3)),
}


def _library_models():
  return {n for n in models.names()
          if type(models.get(n, num_classes=3)).__module__.startswith("microexp.models.")}


def test_every_library_model_is_covered():
  assert _library_models() == set(MODELS)


def _init_shapes(name, kwargs, shape, impl):
  model = models.get(name, num_classes=3, conv_impl=impl, **kwargs)
  x = jnp.zeros(shape)
  mask = jnp.ones(shape[:2], bool) if len(shape) == 5 else None
  return jax.eval_shape(lambda: model.init({"params": jax.random.key(0)}, x, train=False,
                                           mask=mask))


def _flat_shapes(tree):
  return {"/".join(k): v.shape for k, v in traverse_util.flatten_dict(tree).items()}


# The TREE_ONLY models take seconds each to trace: slow.
@pytest.mark.parametrize("case", sorted(MODELS) + [pytest.param(c, marks=pytest.mark.slow)
                                                   for c in sorted(TREE_ONLY)])
def test_parameter_tree_is_the_same_for_every_impl(case):
  name, kwargs, shape = TREE_ONLY[case] if case in TREE_ONLY else (case, *MODELS[case])
  reference = _flat_shapes(_init_shapes(name, kwargs, shape, "xla"))  # nn.Conv as ever
  assert any(path.endswith("kernel") for path in reference)
  for impl in ("matmul", "auto"):
    assert _flat_shapes(_init_shapes(name, kwargs, shape, impl)) == reference


def _random_variables(shapes, seed):
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    if name == "var":
      return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), leaf.dtype)
    scale = 0.1 if name in ("bias", "mean", "pos_emb") else 1 / np.sqrt(np.prod(leaf.shape[:-1]))
    return jnp.asarray(scale * rng.standard_normal(leaf.shape) + (name == "scale"), leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


# Models whose conv -> ReLU -> max-pool blocks have a CPU kernel ('native'; 'auto' on CPU).
_KERNEL_MODELS = ("ststnet", "offapexnet")
# STSTNet (the MEGC protocol's network) runs in the fast suite; the rest compile for seconds each.
_SLOW = ("flow_cnn", "htnet", "offapexnet", "resnet50", "cnn_lstm", "convlstm", "spotter")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n
                                  for n in sorted(MODELS)])
def test_every_model_gives_the_same_logits_and_gradients_with_either_impl(name):
  kwargs, shape = MODELS[name]
  x = _normal(np.random.default_rng(1), shape)
  mask = jnp.ones(shape[:2], bool) if len(shape) == 5 else None
  variables = _random_variables(_init_shapes(name, kwargs, shape, "xla"), seed=2)
  rngs = {"dropout": jax.random.key(0, impl="rbg")}  # the same dropout masks for both impls

  @functools.partial(jax.jit, static_argnums=0)
  def run(impl, variables):
    model = models.get(name, num_classes=3, conv_impl=impl, **kwargs)

    def loss(params):  # train mode: BatchNorm batch statistics, dropout
      logits, _ = model.apply({**variables, "params": params}, x, train=True, mask=mask,
                              rngs=rngs, mutable=["batch_stats"])
      return jnp.sum(jnp.cos(logits)), logits

    (_, logits), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
    return logits, grads

  want = run("xla", variables)
  _assert_trees_close(run("matmul", variables), want, rtol=MODEL_RTOL)
  if name in _KERNEL_MODELS:  # their conv -> ReLU -> pool blocks as the CPU kernel
    _assert_trees_close(run("native", variables), want, rtol=MODEL_RTOL)


# Slow: tests/models/test_ststnet_streams.py's BN-after-pool test runs the matmul STSTNet vmapped
# over stacked folds against flax's layers in the fast suite.
@pytest.mark.slow
def test_stacked_folds_of_ststnet_equal_between_impls():
  kwargs, shape = MODELS["ststnet"]
  rng = np.random.default_rng(3)
  x = _normal(rng, (FOLDS, *shape))
  shapes = _init_shapes("ststnet", kwargs, shape, "xla")
  stacked = jax.tree.map(lambda *v: jnp.stack(v),
                         *[_random_variables(shapes, seed) for seed in range(FOLDS)])

  def run(impl):
    model = models.get("ststnet", num_classes=3, conv_impl=impl, batch_norm=True)

    def grads(variables, x):
      def loss(params):
        logits, _ = model.apply({**variables, "params": params}, x, train=True,
                                mutable=["batch_stats"])
        return jnp.sum(jnp.cos(logits))

      return jax.grad(loss)(variables["params"])

    return jax.jit(jax.vmap(grads))(stacked, x)

  _assert_trees_close(run("matmul"), run("xla"), rtol=MODEL_RTOL)


@pytest.mark.slow  # a recurrent cell with gradients: ~1.5 s to compile
def test_lowered_convlstm_cell_equals_flax_cell_outputs_and_gradients():
  from microexp.models import layers  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(4)
  x, c, h = _normal(rng, (2, 6, 6, 3)), _normal(rng, (2, 6, 6, 4)), _normal(rng, (2, 6, 6, 4))
  reference = nn.ConvLSTMCell(features=4, kernel_size=(3, 3))
  lowered = layers.ConvLSTMCell(features=4, kernel_size=(3, 3), conv_impl="matmul")
  shapes = jax.eval_shape(lambda: reference.init(jax.random.key(0), (c, h), x))
  assert jax.eval_shape(lambda: lowered.init(jax.random.key(0), (c, h), x)) == shapes
  params = _random_params(shapes, rng)

  def run(cell):
    def loss(params, carry, x):
      (new_c, new_h), _ = cell.apply(params, carry, x)
      return jnp.sum(jnp.sin(new_c) + jnp.cos(new_h))

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(params, (c, h), x)

  _assert_trees_close(run(lowered), run(reference))
