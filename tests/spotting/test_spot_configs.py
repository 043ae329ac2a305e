"""The long-video configs (spot_casme2lv, spot_sammlv, str_megc): their `:arg`s, the fields the
long-video loaders accept, and models that map flow rows to one logit per kind / class."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import pytest

from microexp import loaders
from microexp.loaders import long_videos
from microexp.models import builder
from microexp.train import spot_protocol
from microexp.train import str_protocol
from microexp.train.tasks import spotting

NAMES = {"spot_casme2lv": "casme2_lv", "spot_sammlv": "samm_lv", "str_megc": "samm_lv"}


def _config(name, arg):
  return importlib.import_module(f"configs.{name}").get_config(arg)


def _logits(config, num_classes):
  model = builder.from_config(config, num_classes, pretrained=False)
  s = int(config.dataset.image_size)
  x = jax.ShapeDtypeStruct((2, s, s, 3), jnp.float32)
  rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
  variables = jax.eval_shape(lambda x: model.init(rngs, x, train=False), x)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  return out.shape


@pytest.mark.parametrize("arg", ["", "synthetic"])
@pytest.mark.parametrize("name", sorted(NAMES))
def test_config_builds_for_its_loader(name, arg):
  config = _config(name, arg)
  assert config.dataset.name == NAMES[name]
  assert config.dataset.synthetic == (arg == "synthetic")
  assert config.train.task == ("str" if name == "str_megc" else "spot")
  assert config.train.selection == "last" and config.train.fold_parallel == "auto"
  loaders.check_fields(config.dataset, NAMES[name], long_videos.FIELDS)  # nothing unread
  spotting.spot_options(config.spot)  # known fields only
  assert _logits(spot_protocol.spotter_train_config(config), 2) == (2, 2)
  if name == "str_megc":
    rec = str_protocol.recognizer_config(config)
    assert _logits(rec, 3) == (2, 3) and rec.train.task == "emotion"
  if arg == "synthetic":
    assert config.train.epochs <= 40 and len(config.train.seeds) == 1


@pytest.mark.parametrize("arg", ["classes=3", "nested", "thesis", "fast"])
def test_spotting_configs_refuse_other_args(arg):
  with pytest.raises(ValueError):
    _config("spot_casme2lv", arg)


def test_unknown_spot_field_is_refused():
  with pytest.raises(ValueError, match="unknown fields"):
    spotting.spot_options({"treshold": 0.4})
