"""Model registry: every network is reachable by name; unknown names fail clearly."""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest

from microexp import models

SMALL_NETWORKS = ("cnn_lstm", "convlstm", "flow_cnn", "ststnet", "offapexnet")


def test_small_networks_are_registered():
  assert set(SMALL_NETWORKS) <= set(models.names())


@pytest.mark.parametrize("name", SMALL_NETWORKS)
def test_get_builds_a_linen_module_with_the_given_classes(name):
  model = models.get(name, num_classes=4)
  assert isinstance(model, nn.Module)
  assert model.num_classes == 4


def test_unknown_name_lists_the_registered_ones():
  with pytest.raises(ValueError, match=r"Unknown model 'lenet'.*'ststnet'"):
    models.get("lenet", num_classes=3)


def test_unknown_keyword_is_an_error():
  with pytest.raises(TypeError, match="num_filters"):
    models.get("ststnet", num_classes=3, num_filters=4)


def test_registering_a_name_twice_fails():
  with pytest.raises(ValueError, match="registered twice"):
    models.register("ststnet")(lambda **kwargs: None)


_OWN_MODULE = """
import flax.linen as nn
import jax
import numpy as np
import jax.numpy as jnp
from microexp import models


class Tiny(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, x, *, train=False, mask=None):
    return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1)).astype(jnp.float32)


@models.register("tiny_outside")
def tiny(num_classes, dtype=jnp.float32):
  return Tiny(num_classes)
"""


def test_a_model_in_a_module_of_ones_own_is_named_module_colon_name(tmp_path, monkeypatch):
  (tmp_path / "my_nets_for_test.py").write_text(_OWN_MODULE)
  monkeypatch.syspath_prepend(str(tmp_path))
  model = models.get("my_nets_for_test:tiny_outside", num_classes=4)
  x = np.zeros((2, 3, 3, 2), np.float32)
  logits = model.apply(model.init(jax.random.key(0), x), x)
  assert logits.shape == (2, 4)
  with pytest.raises(ValueError, match="cannot import module 'no_such_module_xyz'"):
    models.get("no_such_module_xyz:tiny", num_classes=4)
  with pytest.raises(ValueError, match="registered no such name"):
    models.get("my_nets_for_test:other", num_classes=4)
