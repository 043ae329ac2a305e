"""Model registry: every network is reachable by name; unknown names fail clearly."""

from __future__ import annotations

import flax.linen as nn
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
