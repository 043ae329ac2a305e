"""Every config file: its `:arg` variants build, bad args fail clearly, and its model maps the
input its representation produces to logits [B, num_classes] (jax.eval_shape: no compile, no
training, no real initialisation)."""

from __future__ import annotations

import importlib
import pathlib

import jax
import jax.numpy as jnp
import pytest

from configs import base
from microexp import models
from microexp.data import emotions
from microexp.models import builder

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if p.stem not in ("__init__", "base"))
MEGC = [c for c in CONFIGS if c.endswith("_megc")]
CASME2 = [c for c in CONFIGS if c not in MEGC]
ARGS = {c: (["", "synthetic", "classes=megc,synthetic"] if c in MEGC else
            ["", "synthetic", "classes=3,synthetic", "classes=7", "classes=megc,synthetic"])
        for c in CONFIGS}
CASES = [(c, a) for c in CONFIGS for a in ARGS[c]]


def _get_config(name: str, arg: str):
  return importlib.import_module(f"configs.{name}").get_config(arg)


def test_every_method_has_a_config():
  assert set(CONFIGS) == {
      "resnet_loso", "resnet_split", "cnn_lstm_padded", "cnn_lstm_apex", "cnn_lstm_ragged",
      "cnn_lstm_flow", "flow_cnn", "ststnet_loso", "offapexnet_loso", "convlstm_loso",
      "ststnet_megc", "offapexnet_megc", "resnet_megc"}


def input_shape(config, batch: int = 2) -> tuple[int, ...]:
  """The shape of `inputs` the config's dataset loader returns (batch of `batch`)."""
  ds = config.dataset
  s = int(ds.image_size)
  if ds.representation == "apex_flow":
    return (batch, s, s, 3)
  t = int(ds.sequence.length)
  c = 3 if ds.representation == "flow_sequences" or not ds.sequence.grayscale else 1
  return (batch, t, s, s, c)


@pytest.mark.parametrize("name,arg", CASES)
def test_config_builds(name, arg):
  config = _get_config(name, arg)
  opts = base.parse_arg(arg)
  assert config.dataset.synthetic == opts.synthetic
  assert config.dataset.classes == ("megc" if name in MEGC else opts.classes or "5")
  assert config.train.fold_parallel == "auto"
  assert config.dataset.flow_normalization in ("per_clip", "none")
  if name in MEGC:
    assert config.dataset.name == "megc2019_flow"
  else:
    assert config.dataset.name == "casme2"
  if opts.synthetic:
    assert len(config.train.seeds) <= 2 and config.train.epochs <= 40
  assert emotions.get_subset(config.dataset.classes).num_classes > 1


@pytest.mark.parametrize("name,arg", [
    (c, a) for c in CONFIGS for a in ("", "synthetic" if c in MEGC else "classes=3,synthetic")])
def test_model_gives_logits(name, arg):
  """The real and the synthetic model on the input shape of their own representation."""
  config = _get_config(name, arg)
  k = emotions.get_subset(config.dataset.classes).num_classes
  config.model.dtype = "float32"
  model = builder.from_config(config, k, pretrained=False)  # the real weights file is not shipped
  shape = input_shape(config)
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  mask = jax.ShapeDtypeStruct(shape[:2], jnp.bool_) if len(shape) == 5 else None
  rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
  variables = jax.eval_shape(lambda x, m: model.init(rngs, x, train=False, mask=m), x, mask)
  logits, _ = jax.eval_shape(
      lambda v, x, m: model.apply(v, x, train=True, mask=m, rngs={"dropout": rngs["dropout"]},
                                  mutable=["batch_stats"]), variables, x, mask)
  assert logits.shape == (shape[0], k) and logits.dtype == jnp.float32


@pytest.mark.parametrize("arg,match", [
    ("classes=4", "Unknown config argument 'classes=4'"),
    ("synthetic=no", "Unknown config argument 'synthetic=no'"),
    ("fast", "expected 'classes=7|5|3|megc' and/or 'synthetic'"),
])
@pytest.mark.parametrize("name", ["resnet_loso", "cnn_lstm_apex", "ststnet_megc"])
def test_bad_args_give_a_clear_error(name, arg, match):
  with pytest.raises(ValueError, match=match):
    _get_config(name, arg)


@pytest.mark.parametrize("name", MEGC)
def test_megc_configs_refuse_other_class_sets(name):
  for arg in ("classes=3,synthetic", "classes=5"):
    with pytest.raises(ValueError, match="classes=megc"):
      _get_config(name, arg)


def test_sequence_methods_keep_their_path():
  m1 = _get_config("cnn_lstm_padded", "synthetic").dataset
  m2 = _get_config("cnn_lstm_apex", "synthetic").dataset
  m3 = _get_config("cnn_lstm_ragged", "synthetic").dataset
  m4 = _get_config("cnn_lstm_flow", "synthetic").dataset
  # M1 pads every synthetic clip (6-12 frames) to 12 rather than cutting it.
  assert m1.sequence.mode == "pad"
  assert m1.sequence.length >= m1.synthetic_kwargs.num_frames[1]
  assert (m2.sequence.mode, m2.sequence.length) == ("apex_window", 6)
  assert _get_config("cnn_lstm_apex", "").dataset.sequence.length == 6
  assert not m1.sequence.mask_padding  # M1 feeds the padding; M3 masks it
  assert m3.sequence.mode == "ragged" and m3.sequence.mask_padding
  assert m4.representation == "flow_sequences"
  assert not _get_config("cnn_lstm_padded", "").dataset.sequence.subtract_onset
