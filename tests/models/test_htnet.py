"""HTNet: shapes, the release's parameter count, determinism, region cropping, learning."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microexp import models
from microexp.vision import face_regions
from microexp.models import htnet

TINY = dict(dim=8, heads=2, block_repeats=(1, 1, 1))


def _key(seed):
  # rbg keys: XLA CPU compiles threefry random bits slowly (seconds per parameter shape).
  return jax.random.key(seed, impl="rbg")


def _init(model, key, x):
  """Jitted init (op by op, each of HTNet's many small ops dispatches on its own: slow)."""
  return jax.jit(lambda k, x: model.init(k, x, train=False))(key, x)


def _eval(model, variables, x):
  return jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)


def _params(variables) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(variables))


def _x(seed=0, n=4):
  return jnp.asarray(np.random.default_rng(seed).standard_normal((n, 28, 28, 3)), jnp.float32)


def test_release_configuration_parameter_count():
  """114,429,446 for 3 classes, computed by hand from the release's Model.py:
  patch embedding 147*256+256 = 37,888; level blocks (LN, qkv without bias to 3*3*85 channels,
  out, LN, MLP x4) 787,968 / 3,146,752 / 12,576,768 per block at widths 256 / 512 / 1024, times
  (2, 2, 8), plus one position embedding per level; aggregates (3x3 conv + LN) 1,181,184 and
  4,721,664; head LN + dense 5,123."""
  model = models.get("htnet", num_classes=3, **htnet.release_kwargs())
  shapes = jax.eval_shape(lambda: model.init(_key(0), _x(), train=False))
  hand = (37_888 + 2 * 787_968 + 1 + 1_181_184 + 2 * 3_146_752 + 1 + 4_721_664
          + 8 * 12_576_768 + 1 + 5_123)
  assert _params(shapes) == hand == 114_429_446


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_logits_shape_and_dtype(dtype):
  model = models.get("htnet", num_classes=3, dtype=dtype, dropout=0.1, **TINY)
  variables = jax.eval_shape(lambda: model.init(_key(0), _x(), train=False))
  assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  logits = jax.eval_shape(
      lambda v: model.apply(v, _x(1), train=True, rngs={"dropout": _key(1)}), variables)
  assert logits.shape == (4, 3) and logits.dtype == jnp.float32


@pytest.mark.slow
def test_init_and_forward_are_deterministic():
  model = models.get("htnet", num_classes=3, **TINY)
  a = _init(model, _key(3), _x())
  b = _init(model, _key(3), _x())
  jax.tree.map(np.testing.assert_array_equal, a, b)
  c = _init(model, _key(4), _x())
  assert not np.allclose(a["params"]["head"]["kernel"], c["params"]["head"]["kernel"])
  np.testing.assert_array_equal(_eval(model, a, _x(1)), _eval(model, b, _x(1)))


@pytest.mark.slow
def test_each_sample_is_independent_of_the_batch():
  model = models.get("htnet", num_classes=3, **TINY)
  variables = _init(model, _key(0), _x())
  full = _eval(model, variables, _x(2))
  alone = _eval(model, variables, _x(2)[1:2])
  np.testing.assert_allclose(alone, full[1:2], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_fixed_regions_crop_the_mosaic_of_the_data_layer():
  centres = face_regions.MEAN_FACE_CENTRES
  whole = _x(5)
  crop_in_model = models.get("htnet", num_classes=3, regions=centres.tolist(), **TINY)
  on_mosaic = models.get("htnet", num_classes=3, **TINY)
  variables = _init(on_mosaic, _key(0), _x())
  mosaics = face_regions.region_mosaics(np.asarray(whole), np.repeat(centres[None], 4, 0))
  np.testing.assert_allclose(_eval(crop_in_model, variables, whole),
                             _eval(on_mosaic, variables, jnp.asarray(mosaics)),
                             rtol=1e-6, atol=1e-6)


def test_blocks_round_trip():
  x = jnp.arange(2 * 8 * 8 * 3, dtype=jnp.float32).reshape(2, 8, 8, 3)
  blocks = htnet.to_blocks(x, 2)
  assert blocks.shape == (8, 4, 4, 3)
  np.testing.assert_array_equal(blocks[1], x[0, :4, 4:])  # sample 0, top-right block
  np.testing.assert_array_equal(htnet.from_blocks(blocks, 2), x)


def test_bad_configuration_is_refused():
  model = models.get("htnet", num_classes=3, patch_size=5, **TINY)
  with pytest.raises(ValueError, match="multiple of patch_size"):
    jax.eval_shape(lambda: model.init(_key(0), _x(), train=False))
